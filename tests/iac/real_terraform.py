"""Fixtures for real Terraform on a copy of the module (twin/terraform/runner.py): realistic ids of an
operator's existing network, and the inputs an operator gives."""

from __future__ import annotations

import os
from pathlib import Path

from twin.terraform import runner

# Where `make terraform-tools` caches the schema the provider serves (realtf.SCHEMA).
SCHEMA = (
    Path(os.environ.get("KCLUSTER_CACHE", Path.home() / ".cache" / "kcluster"))
    / "terraform"
    / "aws-5.99.1"
    / "schema.json"
)

REGION = "eu-west-1"
VPC_ID = "vpc-0a1b2c3d4e5f60718"
SUBNETS = {
    "subnet-0a1a1a1a1a1a1a1a1": ("eu-west-1a", "10.20.0.0/20"),
    "subnet-0b2b2b2b2b2b2b2b2": ("eu-west-1b", "10.20.16.0/20"),
    "subnet-0c3c3c3c3c3c3c3c3": ("eu-west-1c", "10.20.32.0/20"),
}
OTHER_VPC_SUBNET = "subnet-0d4d4d4d4d4d4d4d4"
SAME_ZONE_SUBNET = "subnet-0e5e5e5e5e5e5e5e5"


def fixtures() -> dict:
    """What the data sources read: the VPC, its subnets (one in another VPC, one in a zone already used)."""
    subnets = {
        subnet: {"vpc_id": VPC_ID, "availability_zone": zone, "cidr_block": cidr}
        for subnet, (zone, cidr) in SUBNETS.items()
    }
    subnets[OTHER_VPC_SUBNET] = {
        "vpc_id": "vpc-0ffffffffffffffff",
        "availability_zone": "eu-west-1b",
        "cidr_block": "172.16.0.0/20",
    }
    subnets[SAME_ZONE_SUBNET] = {
        "vpc_id": VPC_ID,
        "availability_zone": "eu-west-1a",
        "cidr_block": "10.20.48.0/20",
    }
    return {
        "account_id": "123456789012",
        "data": {
            "aws_vpc": {
                VPC_ID: {
                    "cidr_block": "10.20.0.0/16",
                    "arn": f"arn:aws:ec2:{REGION}:123456789012:vpc/{VPC_ID}",
                }
            },
            "aws_subnet": subnets,
        },
    }


# The root module's inputs, as an operator would give them.
ROOT_VARIABLES = {
    "cluster_name": "prod-eu",
    "kubernetes_version": "1.33.5",
    "vpc_id": VPC_ID,
    "subnet_ids": list(SUBNETS),
    "api_allowed_cidrs": ["10.99.0.0/16"],
    "admin_principal_arns": ["arn:aws:iam::123456789012:role/platform-admins"],
    "control_plane_desired_capacity": 3,
    "worker_desired_capacity": 4,
    "tags": {"Environment": "production", "CostCenter": "platform"},
}
EXAMPLE_VARIABLES = {"vpc_id": VPC_ID, "subnet_ids": list(SUBNETS), "api_allowed_cidrs": ["10.99.0.0/16"]}


class RealTerraform(runner.RealTerraform):
    """The runner with these fixtures, in the fixtures' region."""

    def __init__(self, workdir: Path):
        super().__init__(workdir, fixtures(), REGION)
