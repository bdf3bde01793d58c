"""The remediator handler against moto: it remembers the alarm, refuses what is not ours or does not fit,
and (GIVEN a stored health snapshot with a worker NotReady past its grace) replaces it through the ASG."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from kcluster.adapters.state_store import StateStore
from kcluster.core.models import ClusterState, HealthSnapshot, NodeHealth, NodeRecord

from .conftest import CLUSTER, TABLE, import_handler

EVENTS = Path(__file__).resolve().parents[2] / "events"
WORKERS = f"kcluster-{CLUSTER}-workers"


def alarm_event(state: str = "ALARM", name: str = f"kcluster-{CLUSTER}-remediate-nodes-not-ready") -> dict:
    event = json.loads((EVENTS / "remediator-alarm-single-metric.json").read_text())
    event["detail"]["alarmName"] = name
    event["detail"]["state"]["value"] = state
    event["detail"]["previousState"]["value"] = "OK" if state == "ALARM" else "ALARM"
    return event


@pytest.fixture
def worker(aws) -> str:
    """An InService worker of the cluster's group, one of three (moto keeps ASG instances InService)."""
    ec2 = boto3.client("ec2")
    subnet = ec2.create_subnet(
        VpcId=ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"], CidrBlock="10.0.0.0/24"
    )["Subnet"]["SubnetId"]
    template = ec2.create_launch_template(
        LaunchTemplateName="w", LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t4g.small"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    autoscaling = boto3.client("autoscaling")
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=WORKERS,
        LaunchTemplate={"LaunchTemplateId": template},
        MinSize=0,
        MaxSize=3,
        DesiredCapacity=3,
        VPCZoneIdentifier=subnet,
    )
    (group,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[WORKERS])["AutoScalingGroups"]
    return group["Instances"][0]["InstanceId"]


@pytest.fixture
def remediator(state_table, cluster_config, worker, monkeypatch):
    topic = boto3.client("sns").create_topic(Name="alerts")["TopicArn"]
    monkeypatch.setenv("ALERTS_TOPIC_ARN", topic)
    store = StateStore(TABLE, CLUSTER)
    now = 10_000.0
    store.write((ClusterState(CLUSTER, phase="ready", epoch=1, version=1),))
    (group,) = boto3.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[WORKERS])[
        "AutoScalingGroups"
    ]
    for instance in group["Instances"]:
        iid = instance["InstanceId"]
        store.write((NodeRecord(iid, "worker", WORKERS, phase="joined", node_name=f"n-{iid}", version=1),))
    store.write(
        (
            HealthSnapshot(
                taken_at=now,
                api_ready=True,
                ready_nodes=2,
                not_ready_nodes=1,
                not_ready=(NodeHealth(worker, f"n-{worker}", False, False, now - 3600),),
                version=1,
            ),
        )
    )
    return import_handler("remediator")


def test_an_alarm_replaces_the_broken_worker_and_an_ok_stops_remediation(remediator, lambda_context, worker):
    assert remediator.lambda_handler(alarm_event(), lambda_context) == {"ok": True}
    view = StateStore(TABLE, CLUSTER).load()
    assert view.remediation_state.alarms_in_alarm == (f"kcluster-{CLUSTER}-remediate-nodes-not-ready",)
    assert view.remediation_state.remediating == worker
    (instance,) = boto3.client("autoscaling").describe_auto_scaling_instances(InstanceIds=[worker])[
        "AutoScalingInstances"
    ]
    assert instance["HealthStatus"].upper() == "UNHEALTHY"
    assert remediator.lambda_handler(alarm_event("OK"), lambda_context) == {"ok": True}
    assert StateStore(TABLE, CLUSTER).load().remediation_state.alarms_in_alarm == ()


def test_another_clusters_alarm_and_a_malformed_event_change_nothing(remediator, lambda_context):
    before = StateStore(TABLE, CLUSTER).load()
    other = remediator.lambda_handler(alarm_event(name="kcluster-other-remediate-x"), lambda_context)
    assert other["ok"] is False and "not one of cluster" in other["ignored"]
    broken = alarm_event()
    del broken["detail"]["state"]
    refused = remediator.lambda_handler(broken, lambda_context)
    assert refused["ok"] is False and "not a CloudWatch alarm state change" in refused["refused"]
    assert StateStore(TABLE, CLUSTER).load() == before


def test_an_alarm_of_cluster_demo_x_changes_nothing_for_cluster_demo(remediator, lambda_context):
    # GIVEN cluster "demo-x", whose alarm names start with "kcluster-demo-"
    before = StateStore(TABLE, CLUSTER).load()
    other = alarm_event(name=f"kcluster-{CLUSTER}-x-remediate-nodes-not-ready")
    # WHEN its remediation alarm fires
    result = remediator.lambda_handler(other, lambda_context)
    # THEN cluster demo remembers no alarm and replaces nothing
    assert result["ok"] is False and "not one of cluster" in result["ignored"]
    assert StateStore(TABLE, CLUSTER).load() == before
    group = boto3.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[WORKERS])
    assert all(i["HealthStatus"].upper() == "HEALTHY" for i in group["AutoScalingGroups"][0]["Instances"])
