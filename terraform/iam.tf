################################################################################
# Node IAM. Both node roles keep AmazonSSMManagedInstanceCore (the SSM agent needs it), which allows
# ssm:GetParameter(s) on every parameter of the account: an explicit Deny in each role's own policy
# takes back every parameter read outside what that role is given below. Control planes read the
# cluster config and /kcluster/<name>/join/*, write join/* and admin/*, and cannot read admin/* back;
# workers read only join/token and join/ca-cert-hash. No node role reads another
# cluster's parameters. SecureStrings are encrypted with the cluster's own KMS key (kms.tf), whose
# key policy and these statements allow only the per-parameter KMS use through SSM listed here.
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
  ssm_service          = "ssm.${local.region}.amazonaws.com"
  event_bus_arn        = "arn:${local.partition}:events:${local.region}:${local.account_id}:event-bus/default"
  ssm_core_arn         = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
  node_role_keys       = { control_plane = local.role_control_plane, worker = local.role_worker }

  # SSM reads a node role may make; everything else is denied (AmazonSSMManagedInstanceCore allows "*").
  parameter_read_actions = ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath", "ssm:GetParameterHistory"]
  readable_parameter_arns = {
    control_plane = [
      "${local.parameter_arn_prefix}/config",
      "${local.parameter_arn_prefix}/join/*",
    ]
    worker = [
      "${local.parameter_arn_prefix}/join/token",
      "${local.parameter_arn_prefix}/join/ca-cert-hash",
    ]
  }
  # SSM encrypts a SecureString under the encryption context {"PARAMETER_ARN": "<parameter ARN>"}.
  parameter_arn_context = "kms:EncryptionContext:PARAMETER_ARN"
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
    sid           = "DenyOtherParameterReads"
    effect        = "Deny"
    actions       = local.parameter_read_actions
    not_resources = local.readable_parameter_arns.control_plane
  }

  # The KMS statements exist only for a key the user brings (kms_key_arn): the module's own key policy
  # names each node role itself, which KMS honours without any identity grant (kms.tf), so an identity
  # grant would be one more place to widen by mistake.
  dynamic "statement" {
    for_each = local.create_kms_key ? [] : ["JoinMaterialKeyThroughSsm"]
    content {
      sid       = statement.value
      actions   = ["kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt"]
      resources = [local.kms_key_arn]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = [local.ssm_service]
      }

      condition {
        test     = "StringLike"
        variable = local.parameter_arn_context
        values   = ["${local.parameter_arn_prefix}/join/*"]
      }
    }
  }

  # Standard parameters are encrypted with Encrypt, advanced ones (the kubeconfig) with GenerateDataKey.
  dynamic "statement" {
    for_each = local.create_kms_key ? [] : ["AdminKubeconfigKeyThroughSsm"]
    content {
      sid       = statement.value
      actions   = ["kms:Encrypt", "kms:GenerateDataKey"]
      resources = [local.kms_key_arn]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = [local.ssm_service]
      }

      condition {
        test     = "StringLike"
        variable = local.parameter_arn_context
        values   = ["${local.parameter_arn_prefix}/admin/*"]
      }
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

# Workers read no configuration: join-worker gets all it needs as document parameters.
data "aws_iam_policy_document" "worker" {
  statement {
    sid     = "ReadWorkerJoinMaterial"
    actions = ["ssm:GetParameter", "ssm:GetParameters"]
    resources = [
      "${local.parameter_arn_prefix}/join/token",
      "${local.parameter_arn_prefix}/join/ca-cert-hash",
    ]
  }

  statement {
    sid           = "DenyOtherParameterReads"
    effect        = "Deny"
    actions       = local.parameter_read_actions
    not_resources = local.readable_parameter_arns.worker
  }

  # The CA cert hash is a plain String: the token is the only SecureString a worker decrypts.
  dynamic "statement" {
    for_each = local.create_kms_key ? [] : ["JoinTokenKeyThroughSsm"]
    content {
      sid       = statement.value
      actions   = ["kms:Decrypt"]
      resources = [local.kms_key_arn]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = [local.ssm_service]
      }

      condition {
        test     = "StringEquals"
        variable = local.parameter_arn_context
        values   = ["${local.parameter_arn_prefix}/join/token"]
      }
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
  permissions_boundary = var.permissions_boundary_arn
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
