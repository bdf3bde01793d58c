################################################################################
# Launch templates and Auto Scaling groups, one pair per role
################################################################################

locals {
  node_groups_by_role = {
    control_plane = {
      role              = local.role_control_plane
      asg_name          = local.control_plane_asg_name
      instance_type     = var.control_plane_instance_type
      desired_capacity  = var.control_plane_desired_capacity
      min_size          = var.control_plane_min_size
      max_size          = var.control_plane_max_size
      target_group_arns = [aws_lb_target_group.control_plane.arn]
    }
    worker = {
      role              = local.role_worker
      asg_name          = local.worker_asg_name
      instance_type     = var.worker_instance_type
      desired_capacity  = var.worker_desired_capacity
      min_size          = var.worker_min_size
      max_size          = var.worker_max_size
      target_group_arns = []
    }
  }

  user_data = {
    for key, group in local.node_groups_by_role : key => templatefile("${path.module}/user_data/provision.sh.tftpl", {
      cluster_name       = var.cluster_name
      role               = group.role
      kubernetes_version = var.kubernetes_version
      kubernetes_minor   = local.kubernetes_minor
      containerd_version = var.containerd_version
      provisioned_marker = "/var/lib/kcluster/provisioned"
      event_source       = local.node_event_source
      event_detail_type  = local.node_event_detail_type
    })
  }
}

resource "aws_launch_template" "node" {
  for_each = local.node_groups_by_role

  name_prefix   = "kcluster-${var.cluster_name}-${each.value.role}-"
  description   = "kcluster ${var.cluster_name}: ${each.value.role} nodes"
  image_id      = local.ami_id
  instance_type = each.value.instance_type
  # A direct reference (not through the locals) lets checkov see the groups are attached.
  vpc_security_group_ids = [each.key == "control_plane" ? aws_security_group.control_plane.id : aws_security_group.worker.id]
  user_data              = base64encode(local.user_data[each.key])
  ebs_optimized          = true
  update_default_version = true
  tags                   = merge(local.tags, { (local.tag_role) = each.value.role })

  iam_instance_profile {
    arn = aws_iam_instance_profile.node[each.key].arn
  }

  # IMDSv2 only, and one hop: a container behind the node's network namespace cannot reach it.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  block_device_mappings {
    # The root device of Canonical's Ubuntu AMIs.
    device_name = "/dev/sda1"

    ebs {
      volume_type           = "gp3"
      volume_size           = var.root_volume_size
      encrypted             = true
      kms_key_id            = var.root_volume_kms_key_id
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(local.tags, { (local.tag_role) = each.value.role })
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_autoscaling_group" "node" {
  for_each = local.node_groups_by_role

  name                = each.value.asg_name
  vpc_zone_identifier = var.subnet_ids
  desired_capacity    = each.value.desired_capacity
  min_size            = each.value.min_size
  max_size            = each.value.max_size
  target_group_arns   = each.value.target_group_arns
  # EC2 health only: replacing a control plane whose API fails is the remediator's call, because it
  # checks etcd quorum first (an ELB health check would not).
  health_check_type         = "EC2"
  health_check_grace_period = var.health_check_grace_period
  default_instance_warmup   = var.instance_warmup
  # New instances wait in Pending:Wait until kcluster's functions complete their launch hook, and those
  # are deployed after this module: Terraform must not wait for capacity.
  wait_for_capacity_timeout = "0"
  enabled_metrics = [
    "GroupDesiredCapacity", "GroupInServiceInstances", "GroupPendingInstances",
    "GroupTerminatingInstances", "GroupTotalInstances",
  ]

  launch_template {
    id      = aws_launch_template.node[each.key].id
    version = aws_launch_template.node[each.key].latest_version
  }

  dynamic "initial_lifecycle_hook" {
    for_each = local.lifecycle_hooks

    content {
      name                 = initial_lifecycle_hook.value.name
      lifecycle_transition = initial_lifecycle_hook.value.lifecycle_transition
      heartbeat_timeout    = initial_lifecycle_hook.value.heartbeat_timeout
      default_result       = initial_lifecycle_hook.value.default_result
    }
  }

  # No instance_refresh block: Terraform would start a refresh of both groups at once on every
  # launch template change, without the preflight, breaking one-control-plane-at-a-time and the skew
  # policy. The control loop starts them (core/rollout.py) from the launch_template_version each group
  # carries in the cluster config (ssm.tf); var.rollout sets how.

  dynamic "tag" {
    for_each = merge(local.tags, {
      Name                = each.value.asg_name
      (local.tag_cluster) = var.cluster_name
      (local.tag_role)    = each.value.role
    })

    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  lifecycle {
    precondition {
      condition     = length(local.subnet_availability_zones) >= 3
      error_message = "subnet_ids must span at least three availability zones."
    }

    precondition {
      condition     = alltrue([for subnet in data.aws_subnet.nodes : subnet.vpc_id == var.vpc_id])
      error_message = "Every subnet in subnet_ids must belong to vpc_id."
    }

    precondition {
      condition     = each.value.min_size <= each.value.desired_capacity && each.value.desired_capacity <= each.value.max_size
      error_message = "Each node group needs min_size <= desired_capacity <= max_size."
    }
  }

  # The functions read the configuration and run the documents as soon as the first instance launches,
  # and the node's user data needs its instance profile's permissions to announce itself.
  depends_on = [
    aws_ssm_parameter.config,
    aws_ssm_document.node,
    aws_iam_role_policy.node,
    aws_iam_role_policy_attachment.node_ssm_core,
    aws_kms_key.secrets,
    aws_lb_listener.control_plane,
  ]
}
