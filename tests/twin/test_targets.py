"""NLB target health as the twin emulates it on top of moto (twin/aws/targets.py), in a real Twin."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto.elbv2 import models as elbv2_models

from kcluster import contract
from twin.account import ACCOUNT_ID as ACCOUNT
from twin.account import REGION
from twin.aws import targets
from twin.world import Twin


def group(arn: str) -> Any:
    return elbv2_models.elbv2_backends[ACCOUNT][REGION].target_groups[arn]


def describe(twin: Twin, arn: str, **kwargs: Any) -> list[dict[str, Any]]:
    with twin.operator():
        return boto3.client("elbv2").describe_target_health(TargetGroupArn=arn, **kwargs)[
            "TargetHealthDescriptions"
        ]


def health(twin: Twin, arn: str, instance_id: str) -> dict[str, Any]:
    [found] = [d for d in describe(twin, arn) if d["Target"]["Id"] == instance_id]
    return found["TargetHealth"]


def maximum(twin: Twin, metric: str, minute: float) -> list[float]:
    """The metric's per-minute Maximum for the minute starting at `minute`, as GetMetricStatistics says."""
    with twin.operator():
        points = boto3.client("cloudwatch").get_metric_statistics(
            Namespace="AWS/NetworkELB",
            MetricName=metric,
            Dimensions=[
                {
                    "Name": "TargetGroup",
                    "Value": targets.target_group_dimension(twin.deployment.target_group_arn),
                },
                {
                    "Name": "LoadBalancer",
                    "Value": targets.load_balancer_dimension(twin.deployment.load_balancer_arn),
                },
            ],
            StartTime=datetime.fromtimestamp(minute, tz=UTC),
            EndTime=datetime.fromtimestamp(minute + 60, tz=UTC),
            Period=60,
            Statistics=["Maximum"],
        )["Datapoints"]
    return [p["Maximum"] for p in points]


def run_past_minute_of(twin: Twin, moment: float) -> float:
    """Run until the minute holding `moment` is over (and published); returns that minute's start."""
    minute = math.floor(moment / 60) * 60
    twin.scheduler.run_for(minute + 60 - twin.clock.now())
    return minute


def test_no_checks_without_targets_and_close_restores_moto():
    # First in the file: it needs its own Twin, before the module's world exists (one moto at a time).
    original = elbv2_models.ELBv2Backend.describe_target_health
    twin = Twin(seed=1)
    try:
        assert elbv2_models.ELBv2Backend.describe_target_health is not original
        # GIVEN no registered target THEN the only work due is the next minute's metrics
        assert twin.targets.next_due() == math.floor(twin.clock.now() / 60) * 60 + 60
        assert not any("health" in label or "alarm" in label for _, label in twin.scheduler.upcoming())
    finally:
        twin.close()
    assert elbv2_models.ELBv2Backend.describe_target_health is original


@pytest.fixture(scope="module")
def world() -> Iterator[SimpleNamespace]:
    """One control plane InService, its API server answering, registered afresh in the API target group,
    its health as seen at registration and after each of the first two health checks.

    (kcluster registers the first control plane before `kubeadm init`, while nothing answers on 6443:
    its target fails its first checks. Registered again once the API server runs, it shows the plain
    registration sequence.)"""
    twin = Twin(seed=5)
    try:
        arn = twin.deployment.target_group_arn
        interval = int(group(arn).health_check_interval_seconds)
        twin.set_desired(contract.ROLE_CONTROL_PLANE, 1)
        assert twin.run_until_settled()
        [instance_id] = list(group(arn).targets)
        assert twin.model.apiserver_running(instance_id)
        with twin.operator():
            elbv2 = boto3.client("elbv2")
            elbv2.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": instance_id}])
            twin.scheduler.run_for(int(group(arn).attributes["deregistration_delay.timeout_seconds"]))
            elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": instance_id, "Port": 6443}])
        registered_at = twin.clock.now()
        seen = [health(twin, arn, instance_id)]
        for _ in range(2):
            twin.scheduler.run_for(interval)
            seen.append(health(twin, arn, instance_id))
        yield SimpleNamespace(
            twin=twin,
            arn=arn,
            instance_id=instance_id,
            interval=interval,
            registered_at=registered_at,
            seen=seen,
        )
    finally:
        twin.close()


def test_a_new_target_starts_initial_and_turns_healthy_after_the_threshold(world):
    # moto alone would have said "healthy" at once
    assert world.seen == [
        {
            "State": "initial",
            "Reason": "Elb.RegistrationInProgress",
            "Description": "Target registration is in progress",
        },
        {
            "State": "initial",
            "Reason": "Elb.InitialHealthChecking",
            "Description": "Initial health checks in progress",
        },
        {"State": "healthy"},
    ]
    became = [
        t
        for t in world.twin.targets.transitions
        if t.target_id == world.instance_id and t.new == "healthy" and t.at >= world.registered_at
    ]
    assert became[0].at == world.registered_at + 2 * world.interval  # HealthyThresholdCount 2, every 10 s


def test_api_server_stop_makes_the_target_unhealthy_and_a_restart_healthy_again(world):
    twin, arn, instance_id, interval = world.twin, world.arn, world.instance_id, world.interval
    twin.scheduler.run_until(lambda: twin.targets.state_of(arn, instance_id) == "healthy", 60)
    assert health(twin, arn, instance_id) == {"State": "healthy"}
    # WHEN the control plane's kube-apiserver stops (port 6443 no longer answers)
    twin.model.stop_apiserver(instance_id)
    twin.scheduler.run_for(interval)
    # THEN one failed check is not enough (UnhealthyThresholdCount 2)...
    assert health(twin, arn, instance_id) == {"State": "healthy"}
    twin.scheduler.run_for(interval)
    # ...two are, and DescribeTargetHealth says so as it does for an NLB
    assert health(twin, arn, instance_id) == {
        "State": "unhealthy",
        "Reason": "Target.FailedHealthChecks",
        "Description": "Health checks failed",
    }
    failed_at = twin.targets.transitions[-1].at
    assert (twin.targets.transitions[-1].old, twin.targets.transitions[-1].new) == ("healthy", "unhealthy")
    # AND the minute it happened in counts one unhealthy host in CloudWatch
    minute = run_past_minute_of(twin, failed_at)
    assert maximum(twin, "UnHealthyHostCount", minute) == [1.0]
    assert any(e.kind == "elb" and "healthy -> unhealthy" in e.text for e in twin.recorder.timeline)
    # WHEN the API server comes back THEN two passed checks make the target healthy again
    twin.model.start_apiserver(instance_id)
    twin.scheduler.run_for(interval)
    assert health(twin, arn, instance_id)["State"] == "unhealthy"
    twin.scheduler.run_for(interval)
    assert health(twin, arn, instance_id) == {"State": "healthy"}
    # AND the first whole minute after that counts no unhealthy host and one healthy one
    recovered_at = twin.targets.transitions[-1].at
    minute = run_past_minute_of(twin, recovered_at + 60)
    assert maximum(twin, "UnHealthyHostCount", minute) == [0.0]
    assert maximum(twin, "HealthyHostCount", minute) == [1.0]


def test_metric_dimensions_are_the_arn_suffixes(world):
    tg = targets.target_group_dimension(world.arn)
    lb = targets.load_balancer_dimension(world.twin.deployment.load_balancer_arn)
    # Named as the provider names a name_prefix "kc-": the prefix and a 26-character unique suffix.
    assert re.fullmatch(r"targetgroup/kc-[0-9]{26}/[0-9a-f]{16}", tg)
    # moto 5.2.1 builds every load balancer ARN as loadbalancer/app/...; AWS would say net/ for an NLB
    assert re.fullmatch(r"(net|app)/kc-[0-9]{26}/[0-9a-f]{16}", lb)
    assert world.twin.deployment.load_balancer_arn.endswith(f":loadbalancer/{lb}")


def test_a_deregistered_target_drains_then_is_gone(world):
    twin, arn, instance_id = world.twin, world.arn, world.instance_id
    delay = int(group(arn).attributes["deregistration_delay.timeout_seconds"])
    # WHEN the target is deregistered
    with twin.operator():
        boto3.client("elbv2").deregister_targets(TargetGroupArn=arn, Targets=[{"Id": instance_id}])
    # THEN it drains for the group's deregistration delay
    assert health(twin, arn, instance_id) == {
        "State": "draining",
        "Reason": "Target.DeregistrationInProgress",
        "Description": "Target deregistration is in progress",
    }
    twin.scheduler.run_for(delay - 1)
    assert health(twin, arn, instance_id)["State"] == "draining"
    twin.scheduler.run_for(1)
    # AND then is gone: not listed, and unused when asked for by id
    assert describe(twin, arn) == []
    [asked] = describe(twin, arn, Targets=[{"Id": instance_id}])
    assert asked["TargetHealth"] == {
        "State": "unused",
        "Reason": "Target.NotRegistered",
        "Description": "Target is not registered to the target group",
    }
    # WHEN it is registered again THEN it starts over as initial
    with twin.operator():
        boto3.client("elbv2").register_targets(
            TargetGroupArn=arn, Targets=[{"Id": instance_id, "Port": 6443}]
        )
    assert health(twin, arn, instance_id)["State"] == "initial"
