"""Fixtures for the node scripts: moto's SSM and EC2, a hand-moved clock, one KubeModel and a NodeFleet.

Every sandbox instance is also a moto EC2 instance (same id, private IP and DNS name, cluster and role
tags), so `aws ec2 describe-instances` in the scripts sees the same fleet.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

import boto3
import pytest
from moto import mock_aws

from twin import versions
from twin.account import REGION
from twin.node.fleet import NodeFleet, ScriptResult
from twin.node.model import KubeModel
from twin.node.tools import EXIT_USAGE, NodeTools, ToolResult
from twin.terraform.documents import script_text

AZ = f"{REGION}a"
CLUSTER = "demo"
ENDPOINT = f"kcluster-demo-nlb-0123456789.elb.{REGION}.amazonaws.com:6443"
KUBERNETES_VERSION = versions.kubernetes_version()
CNI_URL = versions.cni_manifest_url()
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


class ManualClock:
    def __init__(self) -> None:
        self.time = START

    def now(self) -> float:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += seconds


@dataclass
class Run:
    result: ScriptResult
    output: dict

    @property
    def exit_code(self) -> int:
        return self.result.exit_code


@dataclass
class Nodes:
    """The fleet plus helpers that speak in documents and parameters, recording every output."""

    fleet: NodeFleet
    model: KubeModel
    clock: ManualClock
    ec2: Any
    subnet_id: str
    kms_key_arn: str = ""
    # The --key-id of every `aws ssm put-parameter` the scripts ran, by parameter name.
    key_ids: dict[str, list[str | None]] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, role: str, *, provisioned: bool = True) -> str:
        self.count += 1
        tags = [{"Key": "kcluster:cluster", "Value": CLUSTER}, {"Key": "kcluster:role", "Value": role}]
        (instance,) = self.ec2.run_instances(
            ImageId="ami-12c6146b",
            MinCount=1,
            MaxCount=1,
            SubnetId=self.subnet_id,
            PrivateIpAddress=f"10.0.1.{self.count}",
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )["Instances"]
        instance_id = instance["InstanceId"]
        self.fleet.add_instance(
            instance_id,
            availability_zone=AZ,
            private_ip=instance["PrivateIpAddress"],
            private_dns=instance["PrivateDnsName"],
            region=REGION,
            cluster=CLUSTER,
            role=role,
        )
        if provisioned:
            self.fleet.mark_provisioned(instance_id)
        return instance_id

    def terminate(self, instance_id: str) -> None:
        """The instance is gone for good: EC2 terminates it and its kubelet and etcd stop answering."""
        self.ec2.terminate_instances(InstanceIds=[instance_id])
        self.fleet.remove_instance(instance_id)

    def cluster(
        self, control_planes: int, workers: int, *, worker_gap: float = 0.0, settle: float = 30.0
    ) -> tuple[list[str], list[str]]:
        """GIVEN a cluster bootstrapped by the documents in the control loop's order (etcd settling 30 s
        between control-plane joins, `worker_gap` between worker joins, `settle` at the end)."""
        control_plane_ids = [self.add("control-plane") for _ in range(control_planes)]
        worker_ids = [self.add("worker") for _ in range(workers)]
        assert self.run(control_plane_ids[0], "init").output["ok"]
        for instance_id in control_plane_ids[1:]:
            self.clock.advance(30)
            assert self.run(instance_id, "join-control-plane").output["changed"]
        for instance_id in worker_ids:
            self.clock.advance(worker_gap)
            assert self.run(instance_id, "join-worker").output["changed"]
        self.clock.advance(settle)
        return control_plane_ids, worker_ids

    def run(self, instance_id: str, key: str, *, path_first: Path | None = None, **overrides: str) -> Run:
        params = default_parameters(key) | overrides
        env = {f"SSM_{name}": value for name, value in params.items()}
        result = self.run_env(instance_id, key, env, path_first=path_first)
        lines = result.stdout.splitlines()
        assert len(lines) == 1, f"expected one result line, got {result.stdout!r}; stderr {result.stderr}"
        return Run(result, json.loads(lines[0]))

    def run_env(
        self, instance_id: str, key: str, env: dict[str, str], *, path_first: Path | None = None
    ) -> ScriptResult:
        result = self.fleet.run_script(instance_id, script_text(key), env, path_first=path_first)
        self.outputs += [result.stdout, result.stderr]
        return result


def default_parameters(key: str) -> dict[str, str]:
    common = {"ClusterName": CLUSTER}
    if key == "refresh-join":
        return common | {"TokenTtl": "15m", "UploadCertificates": "true"}
    if key == "health":
        return common
    if key == "backup":
        return common | {"BackupId": "20260101T000000Z", "Tier": "frequent"}
    if key == "restore":
        return common | {
            "KubernetesVersion": KUBERNETES_VERSION,
            "BackupId": "20260101T000000Z",
            "Tier": "frequent",
        }
    if key == "drain-remove":
        return common | {
            "InstanceId": "i-0123456789abcdef0",
            "RemoveEtcdMember": "false",
            "DrainTimeout": "60s",
        }
    common |= {"KubernetesVersion": KUBERNETES_VERSION, "ControlPlaneEndpoint": ENDPOINT}
    if key == "init":
        common |= {"PodCidr": "10.244.0.0/16", "ServiceCidr": "10.96.0.0/12", "CniManifestUrl": CNI_URL}
    return common


@pytest.fixture
def ssm(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield boto3.client("ssm", region_name=REGION)


def _accept_key_id(tools: NodeTools, key_ids: dict[str, list[str | None]]) -> None:
    """Record `--key-id` on `aws ssm put-parameter`; while the twin's fake `aws` does not know the flag
    yet (twin/node/tools.py), check the key exists in (moto's) KMS and run the call without it."""
    original = tools._handlers["aws"]

    def aws(call):
        argv = list(call.argv)
        if argv[:2] != ["ssm", "put-parameter"]:
            return original(call)
        key_id = argv[argv.index("--key-id") + 1] if "--key-id" in argv else None
        name = argv[argv.index("--name") + 1] if "--name" in argv else ""
        key_ids.setdefault(name, []).append(key_id)
        result = original(call)
        if key_id is None or result.exit_code != EXIT_USAGE or "--key-id" not in result.stderr:
            return result
        try:
            boto3.client("kms", region_name=REGION).describe_key(KeyId=key_id)
        except Exception as error:
            return ToolResult(254, stderr=f"\nAn error occurred (NotFoundException): {error}\n")
        index = argv.index("--key-id")
        return original(dataclasses.replace(call, argv=argv[:index] + argv[index + 2 :]))

    tools._handlers["aws"] = aws


@pytest.fixture
def nodes(ssm: object, tmp_path: Path) -> Iterator[Nodes]:
    clock = ManualClock()
    # What Terraform writes (ssm.tf): the cluster config, naming the cluster's KMS key.
    kms_key_arn = boto3.client("kms", region_name=REGION).create_key(Description="kcluster demo")[
        "KeyMetadata"
    ]["Arn"]
    ssm.put_parameter(  # type: ignore[attr-defined]
        Name=f"/kcluster/{CLUSTER}/config",
        Type="String",
        Value=json.dumps({"cluster_name": CLUSTER, "join_token_ttl": "15m", "kms_key_arn": kms_key_arn}),
    )
    model = KubeModel(clock.now, Random(7))
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.0.1.0/24", AvailabilityZone=AZ)["Subnet"][
        "SubnetId"
    ]
    fleet = NodeFleet(
        tmp_path / "fleet",
        model,
        lambda region: boto3.client("ssm", region_name=region),
        clock.now,
        ec2_client_factory=lambda region: boto3.client("ec2", region_name=region),
    )
    key_ids: dict[str, list[str | None]] = {}
    _accept_key_id(fleet.server._server.tools, key_ids)
    try:
        yield Nodes(fleet, model, clock, ec2, subnet_id, kms_key_arn=kms_key_arn, key_ids=key_ids)
    finally:
        fleet.close()
