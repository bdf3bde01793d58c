################################################################################
# Control-plane endpoint: an NLB forwarding TCP 6443 to the control-plane ASG
################################################################################

resource "aws_lb" "control_plane" {
  #checkov:skip=CKV_AWS_91:Access logs need a bucket the operator owns; var.endpoint_access_logs turns them on.
  # Load balancer names stop at 32 characters, too few for "kcluster-<name>"; the Name tag carries it.
  name_prefix                      = "kc-"
  load_balancer_type               = "network"
  internal                         = !var.endpoint_internet_facing
  subnets                          = local.endpoint_subnet_ids
  security_groups                  = [aws_security_group.endpoint.id]
  enable_cross_zone_load_balancing = true
  enable_deletion_protection       = var.endpoint_deletion_protection
  tags                             = merge(local.tags, { Name = "kcluster-${var.cluster_name}" })

  dynamic "access_logs" {
    for_each = var.endpoint_access_logs == null ? [] : [var.endpoint_access_logs]

    content {
      bucket  = access_logs.value.bucket
      prefix  = access_logs.value.prefix
      enabled = true
    }
  }
}

resource "aws_lb_target_group" "control_plane" {
  name_prefix = "kc-"
  port        = local.control_plane_port
  protocol    = "TCP"
  target_type = "instance"
  vpc_id      = var.vpc_id
  # An NLB preserving the client IP drops traffic from a target to itself (the first master's kubelet
  # reaching the API through the endpoint would time out), so the NLB must present its own address.
  preserve_client_ip   = false
  deregistration_delay = 30
  tags                 = merge(local.tags, { Name = "kcluster-${var.cluster_name}-api" })

  health_check {
    protocol            = "TCP"
    port                = "traffic-port"
    interval            = 10
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_lb_listener" "control_plane" {
  load_balancer_arn = aws_lb.control_plane.arn
  port              = local.control_plane_port
  protocol          = "TCP"
  tags              = local.tags

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.control_plane.arn
  }
}
