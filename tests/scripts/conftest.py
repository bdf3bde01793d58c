"""Fixtures for the node scripts: moto's SSM, a hand-moved clock, one KubeModel and a NodeFleet."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from random import Random

import boto3
import pytest
from moto import mock_aws

from twin.documents import script_text
from twin.node.fleet import NodeFleet, ScriptResult
from twin.node.model import KubeModel

REGION = "us-east-1"
AZ = "us-east-1a"
CLUSTER = "demo"
ENDPOINT = "kcluster-demo-nlb-0123456789.elb.us-east-1.amazonaws.com:6443"
KUBERNETES_VERSION = "1.33.5"
CNI_URL = "https://raw.githubusercontent.com/projectcalico/calico/v3.29.1/manifests/calico.yaml"
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
    outputs: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, role: str, *, provisioned: bool = True) -> str:
        self.count += 1
        instance_id = f"i-0{self.count:016x}"
        self.fleet.add_instance(
            instance_id,
            availability_zone=AZ,
            private_ip=f"10.0.1.{self.count}",
            private_dns=f"ip-10-0-1-{self.count}.ec2.internal",
            region=REGION,
            cluster=CLUSTER,
            role=role,
        )
        if provisioned:
            self.fleet.mark_provisioned(instance_id)
        return instance_id

    def run(self, instance_id: str, key: str, **overrides: str) -> Run:
        params = default_parameters(key) | overrides
        env = {f"SSM_{name}": value for name, value in params.items()}
        result = self.fleet.run_script(instance_id, script_text(key), env)
        self.outputs += [result.stdout, result.stderr]
        lines = result.stdout.splitlines()
        assert len(lines) == 1, f"expected one result line, got {result.stdout!r}; stderr {result.stderr}"
        return Run(result, json.loads(lines[0]))


def default_parameters(key: str) -> dict[str, str]:
    common = {"ClusterName": CLUSTER}
    if key == "refresh-join":
        return common | {"TokenTtl": "15m", "UploadCertificates": "true"}
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


@pytest.fixture
def nodes(ssm: object, tmp_path: Path) -> Iterator[Nodes]:
    clock = ManualClock()
    model = KubeModel(clock.now, Random(7))
    fleet = NodeFleet(
        tmp_path / "fleet", model, lambda region: boto3.client("ssm", region_name=region), clock.now
    )
    try:
        yield Nodes(fleet, model, clock)
    finally:
        fleet.close()
