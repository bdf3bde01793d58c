"""Fixtures for the twin's AWS emulation: moto, a virtual clock and small fakes for other components."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from twin.account import REGION
from twin.aws.lifecycle import AutoScalingContext, LifecycleEmulation
from twin.aws.runcommand import RunCommandContext, RunCommandEmulation
from twin.clock import Scheduler, VirtualClock
from twin.latency import LatencyModel
from twin.node.boot import BootContext, InstanceBoot
from twin.ports import Late, SsmAgents
from twin.recorder import Recorder


class RecordingBus:
    """Stands in for twin/aws/eventbus.py: keeps every PutEvents entry."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def put_events(self, entries: list[dict[str, Any]]) -> None:
        self.entries.extend(entries)

    def of_type(self, detail_type: str) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["DetailType"] == detail_type]

    def details(self, detail_type: str) -> list[dict[str, Any]]:
        return [json.loads(e["Detail"]) for e in self.of_type(detail_type)]


@dataclass
class CannedResult:
    exit_code: int
    stdout: str
    stderr: str


@dataclass
class CannedFleet:
    """Stands in for twin/node/fleet.py: remembers instances and every script it was asked to run."""

    result: CannedResult = field(default_factory=lambda: CannedResult(0, '{"ok": true}\n', ""))
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)
    provisioned: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    runs: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def add_instance(self, instance_id: str, **facts: Any) -> None:
        self.instances[instance_id] = facts

    def mark_provisioned(self, instance_id: str) -> None:
        self.provisioned.append(instance_id)

    def remove_instance(self, instance_id: str) -> None:
        self.removed.append(instance_id)

    def run_script(self, instance_id: str, script: str, env: dict[str, str]) -> CannedResult:
        self.runs.append((instance_id, script, dict(env)))
        return self.result


@pytest.fixture
def twin() -> Iterator[SimpleNamespace]:
    with mock_aws():
        clock = VirtualClock()
        rng = random.Random(7)
        world = SimpleNamespace(
            clock=clock,
            scheduler=Scheduler(clock),
            rng=rng,
            latency=LatencyModel(rng),
            recorder=Recorder(clock.now),
            bus=RecordingBus(),
            fleet=CannedFleet(),
        )
        try:
            yield world
        finally:
            clock.close()


def auto_scaling(world: SimpleNamespace, agents: SsmAgents | None = None) -> LifecycleEmulation:
    """Auto Scaling's emulation in the light world, its instances booted by the node side into the canned
    fleet (no SSM agent registers unless `agents` is given)."""
    events = Late("the recording bus", world.bus)
    boot = InstanceBoot(
        BootContext(
            world.clock, world.scheduler, world.latency, world.recorder, world.fleet, events, agents=agents
        )
    )
    return LifecycleEmulation(
        AutoScalingContext(
            world.clock, world.scheduler, world.rng, world.latency, world.recorder, events, boot
        )
    )


def run_command(world: SimpleNamespace) -> RunCommandEmulation:
    """Run Command's emulation in the light world, its scripts "run" by the canned fleet."""
    return RunCommandEmulation(
        RunCommandContext(
            world.clock,
            world.scheduler,
            world.rng,
            world.latency,
            world.recorder,
            world.fleet,
            Late("the recording bus", world.bus),
        )
    )


def make_network(ec2: Any) -> list[str]:
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    return [
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.0.{i * 16}.0/20", AvailabilityZone=f"{REGION}{az}")[
            "Subnet"
        ]["SubnetId"]
        for i, az in enumerate("abc")
    ]


def make_group(
    name: str = "kcluster-demo-workers",
    *,
    desired: int = 0,
    hooks: bool = True,
    heartbeat: int = 900,
    role: str = "worker",
    target_group_arns: list[str] | None = None,
) -> str:
    ec2 = boto3.client("ec2", region_name=REGION)
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    subnets = make_network(ec2)
    template = ec2.create_launch_template(
        LaunchTemplateName=f"{name}-lt",
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t4g.medium"},
    )["LaunchTemplate"]["LaunchTemplateName"]
    specs = [
        {
            "LifecycleHookName": "kcluster-launch",
            "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
            "HeartbeatTimeout": heartbeat,
            "DefaultResult": "ABANDON",
            "NotificationMetadata": json.dumps({"role": role}),
        },
        {
            "LifecycleHookName": "kcluster-terminate",
            "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
            "HeartbeatTimeout": heartbeat,
            "DefaultResult": "CONTINUE",
        },
    ]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": template, "Version": "$Latest"},
        MinSize=0,
        MaxSize=10,
        DesiredCapacity=desired,
        VPCZoneIdentifier=",".join(subnets),
        TargetGroupARNs=target_group_arns or [],
        LifecycleHookSpecificationList=specs if hooks else [],
        Tags=[
            {"Key": "kcluster:cluster", "Value": "demo", "PropagateAtLaunch": True},
            {"Key": "kcluster:role", "Value": role, "PropagateAtLaunch": True},
        ],
    )
    return name


def instances_of(group_name: str) -> dict[str, str]:
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])["AutoScalingGroups"][
        0
    ]
    return {i["InstanceId"]: i["LifecycleState"] for i in group["Instances"]}
