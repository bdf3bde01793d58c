"""The module as Terraform plans it (twin/terraform/plan.py: real Terraform, the schema-serving provider,
cached per distinct module contents and inputs): every test here reads the module through one of two
plans (a third for the module's defaults), so a fresh machine pays for three plans, not one per test.

- `twin_plan`: the inputs the twin deploys with (cluster demo, the module's own KMS key, the operator
  as the admin principal, every other input at its default).
- `custom_plan`: an operator's choices, every input the checks vary set away from its default (their
  own key and boundary, tags, versions, CIDRs, an AMI, an internet-facing endpoint).
- `bare_plan`: only the inputs without a default (so the module's own key, and no admin principals).
"""

from __future__ import annotations

from typing import Any

import pytest

from kcluster import contract
from tests.iac.real_terraform import REGION, SUBNETS, VPC_ID, fixtures
from twin.terraform.deployment import planned_module
from twin.terraform.plan import Planned, plan_module

OWN_KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
BOUNDARY = "arn:aws:iam::123456789012:policy/boundaries/kcluster"
OWN_AMI = "ami-0123456789abcdef0"
CUSTOM_VARIABLES: dict[str, Any] = {
    "cluster_name": "prod-east",
    "vpc_id": VPC_ID,
    "subnet_ids": list(SUBNETS),
    "kubernetes_version": "1.32.10",
    "pod_cidr": "192.168.0.0/16",
    "cni_version": "v3.28.2",
    "timeouts": {"drain_seconds": 900},
    "worker_batch_size": 20,
    "tags": {contract.TAG_CLUSTER: "other", contract.TAG_ROLE: "worker", "team": "infra"},
    "kms_key_arn": OWN_KEY,
    "permissions_boundary_arn": BOUNDARY,
    "ami_id": OWN_AMI,
    "api_allowed_cidrs": ["203.0.113.0/24"],
    "endpoint_internet_facing": True,
    "control_plane_desired_capacity": 5,
}

# What an operator must give and nothing else.
BARE_VARIABLES: dict[str, Any] = {"cluster_name": "bare", "vpc_id": VPC_ID, "subnet_ids": list(SUBNETS)}


@pytest.fixture(scope="session")
def twin_plan() -> Planned:
    return planned_module("demo")


@pytest.fixture(scope="session")
def custom_plan() -> Planned:
    return plan_module(CUSTOM_VARIABLES, fixtures(), REGION)


@pytest.fixture(scope="session")
def bare_plan() -> Planned:
    """Only the inputs without a default: the module's own key, and no admin principals."""
    return plan_module(BARE_VARIABLES, fixtures(), REGION)


def instances(planned: Planned, base: str) -> dict[str, dict[str, Any]]:
    """for_each key (or count index, or "" for a single instance) -> applied values of `base`'s instances."""
    found = {}
    for resource in planned.resources():
        address = resource["address"]
        if address == base or address.startswith(base + "["):
            key = address[len(base) :].strip("[]").strip('"')
            found[key] = resource["values"]
    return found


def one(planned: Planned, base: str) -> dict[str, Any]:
    (values,) = instances(planned, base).values()
    return values
