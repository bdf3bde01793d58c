"""The twin's `terraform apply` of terraform/, from Terraform's own plan: what the world calls.

1. The operator's network exists first (twin/terraform/network.py), and Canonical's AMI parameter.
2. The module is planned and applied once per distinct (module contents, inputs) by real Terraform
   against the schema-serving provider, and cached (twin/terraform/plan.py).
3. Every planned resource is created in moto from the applied values, stand-ins for what AWS names
   replaced by moto's real ids as each resource is created (twin/terraform/deploy.py, resolve.py).

So the launch templates carry the user data Terraform rendered, the SSM documents the nodes run are
the content Terraform planned, the cluster config parameter is Terraform's jsonencode, and the node
roles' policies the twin enforces (twin/iam/nodes.py) are the JSON the provider rendered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kcluster.config import ClusterConfig
from twin.account import ACCOUNT_ID, REGION
from twin.terraform import deploy, network
from twin.terraform.plan import Planned, plan_module
from twin.terraform.resolve import Resolver

# The operator's role in the twin: an administrator, named in the module's admin_principal_arns.
OPERATOR_ROLE_NAME = "kcluster-operator"
ARCHITECTURE = "arm64"


def operator_role_arn(account: str = ACCOUNT_ID) -> str:
    return f"arn:aws:iam::{account}:role/{OPERATOR_ROLE_NAME}"


def module_variables(cluster: str) -> dict[str, Any]:
    """The module's inputs as the twin deploys it: the operator's network and administrators; every
    other input at the module's default."""
    return {
        "cluster_name": cluster,
        "vpc_id": network.VPC_PLACEHOLDER,
        "subnet_ids": list(network.SUBNETS),
        "admin_principal_arns": [operator_role_arn()],
        "architecture": ARCHITECTURE,
    }


def planned_module(cluster: str) -> Planned:
    return plan_module(module_variables(cluster), network.fixtures(), REGION)


@dataclass
class Deployment:
    """What the apply created, read from the applied values (never restated)."""

    planned: Planned
    applied: deploy.Applied
    network: network.Network

    @property
    def vpc_id(self) -> str:
        return self.network.vpc_id

    @property
    def subnet_ids(self) -> list[str]:
        return self.network.subnet_ids

    @property
    def config_parameter(self) -> str:
        name: str = self.applied["aws_ssm_parameter.config"]["name"]
        return name

    @property
    def config(self) -> ClusterConfig:
        return ClusterConfig.model_validate_json(self.applied["aws_ssm_parameter.config"]["value"])

    @property
    def load_balancer_arn(self) -> str:
        return str(self.applied["aws_lb.control_plane"]["arn"])

    @property
    def load_balancer_dns(self) -> str:
        return str(self.applied["aws_lb.control_plane"]["dns_name"])

    @property
    def target_group_arn(self) -> str:
        return str(self.applied["aws_lb_target_group.control_plane"]["arn"])

    @property
    def kms_key_arn(self) -> str:
        return self.config.kms_key_arn or ""

    @property
    def ssm_transfer_bucket(self) -> str:
        return self.config.ssm_transfer_bucket or ""

    @property
    def node_groups(self) -> list[tuple[str, str]]:
        """(Auto Scaling group name, role) of every group, as the cluster config lists them."""
        return [(group.asg_name, group.role) for group in self.config.node_groups]

    @property
    def launch_template_ids(self) -> dict[str, str]:
        """Auto Scaling group name -> the id of its launch template."""
        return {
            values["name"]: values["launch_template"][0]["id"]
            for values in self.applied.of_type("aws_autoscaling_group").values()
        }

    def document_content(self, name: str) -> dict[str, Any]:
        for values in self.applied.of_type("aws_ssm_document").values():
            if values["name"] == name:
                content: dict[str, Any] = json.loads(values["content"])
                return content
        raise KeyError(name)


def deploy_module(cluster: str) -> Deployment:
    """Plan (cached) and deploy the module into the running moto, with the operator's network."""
    planned = planned_module(cluster)
    aws = deploy.Clients()
    network.publish_public_ubuntu_ami(REGION, ARCHITECTURE, ec2=aws("ec2"))
    existing = network.create_network(cluster, ec2=aws("ec2"))
    resolver = Resolver(deploy.stand_ins(planned))
    for placeholder, real in existing.placeholders().items():
        resolver.learn_read(placeholder, real)
    return Deployment(planned, deploy.apply(planned, resolver, aws), existing)
