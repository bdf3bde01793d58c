"""What the nodes get: user data that passes shellcheck and does what DESIGN.md says, hardened launch
templates, least-privilege instance roles and security groups without port 22.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from kcluster import contract
from twin import versions
from twin.terraform.evaluator import TerraformEvaluator
from twin.terraform.hcl import TERRAFORM_DIR, load_configuration

INPUTS = {
    "cluster_name": "demo",
    "vpc_id": "vpc-0123456789abcdef0",
    "subnet_ids": ["subnet-0000000000000000a", "subnet-0000000000000000b", "subnet-0000000000000000c"],
}
ROLE_KEYS = {"control_plane": contract.ROLE_CONTROL_PLANE, "worker": contract.ROLE_WORKER}


def _evaluator(**overrides) -> TerraformEvaluator:
    return TerraformEvaluator(load_configuration(TERRAFORM_DIR), {**INPUTS, **overrides})


def _shellcheck(script: str, path: Path) -> subprocess.CompletedProcess:
    path.write_text(script)
    return subprocess.run(
        ["shellcheck", "--severity=style", "--shell=bash", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("role_key", sorted(ROLE_KEYS))
def test_rendered_user_data_passes_shellcheck(role_key: str, tmp_path: Path):
    user_data = _evaluator().local("user_data")[role_key]
    result = _shellcheck(user_data, tmp_path / f"user-data-{role_key}.sh")
    assert result.returncode == 0, result.stdout


def test_every_document_script_passes_shellcheck(tmp_path: Path):
    evaluator = _evaluator()
    documents = evaluator.resource("aws_ssm_document", "node")
    assert set(documents) >= {"init", "join-control-plane", "join-worker", "refresh-join"}
    for key, document in documents.items():
        (step,) = json.loads(document.attribute("content"))["mainSteps"]
        (script,) = step["inputs"]["runCommand"]
        result = _shellcheck(script, tmp_path / f"{key}.sh")
        assert result.returncode == 0, f"{key}:\n{result.stdout}"


@pytest.mark.parametrize(("role_key", "version"), [("control_plane", "1.33.5"), ("worker", "1.32.10")])
def test_user_data_provisions_the_node_as_the_contract_says(role_key: str, version: str):
    user_data = _evaluator(kubernetes_version=version, cluster_name="prod-east").local("user_data")[role_key]
    minor = version.rsplit(".", 1)[0]
    assignments = dict(re.findall(r"^([A-Z_]+)='([^']*)'$", user_data, flags=re.MULTILINE))
    assert assignments == {
        "CLUSTER_NAME": "prod-east",
        "NODE_ROLE": ROLE_KEYS[role_key],
        "KUBERNETES_VERSION": version,
        "KUBERNETES_MINOR": minor,
        "CONTAINERD_VERSION": versions.containerd_version(),
        "PROVISIONED_MARKER": contract.PROVISIONED_MARKER,
        "EVENT_SOURCE": contract.NODE_EVENT_SOURCE,
        "EVENT_DETAIL_TYPE": contract.NODE_PROVISIONED_DETAIL_TYPE,
    }
    # pkgs.k8s.io serves one repository per minor version; the packages are pinned to the patch.
    assert "https://pkgs.k8s.io/core:/stable:/v${KUBERNETES_MINOR}/deb/Release.key" in user_data
    for package in ("kubelet", "kubeadm", "kubectl"):
        assert f'"{package}=${{KUBERNETES_VERSION}}-*"' in user_data
    assert "HELD_PACKAGES=(kubelet kubeadm kubectl cri-tools runc containerd)" in user_data
    assert 'apt-mark hold "${HELD_PACKAGES[@]}"' in user_data
    for needed in (
        "containerd",
        "jq",
        "modprobe overlay",
        "modprobe br_netfilter",
        "net.ipv4.ip_forward = 1",
        "net.bridge.bridge-nf-call-iptables = 1",
        "swapoff -a",
        "SystemdCgroup = true",
        "snap install aws-cli --classic",
        "aws events put-events",
    ):
        assert needed in user_data, needed
    assert "--provider-id=aws:///%s/%s" in user_data
    # The detail keys the functions parse, and the marker written before the event is sent.
    assert '{cluster: $cluster, "instance-id": $instance, role: $role}' in user_data
    assert user_data.index('>"$PROVISIONED_MARKER"') < user_data.index("aws events put-events")


def test_launch_templates_are_hardened():
    evaluator = _evaluator()
    for key, template in evaluator.resource("aws_launch_template", "node").items():
        block = template.block
        assert "key_name" not in block.attributes, key
        (metadata,) = block.blocks_of("metadata_options")
        metadata_values = {name: evaluator.evaluate(expr, {}) for name, expr in metadata.attributes.items()}
        assert metadata_values["http_tokens"] == "required"
        assert metadata_values["http_put_response_hop_limit"] == 1
        (device,) = block.blocks_of("block_device_mappings")
        (ebs,) = device.blocks_of("ebs")
        ebs_values = {
            name: evaluator.evaluate(expr, template.scope()) for name, expr in ebs.attributes.items()
        }
        assert ebs_values["encrypted"] is True
        assert ebs_values["volume_type"] == "gp3"
        assert template.attribute("user_data")


def test_ami_defaults_to_ubuntu_24_04_from_ssm_and_is_overridable():
    (parameter,) = _evaluator(architecture="amd64").resource("aws_ssm_parameter", "ubuntu_ami", data=True)
    assert parameter.attribute("name") == (
        "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"
    )
    overridden = _evaluator(ami_id="ami-0123456789abcdef0")
    assert overridden.resource("aws_ssm_parameter", "ubuntu_ami", data=True) == []
    assert overridden.local("ami_id") == "ami-0123456789abcdef0"


def _statements(evaluator: TerraformEvaluator, name: str) -> dict[str, dict]:
    document = evaluator.resource("aws_iam_policy_document", name, data=True)
    statements = {}
    for statement in document.block.blocks_of("statement"):
        values = {key: evaluator.evaluate(expr, {}) for key, expr in statement.attributes.items()}
        values["conditions"] = [
            {key: evaluator.evaluate(expr, {}) for key, expr in condition.attributes.items()}
            for condition in statement.blocks_of("condition")
        ]
        statements[values["sid"]] = values
    return statements


def _parameter_grants(statements: dict[str, dict], action: str) -> set[str]:
    return {
        resource.split(":parameter", 1)[1]
        for statement in statements.values()
        if action in statement["actions"] and statement.get("effect", "Allow") == "Allow"
        for resource in statement["resources"]
        if ":parameter" in resource
    }


def test_node_roles_get_only_the_parameters_each_role_needs():
    evaluator = _evaluator()
    control_plane = _statements(evaluator, "control_plane")
    worker = _statements(evaluator, "worker")
    assert _parameter_grants(control_plane, "ssm:GetParameter") == {
        "/kcluster/demo/config",
        "/kcluster/demo/join/*",
    }
    assert _parameter_grants(control_plane, "ssm:PutParameter") == {
        "/kcluster/demo/join/*",
        "/kcluster/demo/admin/*",
    }
    # workers read no configuration: join-worker gets all it needs as document parameters
    assert _parameter_grants(worker, "ssm:GetParameter") == {
        "/kcluster/demo/join/token",
        "/kcluster/demo/join/ca-cert-hash",
    }
    assert _parameter_grants(worker, "ssm:PutParameter") == set()
    # the stray cleanup before a control-plane join lists the cluster's instances (issue 10 finding 2)
    assert control_plane["ListClusterInstances"]["actions"] == ["ec2:DescribeInstances"]
    for statements in (control_plane, worker):
        for statement in statements.values():
            # "*" only for actions with no resource-level permissions at all
            if statement["actions"] != ["ec2:DescribeInstances"]:
                assert "*" not in statement.get("resources", statement.get("not_resources"))
            if any(action.startswith("kms:") for action in statement["actions"]):
                # the cluster's key only, only through SSM, only for its own parameters (test_terraform_iam)
                ssm_service = f"ssm.{evaluator.local('region')}.amazonaws.com"
                assert statement["resources"] == [evaluator.local("kms_key_arn")]
                assert statement["conditions"][0] == {
                    "test": "StringEquals",
                    "variable": "kms:ViaService",
                    "values": [ssm_service],
                }
                assert statement["conditions"][1]["variable"] == "kms:EncryptionContext:PARAMETER_ARN"
            if "events:PutEvents" in statement["actions"]:
                assert statement["resources"][0].endswith(":event-bus/default")
                assert statement["conditions"] == [
                    {
                        "test": "StringEquals",
                        "variable": "events:source",
                        "values": [contract.NODE_EVENT_SOURCE],
                    }
                ]
    roles = evaluator.resource("aws_iam_role_policy_attachment", "node_ssm_core")
    assert {key: role.attribute("policy_arn").rsplit("/", 1)[1] for key, role in roles.items()} == {
        "control_plane": "AmazonSSMManagedInstanceCore",
        "worker": "AmazonSSMManagedInstanceCore",
    }


def _rules(evaluator: TerraformEvaluator) -> list[dict]:
    rules = []
    for name in ("internal", "api_allowed"):
        for key, rule in evaluator.resource("aws_vpc_security_group_ingress_rule", name).items():
            rules.append(
                {
                    "key": key,
                    "group": rule.attribute("security_group_id"),
                    "peer": rule.attribute("referenced_security_group_id")
                    if "referenced_security_group_id" in rule.block.attributes
                    else rule.attribute("cidr_ipv4"),
                    "protocol": rule.attribute("ip_protocol"),
                    "ports": (rule.attribute("from_port"), rule.attribute("to_port")),
                }
            )
    return rules


def test_security_groups_open_only_kubernetes_etcd_and_calico_ports():
    evaluator = _evaluator(api_allowed_cidrs=["203.0.113.0/24"])
    groups = {value: key for key, value in evaluator.local("security_group_ids").items()}
    opened = {(groups[rule["group"]], rule["protocol"], rule["ports"]) for rule in _rules(evaluator)}
    assert opened == {
        ("endpoint", "tcp", (6443, 6443)),
        ("control_plane", "tcp", (6443, 6443)),
        ("control_plane", "tcp", (2379, 2380)),
        ("control_plane", "tcp", (10250, 10250)),
        ("worker", "tcp", (10250, 10250)),
        ("control_plane", "tcp", (179, 179)),
        ("worker", "tcp", (179, 179)),
        ("control_plane", "4", (None, None)),
        ("worker", "4", (None, None)),
    }
    # etcd only between control planes; the outside world only reaches the NLB, only on 6443.
    etcd_peers = {groups.get(rule["peer"]) for rule in _rules(evaluator) if rule["ports"] == (2379, 2380)}
    assert etcd_peers == {"control_plane"}
    external = [rule for rule in _rules(evaluator) if rule["peer"] not in groups]
    assert [(groups[rule["group"]], rule["peer"], rule["ports"]) for rule in external] == [
        ("endpoint", "203.0.113.0/24", (6443, 6443))
    ]


def test_endpoint_is_an_internal_nlb_on_6443_without_client_ip_preservation():
    evaluator = _evaluator()
    load_balancer = evaluator.resource("aws_lb", "control_plane")
    assert load_balancer.attribute("load_balancer_type") == "network"
    assert load_balancer.attribute("internal") is True
    assert (
        _evaluator(endpoint_internet_facing=True).resource("aws_lb", "control_plane").attribute("internal")
        is False
    )
    target_group = evaluator.resource("aws_lb_target_group", "control_plane")
    assert (target_group.attribute("port"), target_group.attribute("protocol")) == (6443, "TCP")
    assert target_group.attribute("preserve_client_ip") is False
    (health_check,) = target_group.block.blocks_of("health_check")
    assert evaluator.evaluate(health_check.attributes["protocol"], {}) == "TCP"
    listener = evaluator.resource("aws_lb_listener", "control_plane")
    assert (listener.attribute("port"), listener.attribute("protocol")) == (6443, "TCP")
    control_plane_asg = evaluator.resource("aws_autoscaling_group", "node")["control_plane"]
    assert control_plane_asg.attribute("target_group_arns") == [target_group.attribute("arn")]
    assert evaluator.resource("aws_autoscaling_group", "node")["worker"].attribute("target_group_arns") == []
