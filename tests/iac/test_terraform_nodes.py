"""What the nodes get: user data that passes shellcheck and does what DESIGN.md says, hardened launch
templates, least-privilege instance roles and security groups without port 22.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path

import pytest

from kcluster import contract
from tests.iac.conftest import OWN_AMI, instances, one
from twin import versions

ROLE_KEYS = {"control_plane": contract.ROLE_CONTROL_PLANE, "worker": contract.ROLE_WORKER}


def _user_data(planned, role_key: str) -> str:
    """The user data Terraform rendered into the launch template (base64encode of the template)."""
    template = instances(planned, "aws_launch_template.node")[role_key]
    return base64.b64decode(template["user_data"]).decode()


def _shellcheck(script: str, path: Path) -> subprocess.CompletedProcess:
    path.write_text(script)
    return subprocess.run(
        ["shellcheck", "--severity=style", "--shell=bash", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("role_key", sorted(ROLE_KEYS))
def test_rendered_user_data_passes_shellcheck(twin_plan, role_key: str, tmp_path: Path):
    user_data = _user_data(twin_plan, role_key)
    result = _shellcheck(user_data, tmp_path / f"user-data-{role_key}.sh")
    assert result.returncode == 0, result.stdout


def test_every_document_script_passes_shellcheck(twin_plan, tmp_path: Path):
    documents = instances(twin_plan, "aws_ssm_document.node")
    assert set(documents) >= {"init", "join-control-plane", "join-worker", "refresh-join"}
    for key, document in documents.items():
        (step,) = json.loads(document["content"])["mainSteps"]
        (script,) = step["inputs"]["runCommand"]
        result = _shellcheck(script, tmp_path / f"{key}.sh")
        assert result.returncode == 0, f"{key}:\n{result.stdout}"


# (plan fixture, cluster, Kubernetes version): the module's default version, and the previous minor's
# patch an operator chose; each plan's user data must install its own version's packages and repository.
PLANNED_VERSIONS = [
    ("twin_plan", "demo", versions.kubernetes_version()),
    ("custom_plan", "prod-east", "1.32.10"),
]


def _assignments(user_data: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Z_]+)='([^']*)'$", user_data, flags=re.MULTILINE))


@pytest.mark.parametrize(("plan", "cluster", "version"), PLANNED_VERSIONS)
@pytest.mark.parametrize("role_key", sorted(ROLE_KEYS))
def test_user_data_provisions_the_node_as_the_contract_says(
    request, plan: str, cluster: str, version: str, role_key: str
):
    user_data = _user_data(request.getfixturevalue(plan), role_key)
    minor = version.rsplit(".", 1)[0]
    assignments = _assignments(user_data)
    assert assignments == {
        "CLUSTER_NAME": cluster,
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


@pytest.mark.parametrize("role_key", sorted(ROLE_KEYS))
def test_the_version_reaches_the_user_data_only_through_its_assignments(twin_plan, custom_plan, role_key):
    # GIVEN the user data Terraform rendered for two Kubernetes versions (and two clusters)
    default, chosen = (_user_data(plan, role_key) for plan in (twin_plan, custom_plan))
    assert _assignments(default)["KUBERNETES_VERSION"] != _assignments(chosen)["KUBERNETES_VERSION"]

    # THEN they differ only in the assigned values: no version is written anywhere else
    def without_values(user_data: str) -> str:
        return re.sub(r"^([A-Z_]+)='[^']*'$", r"\1=", user_data, flags=re.MULTILINE)

    assert without_values(default) == without_values(chosen)
    # and neither version's minor is written into the text (a repository pinned to one minor, say)
    for minor in (_assignments(default)["KUBERNETES_MINOR"], _assignments(chosen)["KUBERNETES_MINOR"]):
        assert minor not in without_values(default), minor


def test_launch_templates_are_hardened(twin_plan):
    for key, template in instances(twin_plan, "aws_launch_template.node").items():
        assert template["key_name"] is None, key
        (metadata,) = template["metadata_options"]
        assert metadata["http_tokens"] == "required"
        assert metadata["http_put_response_hop_limit"] == 1
        (device,) = template["block_device_mappings"]
        (ebs,) = device["ebs"]
        # The provider holds these tri-state flags as strings.
        assert ebs["encrypted"] == "true"
        assert ebs["volume_type"] == "gp3"
        assert template["user_data"]


def test_ami_defaults_to_ubuntu_24_04_from_ssm_and_is_overridable(twin_plan, custom_plan):
    parameter = one(twin_plan, "data.aws_ssm_parameter.ubuntu_ami")
    assert (
        parameter["name"]
        == "/aws/service/canonical/ubuntu/server/24.04/stable/current/arm64/hvm/ebs-gp3/ami-id"
    )
    assert instances(custom_plan, "data.aws_ssm_parameter.ubuntu_ami") == {}
    for template in instances(custom_plan, "aws_launch_template.node").values():
        assert template["image_id"] == OWN_AMI


def _statements(planned, key: str) -> dict[str, dict]:
    """The role's inline policy as the provider rendered it, statements by Sid (values as lists)."""
    document = json.loads(instances(planned, "aws_iam_role_policy.node")[key]["policy"])
    statements = {}
    for statement in document["Statement"]:
        values = {name: [value] if isinstance(value, str) else value for name, value in statement.items()}
        values["Effect"] = statement.get("Effect", "Allow")
        statements[statement["Sid"]] = values
    return statements


def _parameter_grants(statements: dict[str, dict], action: str) -> set[str]:
    return {
        resource.split(":parameter", 1)[1]
        for statement in statements.values()
        if action in statement["Action"] and statement["Effect"] == "Allow"
        for resource in statement.get("Resource", [])
        if ":parameter" in resource
    }


def test_node_roles_get_only_the_parameters_each_role_needs(twin_plan, custom_plan):
    control_plane = _statements(twin_plan, "control_plane")
    worker = _statements(twin_plan, "worker")
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
    assert control_plane["ListClusterInstances"]["Action"] == ["ec2:DescribeInstances"]
    region = one(custom_plan, "data.aws_region.current")["name"]
    for planned in (twin_plan, custom_plan):
        for key in ROLE_KEYS:
            for statement in _statements(planned, key).values():
                _check_statement(statement, region)
    attachments = instances(twin_plan, "aws_iam_role_policy_attachment.node_ssm_core")
    assert {key: value["policy_arn"].rsplit("/", 1)[1] for key, value in attachments.items()} == {
        "control_plane": "AmazonSSMManagedInstanceCore",
        "worker": "AmazonSSMManagedInstanceCore",
    }


def _check_statement(statement: dict, region: str) -> None:
    # "*" only for actions with no resource-level permissions at all
    if statement["Action"] != ["ec2:DescribeInstances"]:
        assert "*" not in statement.get("Resource", statement.get("NotResource")), statement
    if any(action.startswith("kms:") for action in statement["Action"]):
        # a key the user brings: only through SSM, only for the cluster's parameters (test_terraform_iam)
        assert statement["Condition"]["StringEquals"]["kms:ViaService"] in (
            f"ssm.{region}.amazonaws.com",
            [f"ssm.{region}.amazonaws.com"],
        )
        assert any("kms:EncryptionContext:PARAMETER_ARN" in test for test in statement["Condition"].values())
    if "events:PutEvents" in statement["Action"]:
        assert statement["Resource"][0].endswith(":event-bus/default")
        assert statement["Condition"] == {"StringEquals": {"events:source": contract.NODE_EVENT_SOURCE}}


def _rules(planned) -> list[dict]:
    rules = []
    for name in ("internal", "api_allowed"):
        for key, rule in instances(planned, f"aws_vpc_security_group_ingress_rule.{name}").items():
            rules.append(
                {
                    "key": key,
                    "group": rule["security_group_id"],
                    "peer": rule["referenced_security_group_id"] or rule["cidr_ipv4"],
                    "protocol": rule["ip_protocol"],
                    "ports": (rule["from_port"], rule["to_port"]),
                }
            )
    return rules


def test_security_groups_open_only_kubernetes_etcd_and_calico_ports(custom_plan):
    groups = {
        one(custom_plan, f"aws_security_group.{name}")["id"]: name
        for name in ("endpoint", "control_plane", "worker")
    }
    opened = {(groups[rule["group"]], rule["protocol"], rule["ports"]) for rule in _rules(custom_plan)}
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
    etcd_peers = {groups.get(rule["peer"]) for rule in _rules(custom_plan) if rule["ports"] == (2379, 2380)}
    assert etcd_peers == {"control_plane"}
    external = [rule for rule in _rules(custom_plan) if rule["peer"] not in groups]
    assert [(groups[rule["group"]], rule["peer"], rule["ports"]) for rule in external] == [
        ("endpoint", "203.0.113.0/24", (6443, 6443))
    ]


def test_endpoint_is_an_internal_nlb_on_6443_without_client_ip_preservation(twin_plan, custom_plan):
    load_balancer = one(twin_plan, "aws_lb.control_plane")
    assert load_balancer["load_balancer_type"] == "network"
    assert load_balancer["internal"] is True
    assert one(custom_plan, "aws_lb.control_plane")["internal"] is False
    target_group = one(twin_plan, "aws_lb_target_group.control_plane")
    assert (target_group["port"], target_group["protocol"]) == (6443, "TCP")
    # The provider holds preserve_client_ip as a string.
    assert target_group["preserve_client_ip"] == "false"
    (health_check,) = target_group["health_check"]
    assert health_check["protocol"] == "TCP"
    listener = one(twin_plan, "aws_lb_listener.control_plane")
    assert (listener["port"], listener["protocol"]) == (6443, "TCP")
    groups = instances(twin_plan, "aws_autoscaling_group.node")
    assert groups["control_plane"]["target_group_arns"] == [target_group["arn"]]
    assert groups["worker"]["target_group_arns"] == []


def test_rendered_user_data_and_every_document_script_parse_with_bash_n(twin_plan, tmp_path: Path):
    """What reaches the instances, as Terraform's plan renders it (not the source files): bash parses it."""
    deployed = {f"user-data-{key}": _user_data(twin_plan, key) for key in sorted(ROLE_KEYS)}
    for key, document in instances(twin_plan, "aws_ssm_document.node").items():
        (step,) = json.loads(document["content"])["mainSteps"]
        (deployed[key],) = step["inputs"]["runCommand"]
    assert {"user-data-control_plane", "user-data-worker", "health", "drain-remove"} <= set(deployed)
    for name, script in deployed.items():
        path = tmp_path / f"{name}.sh"
        path.write_text(script)
        result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{name}:\n{result.stderr}"
