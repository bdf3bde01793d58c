################################################################################
# Node IAM: SSM managed instance core plus only the parameters each role needs.
# Workers cannot read the certificate key or the admin kubeconfig; nothing can read another cluster's.
################################################################################

data "aws_iam_policy_document" "node_assume_role" {
  statement {
    sid     = "EC2AssumeRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

locals {
  parameter_arn_prefix = "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${local.parameter_prefix}"
  # The SSM parameters are encrypted with the account's aws/ssm key; only SSM may use it on the nodes' behalf.
  kms_key_arns   = "arn:${local.partition}:kms:${local.region}:${local.account_id}:key/*"
  ssm_service    = "ssm.${local.region}.amazonaws.com"
  event_bus_arn  = "arn:${local.partition}:events:${local.region}:${local.account_id}:event-bus/default"
  ssm_core_arn   = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
  node_role_keys = { control_plane = local.role_control_plane, worker = local.role_worker }
}

data "aws_iam_policy_document" "control_plane" {
  statement {
    sid       = "ReadClusterConfig"
    actions   = ["ssm:GetParameter"]
    resources = ["${local.parameter_arn_prefix}/config"]
  }

  statement {
    sid       = "PublishAndReadJoinMaterial"
    actions   = ["ssm:GetParameter", "ssm:GetParameters", "ssm:PutParameter"]
    resources = ["${local.parameter_arn_prefix}/join/*"]
  }

  # refresh-join's stray cleanup, health and drain-remove list the cluster's instances. DescribeInstances
  # supports no resource-level permissions: "*" is the only resource AWS accepts for it.
  statement {
    sid       = "ListClusterInstances"
    actions   = ["ec2:DescribeInstances"]
    resources = ["*"]
  }

  statement {
    sid       = "PublishAdminKubeconfig"
    actions   = ["ssm:PutParameter"]
    resources = ["${local.parameter_arn_prefix}/admin/*"]
  }

  statement {
    sid       = "SecureStringsThroughSsm"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
    resources = [local.kms_key_arns]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.ssm_service]
    }
  }

  statement {
    sid       = "NodeProvisionedEvent"
    actions   = ["events:PutEvents"]
    resources = [local.event_bus_arn]

    condition {
      test     = "StringEquals"
      variable = "events:source"
      values   = [local.node_event_source]
    }
  }
}

data "aws_iam_policy_document" "worker" {
  statement {
    sid       = "ReadClusterConfig"
    actions   = ["ssm:GetParameter"]
    resources = ["${local.parameter_arn_prefix}/config"]
  }

  statement {
    sid     = "ReadWorkerJoinMaterial"
    actions = ["ssm:GetParameter", "ssm:GetParameters"]
    resources = [
      "${local.parameter_arn_prefix}/join/token",
      "${local.parameter_arn_prefix}/join/ca-cert-hash",
    ]
  }

  statement {
    sid       = "DecryptSecureStringsThroughSsm"
    actions   = ["kms:Decrypt"]
    resources = [local.kms_key_arns]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.ssm_service]
    }
  }

  statement {
    sid       = "NodeProvisionedEvent"
    actions   = ["events:PutEvents"]
    resources = [local.event_bus_arn]

    condition {
      test     = "StringEquals"
      variable = "events:source"
      values   = [local.node_event_source]
    }
  }
}

resource "aws_iam_role" "node" {
  for_each = local.node_role_keys

  name                 = "kcluster-${var.cluster_name}-${each.value}"
  description          = "kcluster ${var.cluster_name}: ${each.value} nodes"
  assume_role_policy   = data.aws_iam_policy_document.node_assume_role.json
  max_session_duration = 3600
  tags                 = merge(local.tags, { (local.tag_role) = each.value })
}

resource "aws_iam_role_policy_attachment" "node_ssm_core" {
  for_each = local.node_role_keys

  role       = aws_iam_role.node[each.key].name
  policy_arn = local.ssm_core_arn
}

resource "aws_iam_role_policy" "node" {
  for_each = {
    control_plane = data.aws_iam_policy_document.control_plane.json
    worker        = data.aws_iam_policy_document.worker.json
  }

  name   = "kcluster-node"
  role   = aws_iam_role.node[each.key].id
  policy = each.value
}

resource "aws_iam_instance_profile" "node" {
  for_each = local.node_role_keys

  name = "kcluster-${var.cluster_name}-${each.value}"
  role = aws_iam_role.node[each.key].name
  tags = merge(local.tags, { (local.tag_role) = each.value })
}
