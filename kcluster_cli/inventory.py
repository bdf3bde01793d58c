"""`kcluster inventory`: an Ansible dynamic inventory of the cluster's nodes, as the seed's script made it.

The seed's groups and variables stay (`masters` with `elb`, `workers`, hostvars `ansible_host` and
`private_ip`, hosts named by their short private DNS name); added are a group per node group
(`control_plane`, `workers`, and `asg_<name>` as aws_ec2's keyed groups spell it), `in_service`, and the
API endpoint. Nodes are reached through SSM Session Manager (amazon.aws.aws_ssm), not SSH: each host
carries the instance id, the region and the S3 bucket Terraform made for the plugin's file transfers.
"""

from __future__ import annotations

import re
from typing import Any

from kcluster import contract
from kcluster_cli.aws import Cluster
from kcluster_cli.errors import OperatorError
from kcluster_cli.fleet import InstanceView, node_groups

ROLE_GROUPS = {contract.ROLE_CONTROL_PLANE: ("masters", "control_plane"), contract.ROLE_WORKER: ("workers",)}
SSM_CONNECTION = "amazon.aws.aws_ssm"


def build(cluster: Cluster) -> dict[str, Any]:
    """The `--list` document: groups, their hosts and vars, and every host's variables under _meta."""
    endpoint_host, _, endpoint_port = cluster.config.control_plane_endpoint.rpartition(":")
    groups: dict[str, dict[str, Any]] = {
        "masters": {"hosts": [], "vars": {"elb": endpoint_host}},
        "control_plane": {"hosts": []},
        "workers": {"hosts": []},
        "in_service": {"hosts": []},
    }
    hostvars: dict[str, dict[str, Any]] = {}
    for group in node_groups(cluster):
        keyed = "asg_" + re.sub(r"[^A-Za-z0-9_]", "_", group.asg_name)
        groups.setdefault(keyed, {"hosts": []})
        for instance in group.instances:
            if instance.state != "running":
                continue  # as the seed's script: only running instances can be reached
            name = instance.host_name
            hostvars[name] = host_variables(cluster, instance)
            for role_group in ROLE_GROUPS[group.role]:
                groups[role_group]["hosts"].append(name)
            groups[keyed]["hosts"].append(name)
            if instance.lifecycle_state == "InService":
                groups["in_service"]["hosts"].append(name)
    return {
        "_meta": {"hostvars": hostvars},
        "all": {
            "children": ["ungrouped", *groups],
            "vars": {
                "kcluster_cluster": cluster.name,
                "api_endpoint": cluster.config.control_plane_endpoint,
                "api_endpoint_host": endpoint_host,
                "api_endpoint_port": int(endpoint_port),
                "kubernetes_version": cluster.config.kubernetes_version,
            },
        },
        **groups,
    }


def host_variables(cluster: Cluster, instance: InstanceView) -> dict[str, Any]:
    variables: dict[str, Any] = {
        # The seed's two variables. With Session Manager the instance id is the address to reach.
        "ansible_host": instance.instance_id,
        "private_ip": instance.private_ip,
        "private_dns": instance.private_dns,
        "instance_id": instance.instance_id,
        "availability_zone": instance.availability_zone,
        "node_role": instance.role,
        "node_group": instance.asg_name,
        "asg_lifecycle_state": instance.lifecycle_state,
        "ansible_connection": SSM_CONNECTION,
        "ansible_aws_ssm_instance_id": instance.instance_id,
        "ansible_aws_ssm_region": cluster.region,
    }
    bucket = cluster.config.ssm_transfer_bucket
    if bucket:
        # Default encryption (SSE-S3) applies to the plugin's uploads; no SSE setting is needed.
        variables["ansible_aws_ssm_bucket_name"] = bucket
    return variables


def host(cluster: Cluster, name: str) -> dict[str, Any]:
    hostvars = build(cluster)["_meta"]["hostvars"]
    if name not in hostvars:
        known = ", ".join(sorted(hostvars)) or "none"
        raise OperatorError(f"no host {name!r} in cluster {cluster.name!r} (hosts: {known})")
    variables: dict[str, Any] = hostvars[name]
    return variables
