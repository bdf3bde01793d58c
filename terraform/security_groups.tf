################################################################################
# Security groups: only what kubeadm, etcd and Calico (IPIP, as its stock manifest configures) need.
# No port 22 anywhere: every action on a node goes through SSM.
################################################################################

resource "aws_security_group" "endpoint" {
  name_prefix = "kcluster-${var.cluster_name}-endpoint-"
  description = "kcluster ${var.cluster_name}: control-plane NLB (Kubernetes API, TCP 6443)"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "kcluster-${var.cluster_name}-endpoint" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "control_plane" {
  name_prefix = "kcluster-${var.cluster_name}-control-plane-"
  description = "kcluster ${var.cluster_name}: control-plane nodes"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "kcluster-${var.cluster_name}-control-plane" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "worker" {
  name_prefix = "kcluster-${var.cluster_name}-worker-"
  description = "kcluster ${var.cluster_name}: worker nodes"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "kcluster-${var.cluster_name}-worker" })

  lifecycle {
    create_before_destroy = true
  }
}

locals {
  security_group_ids = {
    endpoint      = aws_security_group.endpoint.id
    control_plane = aws_security_group.control_plane.id
    worker        = aws_security_group.worker.id
  }

  node_groups = ["control_plane", "worker"]

  # Rules between the cluster's own security groups: key => group, peer, protocol, ports, why.
  # Pods reach the API server on the nodes' own addresses (the kubernetes Service), hence 6443 from nodes.
  # With preserve_client_ip = false the NLB's traffic and health checks come from the NLB's group.
  internal_ingress_rules = merge(
    {
      "control-plane-api-from-endpoint" = { group = "control_plane", peer = "endpoint", protocol = "tcp", from = 6443, to = 6443, description = "Kubernetes API from the control-plane NLB" }
      "control-plane-etcd"              = { group = "control_plane", peer = "control_plane", protocol = "tcp", from = 2379, to = 2380, description = "etcd client and peer traffic between control planes" }
    },
    { for node in local.node_groups : "endpoint-api-from-${replace(node, "_", "-")}" => { group = "endpoint", peer = node, protocol = "tcp", from = 6443, to = 6443, description = "Kubernetes API through the NLB from the nodes" } },
    { for node in local.node_groups : "control-plane-api-from-${replace(node, "_", "-")}" => { group = "control_plane", peer = node, protocol = "tcp", from = 6443, to = 6443, description = "Kubernetes API (kubernetes Service) from the nodes" } },
    merge([
      for group in local.node_groups : {
        for peer in local.node_groups : "${replace(group, "_", "-")}-from-${replace(peer, "_", "-")}-kubelet" => {
          group = group, peer = peer, protocol = "tcp", from = 10250, to = 10250, description = "kubelet API (logs, exec, metrics)"
        }
      }
    ]...),
    merge([
      for group in local.node_groups : {
        for peer in local.node_groups : "${replace(group, "_", "-")}-from-${replace(peer, "_", "-")}-bgp" => {
          group = group, peer = peer, protocol = "tcp", from = 179, to = 179, description = "Calico BGP between nodes"
        }
      }
    ]...),
    merge([
      for group in local.node_groups : {
        for peer in local.node_groups : "${replace(group, "_", "-")}-from-${replace(peer, "_", "-")}-ipip" => {
          group = group, peer = peer, protocol = "4", from = null, to = null, description = "Calico IP-in-IP pod traffic between nodes"
        }
      }
    ]...),
  )

  internal_egress_rules = merge(
    { "endpoint-to-control-plane" = { group = "endpoint", peer = "control_plane", protocol = "tcp", from = 6443, to = 6443, description = "NLB to the API servers (traffic and health checks)" } },
    { for node in local.node_groups : "${replace(node, "_", "-")}-to-endpoint" => { group = node, peer = "endpoint", protocol = "tcp", from = 6443, to = 6443, description = "Kubernetes API through the NLB" } },
    merge([
      for group in local.node_groups : {
        for peer in local.node_groups : "${replace(group, "_", "-")}-to-${replace(peer, "_", "-")}" => {
          group = group, peer = peer, protocol = "-1", from = null, to = null, description = "cluster traffic to the other nodes (their ingress rules decide)"
        }
      }
    ]...),
  )

  # Nodes install packages and reach AWS APIs over HTTP(S) and resolve names with the VPC resolver.
  external_egress_rules = merge(
    merge([
      for node in local.node_groups : {
        for pair in setproduct(var.egress_cidrs, [80, 443]) : "${replace(node, "_", "-")}-to-${pair[0]}-${pair[1]}" => {
          group = node, cidr = pair[0], protocol = "tcp", from = pair[1], to = pair[1], description = pair[1] == 443 ? "HTTPS: AWS APIs, pkgs.k8s.io, registries" : "HTTP: Ubuntu package mirrors"
        }
      }
    ]...),
    merge([
      for node in local.node_groups : {
        for protocol in ["udp", "tcp"] : "${replace(node, "_", "-")}-to-vpc-dns-${protocol}" => {
          group = node, cidr = data.aws_vpc.this.cidr_block, protocol = protocol, from = 53, to = 53, description = "DNS to the VPC resolver"
        }
      }
    ]...),
  )
}

resource "aws_vpc_security_group_ingress_rule" "internal" {
  for_each = local.internal_ingress_rules

  security_group_id            = local.security_group_ids[each.value.group]
  referenced_security_group_id = local.security_group_ids[each.value.peer]
  ip_protocol                  = each.value.protocol
  from_port                    = each.value.from
  to_port                      = each.value.to
  description                  = each.value.description
  tags                         = merge(local.tags, { Name = each.key })
}

resource "aws_vpc_security_group_ingress_rule" "api_allowed" {
  for_each = toset(var.api_allowed_cidrs)

  security_group_id = aws_security_group.endpoint.id
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = local.control_plane_port
  to_port           = local.control_plane_port
  description       = "Kubernetes API from an allowed network"
  tags              = merge(local.tags, { Name = "endpoint-api-from-${each.value}" })
}

resource "aws_vpc_security_group_egress_rule" "internal" {
  for_each = local.internal_egress_rules

  security_group_id            = local.security_group_ids[each.value.group]
  referenced_security_group_id = local.security_group_ids[each.value.peer]
  ip_protocol                  = each.value.protocol
  from_port                    = each.value.from
  to_port                      = each.value.to
  description                  = each.value.description
  tags                         = merge(local.tags, { Name = each.key })
}

resource "aws_vpc_security_group_egress_rule" "external" {
  for_each = local.external_egress_rules

  security_group_id = local.security_group_ids[each.value.group]
  cidr_ipv4         = each.value.cidr
  ip_protocol       = each.value.protocol
  from_port         = each.value.from
  to_port           = each.value.to
  description       = each.value.description
  tags              = merge(local.tags, { Name = each.key })
}
