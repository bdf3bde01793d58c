################################################################################
# Names, contract and lookups shared by every file of the module
################################################################################

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

data "aws_vpc" "this" {
  id = var.vpc_id
}

data "aws_subnet" "nodes" {
  for_each = toset(var.subnet_ids)

  id = each.value
}

# Canonical publishes the current Ubuntu 24.04 LTS AMI ID under this public parameter.
data "aws_ssm_parameter" "ubuntu_ami" {
  count = var.ami_id == null ? 1 : 0

  name = "/aws/service/canonical/ubuntu/server/24.04/stable/current/${var.architecture}/hvm/ebs-gp3/ami-id"
}

locals {
  # The names and settings the functions and the local twin rely on (layers/kcluster/kcluster/contract.py).
  tag_cluster = "kcluster:cluster"
  tag_role    = "kcluster:role"

  role_control_plane = "control-plane"
  role_worker        = "worker"

  control_plane_asg_name = "kcluster-${var.cluster_name}-control-plane"
  worker_asg_name        = "kcluster-${var.cluster_name}-workers"

  # Launch: the node is not usable until it joined, so a hook that runs out abandons it (the ASG replaces it).
  # Terminate: a hook cannot keep an instance alive, so running out continues the termination.
  lifecycle_hooks = {
    launch = {
      name                 = "kcluster-launch"
      lifecycle_transition = "autoscaling:EC2_INSTANCE_LAUNCHING"
      heartbeat_timeout    = 900
      default_result       = "ABANDON"
    }
    terminate = {
      name                 = "kcluster-terminate"
      lifecycle_transition = "autoscaling:EC2_INSTANCE_TERMINATING"
      heartbeat_timeout    = 900
      default_result       = "CONTINUE"
    }
  }

  parameter_prefix       = "/kcluster/${var.cluster_name}"
  config_parameter_name  = "${local.parameter_prefix}/config"
  node_event_source      = "kcluster.node"
  node_event_detail_type = "Node Provisioned"
  control_plane_port     = 6443
  control_plane_endpoint = "${aws_lb.control_plane.dns_name}:${local.control_plane_port}"
  kubernetes_minor       = join(".", slice(split(".", var.kubernetes_version), 0, 2))
  cni_manifest_url       = coalesce(var.cni_manifest_url, "https://raw.githubusercontent.com/projectcalico/calico/${var.cni_version}/manifests/calico.yaml")
  endpoint_subnet_ids    = coalesce(var.endpoint_subnet_ids, var.subnet_ids)

  subnet_availability_zones = distinct([for subnet in data.aws_subnet.nodes : subnet.availability_zone])

  ami_id = var.ami_id != null ? var.ami_id : nonsensitive(data.aws_ssm_parameter.ubuntu_ami[0].value)

  # User tags first, so they can never replace the contract's tags.
  tags = merge(var.tags, {
    (local.tag_cluster) = var.cluster_name
  })

  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
}
