"""terraform/ and the local twin must create the same thing: the twin stands in for `terraform apply`.

The twin builds its infrastructure with boto3 from twin.infra.default_spec(); here the same facts are
read from the HCL (evaluated offline) and compared: ASG names and roles, lifecycle hooks, propagated
tags, SSM documents (names and full content) and the cluster configuration.
"""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass

import pytest

from kcluster import contract
from kcluster.config import ClusterConfig
from twin import documents as twin_documents
from twin.terraform.evaluator import TerraformEvaluator, computed_placeholder
from twin.terraform.hcl import TERRAFORM_DIR, load_configuration

CLUSTER = "demo"
INPUTS = {
    "cluster_name": CLUSTER,
    "vpc_id": "vpc-0123456789abcdef0",
    "subnet_ids": ["subnet-0000000000000000a", "subnet-0000000000000000b", "subnet-0000000000000000c"],
}
ROLE_KEYS = {contract.ROLE_CONTROL_PLANE: "control_plane", contract.ROLE_WORKER: "worker"}


@pytest.fixture(scope="module")
def evaluator() -> TerraformEvaluator:
    return TerraformEvaluator(load_configuration(TERRAFORM_DIR), INPUTS)


@pytest.fixture(scope="module")
def twin_spec():
    from twin import infra

    return infra.default_spec(CLUSTER, 3, 3)


def _plain(value):
    return asdict(value) if is_dataclass(value) else value


def _terraform_group(evaluator: TerraformEvaluator, role: str) -> dict:
    asg = evaluator.resource("aws_autoscaling_group", "node")[ROLE_KEYS[role]]
    scope = asg.scope()
    return {
        "asg_name": asg.attribute("name"),
        "hooks": {
            hook["name"]: (hook["lifecycle_transition"], hook["heartbeat_timeout"], hook["default_result"])
            for hook in evaluator.dynamic_blocks(asg.block, "initial_lifecycle_hook", scope)
        },
        "tags": {tag["key"]: tag["value"] for tag in evaluator.dynamic_blocks(asg.block, "tag", scope)},
        "propagated": {
            tag["key"]: tag["propagate_at_launch"]
            for tag in evaluator.dynamic_blocks(asg.block, "tag", scope)
        },
        "desired": asg.attribute("desired_capacity"),
    }


def _twin_group(group) -> dict:
    group = _plain(group)
    return {
        "asg_name": group["asg_name"],
        "role": group["role"],
        "hooks": {
            _plain(hook)["name"]: (
                _plain(hook)["transition"],
                _plain(hook)["heartbeat_timeout"],
                _plain(hook)["default_result"],
            )
            for hook in group["lifecycle_hooks"]
        },
        "tags": dict(group["tags"]),
    }


@pytest.mark.parametrize("role", [contract.ROLE_CONTROL_PLANE, contract.ROLE_WORKER])
def test_asg_hooks_and_tags_match_the_twin(evaluator: TerraformEvaluator, twin_spec, role: str):
    spec = _plain(twin_spec)
    group = spec["control_plane"] if role == contract.ROLE_CONTROL_PLANE else spec["workers"][0]
    twin_group = _twin_group(group)
    terraform_group = _terraform_group(evaluator, role)
    assert spec["cluster_name"] == CLUSTER
    assert twin_group["role"] == role
    assert terraform_group["asg_name"] == twin_group["asg_name"]
    assert terraform_group["hooks"] == twin_group["hooks"]
    # Every tag the twin puts on the group (the contract's), with the same value, propagated.
    for key, value in twin_group["tags"].items():
        assert terraform_group["tags"].get(key) == value, key
        assert terraform_group["propagated"][key] is True, key


@pytest.mark.parametrize("role", [contract.ROLE_CONTROL_PLANE, contract.ROLE_WORKER])
def test_asg_settings_follow_the_contract(evaluator: TerraformEvaluator, role: str):
    group = _terraform_group(evaluator, role)
    expected_name = (
        f"kcluster-{CLUSTER}-control-plane"
        if role == contract.ROLE_CONTROL_PLANE
        else (f"kcluster-{CLUSTER}-workers")
    )
    assert group["asg_name"] == expected_name
    assert group["hooks"] == {
        "kcluster-launch": (contract.LAUNCH_TRANSITION, 900, "ABANDON"),
        "kcluster-terminate": (contract.TERMINATE_TRANSITION, 900, "CONTINUE"),
    }
    assert group["tags"][contract.TAG_CLUSTER] == CLUSTER
    assert group["tags"][contract.TAG_ROLE] == role
    assert group["propagated"][contract.TAG_CLUSTER] is group["propagated"][contract.TAG_ROLE] is True
    assert group["desired"] == 3


def test_user_tags_cannot_override_the_contract_tags():
    evaluator = TerraformEvaluator(
        load_configuration(TERRAFORM_DIR),
        {**INPUTS, "tags": {contract.TAG_CLUSTER: "other", contract.TAG_ROLE: "worker", "team": "infra"}},
    )
    group = _terraform_group(evaluator, contract.ROLE_CONTROL_PLANE)
    assert group["tags"][contract.TAG_CLUSTER] == CLUSTER
    assert group["tags"][contract.TAG_ROLE] == contract.ROLE_CONTROL_PLANE
    assert group["tags"]["team"] == "infra"


def test_documents_are_exactly_what_the_twin_runs(evaluator: TerraformEvaluator, twin_spec):
    documents = evaluator.resource("aws_ssm_document", "node")
    assert sorted(documents) == sorted(twin_documents.load_documents())
    assert sorted(_plain(twin_spec)["documents"]) == sorted(documents)
    for key, document in documents.items():
        assert document.attribute("name") == contract.document_name(CLUSTER, key)
        assert document.attribute("document_type") == "Command"
        content = json.loads(document.attribute("content"))
        assert content == twin_documents.document_content(key)
        for name, parameter in content["parameters"].items():
            assert parameter["allowedPattern"].startswith("^") and parameter["allowedPattern"].endswith(
                "$"
            ), name
            assert parameter["interpolationType"] == "ENV_VAR", name


# The target group's ARN exists only after apply: this one stands in for it.
TARGET_GROUP_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/kc-demo/0123456789abcdef"
# So does the cluster's KMS key's.
KMS_KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"


def _config(evaluator: TerraformEvaluator) -> dict:
    parameter = evaluator.resource("aws_ssm_parameter", "config")
    assert parameter.attribute("name") == contract.config_parameter_name(CLUSTER)
    config = json.loads(parameter.attribute("value"))
    assert config["api_target_group_arn"] == computed_placeholder(
        "aws_lb_target_group", "control_plane", "arn"
    )
    assert config["kms_key_arn"] == computed_placeholder("aws_kms_key", "secrets", "0", "arn")
    return {**config, "api_target_group_arn": TARGET_GROUP_ARN, "kms_key_arn": KMS_KEY_ARN}


def test_config_parameter_validates_with_cluster_config(evaluator: TerraformEvaluator):
    config = ClusterConfig.model_validate(_config(evaluator))
    endpoint = computed_placeholder("aws_lb", "control_plane", "dns_name")
    assert config.control_plane_endpoint == f"{endpoint}:6443"
    assert config.role_of(f"kcluster-{CLUSTER}-control-plane") == contract.ROLE_CONTROL_PLANE
    assert config.role_of(f"kcluster-{CLUSTER}-workers") == contract.ROLE_WORKER
    assert config.documents.by_key(contract.DOC_REFRESH_JOIN) == contract.document_name(
        CLUSTER, "refresh-join"
    )


def test_config_defaults_are_cluster_config_defaults(evaluator: TerraformEvaluator):
    written = _config(evaluator)
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


def test_config_follows_the_variables():
    evaluator = TerraformEvaluator(
        load_configuration(TERRAFORM_DIR),
        {
            **INPUTS,
            "kubernetes_version": "1.32.4",
            "pod_cidr": "192.168.0.0/16",
            "cni_version": "v3.28.2",
            "timeouts": {"drain_seconds": 900},
            "worker_batch_size": 20,
        },
    )
    config = ClusterConfig.model_validate(_config(evaluator))
    assert (config.kubernetes_version, config.pod_cidr, config.worker_batch_size) == (
        "1.32.4",
        "192.168.0.0/16",
        20,
    )
    assert (
        config.cni.manifest_url
        == "https://raw.githubusercontent.com/projectcalico/calico/v3.28.2/manifests/calico.yaml"
    )
    assert (config.timeouts.drain_seconds, config.timeouts.join_seconds) == (900, 600)


def test_config_matches_the_twin(evaluator: TerraformEvaluator, twin_spec):
    from twin.infra import cluster_config

    twin_config = cluster_config(twin_spec, "x.example", TARGET_GROUP_ARN).model_dump(mode="json")
    written = _config(evaluator)
    # The endpoint is the NLB's DNS name, the key ARN the KMS key's, the bucket's name has a unique suffix:
    # they only exist after apply
    # (moto's in the twin).
    for computed in ("control_plane_endpoint", "kms_key_arn", "ssm_transfer_bucket", "backup_bucket"):
        twin_config.pop(computed, None)
        written.pop(computed)
    assert ClusterConfig.model_validate({**written, "control_plane_endpoint": "x.example:6443"}) == (
        ClusterConfig.model_validate({**twin_config, "control_plane_endpoint": "x.example:6443"})
    )


def test_the_ami_comes_from_the_same_public_parameter(evaluator: TerraformEvaluator, twin_spec):
    from twin import infra

    (ami,) = evaluator.resource("aws_ssm_parameter", "ubuntu_ami", data=True)
    assert evaluator.variable("architecture") == twin_spec.architecture
    assert ami.attribute("name") == infra.UBUNTU_AMI_PARAMETER.format(architecture=twin_spec.architecture)


def test_config_names_the_cluster_key_or_the_users_own():
    """The nodes read the key to encrypt SecureStrings with from the config (common.sh, --key-id)."""
    own = "arn:aws:kms:eu-west-1:210987654321:key/mrk-0123456789abcdef0123456789abcdef"
    evaluator = TerraformEvaluator(load_configuration(TERRAFORM_DIR), {**INPUTS, "kms_key_arn": own})
    config = json.loads(evaluator.resource("aws_ssm_parameter", "config").attribute("value"))
    assert (
        ClusterConfig.model_validate({**config, "api_target_group_arn": TARGET_GROUP_ARN}).kms_key_arn == own
    )
