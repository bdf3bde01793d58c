################################################################################
# SSM Command documents (built from documents/documents.json) and the cluster configuration
################################################################################

locals {
  documents     = jsondecode(file("${path.module}/documents/documents.json")).documents
  common_script = file("${path.module}/documents/common.sh")

  # Every key kcluster.config.ClusterConfig reads; the defaults of the variables are the same as its own.
  cluster_config = {
    cluster_name           = var.cluster_name
    kubernetes_version     = var.kubernetes_version
    pod_cidr               = var.pod_cidr
    service_cidr           = var.service_cidr
    control_plane_endpoint = local.control_plane_endpoint
    cni = {
      name         = "calico"
      version      = var.cni_version
      manifest_url = local.cni_manifest_url
      # Calico's images come from here, not Docker Hub (the init document rewrites the manifest).
      image_registry = var.cni_image_registry
    }
    node_groups = [
      # The numbered launch template version each group's members must run: a new one is a rollout.
      {
        asg_name                = local.control_plane_asg_name
        role                    = local.role_control_plane
        launch_template_version = aws_launch_template.node["control_plane"].latest_version
      },
      {
        asg_name                = local.worker_asg_name
        role                    = local.role_worker
        launch_template_version = aws_launch_template.node["worker"].latest_version
      },
    ]
    documents         = { for key, document in aws_ssm_document.node : replace(key, "-", "_") => document.name }
    timeouts          = var.timeouts
    lifecycle_hooks   = { for key, hook in local.lifecycle_hooks : key => hook.name }
    join_token_ttl    = var.join_token_ttl
    max_attempts      = var.max_attempts
    worker_batch_size = var.worker_batch_size
    # The remediator asks the NLB which API servers fail their health check.
    api_target_group_arn = aws_lb_target_group.control_plane.arn
    # The nodes encrypt the SecureStrings they write (join secrets, admin kubeconfig) with this key.
    kms_key_arn = local.kms_key_arn
    # The operator's `kcluster inventory` hands this bucket to Ansible's Session Manager connection.
    ssm_transfer_bucket = aws_s3_bucket.ssm_transfer.id
    # The backup document uploads etcd snapshots and the PKI here (backup.tf).
    backup_bucket = aws_s3_bucket.backup.id
    backup        = var.backup
    # How upgrades and image rollouts proceed (core/rollout.py); `go` and `paused` are the operator's
    # levers, applied like any other setting.
    rollout = var.rollout
  }
}

resource "aws_ssm_document" "node" {
  for_each = local.documents

  name            = "kcluster-${var.cluster_name}-${each.key}"
  document_type   = "Command"
  document_format = "JSON"
  target_type     = "/AWS::EC2::Instance"
  tags            = local.tags

  # The twin deploys this content as planned and its nodes run it (twin/terraform/documents.py):
  # parameters reach the script only as SSM_<Name> environment variables and are refused at
  # SendCommand unless they match allowedPattern.
  content = jsonencode({
    schemaVersion = "2.2"
    description   = each.value.description
    parameters = {
      for name, parameter in each.value.parameters : name => {
        type              = "String"
        description       = parameter.description
        allowedPattern    = parameter.allowedPattern
        interpolationType = "ENV_VAR"
      }
    }
    mainSteps = [
      {
        action = "aws:runShellScript"
        name   = replace(each.key, "-", "")
        inputs = {
          timeoutSeconds = each.value.timeout_seconds
          runCommand     = [join("\n", [local.common_script, file("${path.module}/documents/${each.key}.sh")])]
        }
      }
    ]
  })
}

resource "aws_ssm_parameter" "config" {
  #checkov:skip=CKV2_AWS_34:The configuration holds no secret, and the functions read it as plain JSON; join secrets are SecureStrings the nodes write.
  name        = local.config_parameter_name
  description = "kcluster ${var.cluster_name}: cluster configuration read by the kcluster functions"
  type        = "String"
  tier        = "Standard"
  value       = jsonencode(local.cluster_config)
  tags        = local.tags
}
