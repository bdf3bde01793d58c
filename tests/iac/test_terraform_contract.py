"""What the module writes for kcluster's functions and nodes, as Terraform plans it: the groups' hooks and
tags, the SSM documents, the cluster config parameter (validated by the product's own model).

The twin deploys this same plan (twin/terraform/deployment.py), so there is no second description
to keep in step; what is checked here is that the plan says what the contract (kcluster.contract,
kcluster.config) and terraform/documents/documents.json define.
"""

from __future__ import annotations

import json

import pytest

from kcluster import contract
from kcluster.config import ClusterConfig
from tests.iac.conftest import OWN_KEY, instances, one
from twin.terraform.network import UBUNTU_AMI_PARAMETER
from twin.terraform.runner import TERRAFORM_DIR

ROLE_KEYS = {contract.ROLE_CONTROL_PLANE: "control_plane", contract.ROLE_WORKER: "worker"}


def _group(planned, role: str) -> dict:
    asg = instances(planned, "aws_autoscaling_group.node")[ROLE_KEYS[role]]
    return {
        "asg_name": asg["name"],
        "hooks": {
            hook["name"]: (hook["lifecycle_transition"], hook["heartbeat_timeout"], hook["default_result"])
            for hook in asg["initial_lifecycle_hook"]
        },
        "tags": {tag["key"]: tag["value"] for tag in asg["tag"]},
        "propagated": {tag["key"]: tag["propagate_at_launch"] for tag in asg["tag"]},
        "desired": asg["desired_capacity"],
    }


@pytest.mark.parametrize("role", [contract.ROLE_CONTROL_PLANE, contract.ROLE_WORKER])
def test_asg_settings_follow_the_contract(twin_plan, role: str):
    group = _group(twin_plan, role)
    expected_name = (
        "kcluster-demo-control-plane" if role == contract.ROLE_CONTROL_PLANE else "kcluster-demo-workers"
    )
    assert group["asg_name"] == expected_name
    assert group["hooks"] == {
        "kcluster-launch": (contract.LAUNCH_TRANSITION, 900, "ABANDON"),
        "kcluster-terminate": (contract.TERMINATE_TRANSITION, 900, "CONTINUE"),
    }
    assert group["tags"][contract.TAG_CLUSTER] == "demo"
    assert group["tags"][contract.TAG_ROLE] == role
    assert group["propagated"][contract.TAG_CLUSTER] is group["propagated"][contract.TAG_ROLE] is True
    assert group["desired"] == 3


def test_user_tags_cannot_override_the_contract_tags(custom_plan):
    group = _group(custom_plan, contract.ROLE_CONTROL_PLANE)
    assert group["tags"][contract.TAG_CLUSTER] == "prod-east"
    assert group["tags"][contract.TAG_ROLE] == contract.ROLE_CONTROL_PLANE
    assert group["tags"]["team"] == "infra"
    assert group["desired"] == 5


def test_documents_are_the_definitions_named_as_the_contract_says(twin_plan):
    documents = instances(twin_plan, "aws_ssm_document.node")
    definitions = json.loads((TERRAFORM_DIR / "documents" / "documents.json").read_text())["documents"]
    assert sorted(documents) == sorted(definitions)
    for key, document in documents.items():
        assert document["name"] == contract.document_name("demo", key)
        assert document["document_type"] == "Command"
        content = json.loads(document["content"])
        assert content["description"] == definitions[key]["description"]
        assert content["mainSteps"][0]["inputs"]["timeoutSeconds"] == definitions[key]["timeout_seconds"]
        assert {name: p["allowedPattern"] for name, p in content["parameters"].items()} == {
            name: spec["allowedPattern"] for name, spec in definitions[key]["parameters"].items()
        }
        for name, parameter in content["parameters"].items():
            pattern = parameter["allowedPattern"]
            assert pattern.startswith("^") and pattern.endswith("$"), name
            assert parameter["interpolationType"] == "ENV_VAR", name


def _config(planned) -> dict:
    parameter = one(planned, "aws_ssm_parameter.config")
    config: dict = json.loads(parameter["value"])
    return config


def test_config_parameter_validates_with_cluster_config(twin_plan):
    parameter = one(twin_plan, "aws_ssm_parameter.config")
    assert parameter["name"] == contract.config_parameter_name("demo")
    config = ClusterConfig.model_validate(_config(twin_plan))
    # What the apply named: the NLB's DNS name, the target group's and the key's ARNs, the bucket.
    assert config.control_plane_endpoint == f"{one(twin_plan, 'aws_lb.control_plane')['dns_name']}:6443"
    assert config.api_target_group_arn == one(twin_plan, "aws_lb_target_group.control_plane")["arn"]
    assert config.kms_key_arn == one(twin_plan, "aws_kms_key.secrets")["arn"]
    assert config.ssm_transfer_bucket == one(twin_plan, "aws_s3_bucket.ssm_transfer")["bucket"]
    assert config.role_of("kcluster-demo-control-plane") == contract.ROLE_CONTROL_PLANE
    assert config.role_of("kcluster-demo-workers") == contract.ROLE_WORKER
    assert config.documents.by_key(contract.DOC_REFRESH_JOIN) == contract.document_name(
        "demo", "refresh-join"
    )


def test_config_defaults_are_cluster_config_defaults(twin_plan):
    written = _config(twin_plan)
    # What Terraform writes with every variable at its default equals what ClusterConfig assumes when a
    # key is left out: one set of defaults, not two.
    minimal = ClusterConfig.model_validate(
        {
            key: written[key]
            for key in (
                "cluster_name",
                "control_plane_endpoint",
                "node_groups",
                "documents",
                "api_target_group_arn",
                "kms_key_arn",
                "ssm_transfer_bucket",
                "backup_bucket",
            )
        }
    )
    assert ClusterConfig.model_validate(written) == minimal
    # Every field is written explicitly, recursively.
    assert set(written) == set(ClusterConfig.model_fields)
    assert set(written["timeouts"]) == set(minimal.timeouts.model_dump())
    assert set(written["cni"]) == set(minimal.cni.model_dump())


def test_config_follows_the_variables(custom_plan):
    config = ClusterConfig.model_validate(_config(custom_plan))
    assert (config.kubernetes_version, config.pod_cidr, config.worker_batch_size) == (
        "1.32.10",
        "192.168.0.0/16",
        20,
    )
    assert (
        config.cni.manifest_url
        == "https://raw.githubusercontent.com/projectcalico/calico/v3.28.2/manifests/calico.yaml"
    )
    assert (config.timeouts.drain_seconds, config.timeouts.join_seconds) == (900, 600)
    # The nodes read the key to encrypt SecureStrings with from the config (common.sh, --key-id).
    assert config.kms_key_arn == OWN_KEY


def test_the_ami_comes_from_the_public_parameter_the_twin_publishes(twin_plan):
    parameter = one(twin_plan, "data.aws_ssm_parameter.ubuntu_ami")
    assert parameter["name"] == UBUNTU_AMI_PARAMETER.format(architecture="arm64")
    for template in instances(twin_plan, "aws_launch_template.node").values():
        assert template["image_id"] == parameter["value"]
