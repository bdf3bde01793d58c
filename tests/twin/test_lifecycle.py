"""Auto Scaling lifecycle hooks as the twin emulates them on top of moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.twin.conftest import REGION, auto_scaling, instances_of, make_group
from twin.aws import lifecycle

LAUNCH = "EC2 Instance-launch Lifecycle Action"
TERMINATE = "EC2 Instance-terminate Lifecycle Action"


@pytest.fixture
def asg(twin: SimpleNamespace) -> Iterator[SimpleNamespace]:
    twin.lifecycle = auto_scaling(twin)
    undo = lifecycle.install(twin.lifecycle)
    try:
        yield twin
    finally:
        undo()


def client():
    return boto3.client("autoscaling", region_name=REGION)


def settle(world: SimpleNamespace, seconds: float = 5.0) -> None:
    world.scheduler.run_for(seconds)


def test_launch_waits_in_pending_wait_and_emits_the_real_event(asg):
    make_group(desired=2)
    states = instances_of("kcluster-demo-workers")
    assert sorted(states.values()) == ["Pending:Wait", "Pending:Wait"]
    assert asg.bus.of_type(LAUNCH) == []  # emitted after a short delay, like AWS
    settle(asg)
    events = asg.bus.of_type(LAUNCH)
    assert len(events) == 2
    group_arn = client().describe_auto_scaling_groups(AutoScalingGroupNames=["kcluster-demo-workers"])[
        "AutoScalingGroups"
    ][0]["AutoScalingGroupARN"]
    for event in events:
        assert event["Source"] == "aws.autoscaling"
        assert event["Resources"] == [group_arn]
        detail = json.loads(event["Detail"])
        assert detail["AutoScalingGroupName"] == "kcluster-demo-workers"
        assert detail["LifecycleHookName"] == "kcluster-launch"
        assert detail["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_LAUNCHING"
        assert detail["EC2InstanceId"] in states
        assert detail["NotificationMetadata"] == json.dumps({"role": "worker"})
        assert (detail["Origin"], detail["Destination"]) == ("EC2", "AutoScalingGroup")
        assert len(detail["LifecycleActionToken"]) == 36
    # The instances boot meanwhile: they joined the fleet in their subnets' AZs, spread over 3 AZs.
    assert set(asg.fleet.instances) == set(states)
    zones = {facts["availability_zone"] for facts in asg.fleet.instances.values()}
    assert len(zones) == 2 and zones <= {"us-east-1a", "us-east-1b", "us-east-1c"}


def test_hooks_from_the_create_call_are_kept_with_aws_timeouts(asg):
    make_group(heartbeat=600)
    hooks = client().describe_lifecycle_hooks(AutoScalingGroupName="kcluster-demo-workers")["LifecycleHooks"]
    by_name = {h["LifecycleHookName"]: h for h in hooks}
    assert by_name["kcluster-launch"]["DefaultResult"] == "ABANDON"
    assert by_name["kcluster-terminate"]["DefaultResult"] == "CONTINUE"
    assert by_name["kcluster-launch"]["HeartbeatTimeout"] == 600
    assert by_name["kcluster-launch"]["GlobalTimeout"] == 60000  # 100 x heartbeat < 48 h


def test_heartbeat_timeout_outside_aws_range_is_refused(asg):
    make_group(hooks=False)
    with pytest.raises(ClientError) as error:
        client().put_lifecycle_hook(
            AutoScalingGroupName="kcluster-demo-workers",
            LifecycleHookName="too-short",
            LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING",
            HeartbeatTimeout=10,
        )
    assert error.value.response["Error"]["Code"] == "ValidationError"


def test_continue_puts_the_instance_in_service_and_into_the_target_group(asg):
    elbv2 = boto3.client("elbv2", region_name=REGION)
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    target_group = elbv2.create_target_group(Name="api", Protocol="TCP", Port=6443, VpcId=vpc)[
        "TargetGroups"
    ][0]["TargetGroupArn"]
    make_group(
        "kcluster-demo-control-plane", desired=1, role="control-plane", target_group_arns=[target_group]
    )
    settle(asg)
    (instance_id,) = instances_of("kcluster-demo-control-plane")
    assert elbv2.describe_target_health(TargetGroupArn=target_group)["TargetHealthDescriptions"] == []
    token = asg.bus.details(LAUNCH)[0]["LifecycleActionToken"]
    client().complete_lifecycle_action(
        AutoScalingGroupName="kcluster-demo-control-plane",
        LifecycleHookName="kcluster-launch",
        LifecycleActionToken=token,
        LifecycleActionResult="CONTINUE",
    )
    assert instances_of("kcluster-demo-control-plane") == {instance_id: "InService"}
    targets = elbv2.describe_target_health(TargetGroupArn=target_group)["TargetHealthDescriptions"]
    assert [t["Target"]["Id"] for t in targets] == [instance_id]
    # The token is spent: a second completion is refused like AWS does.
    with pytest.raises(ClientError) as error:
        client().complete_lifecycle_action(
            AutoScalingGroupName="kcluster-demo-control-plane",
            LifecycleHookName="kcluster-launch",
            LifecycleActionToken=token,
            LifecycleActionResult="CONTINUE",
        )
    assert error.value.response["Error"]["Code"] == "ValidationError"


def test_complete_by_instance_id_without_pending_action_is_a_validation_error(asg):
    make_group(desired=1, hooks=False)
    (instance_id,) = instances_of("kcluster-demo-workers")
    autoscaling = client()
    calls = [
        (autoscaling.complete_lifecycle_action, {"LifecycleActionResult": "CONTINUE"}),
        (autoscaling.record_lifecycle_action_heartbeat, {}),
    ]
    for call, extra in calls:
        with pytest.raises(ClientError) as error:
            call(
                AutoScalingGroupName="kcluster-demo-workers",
                LifecycleHookName="kcluster-launch",
                InstanceId=instance_id,
                **extra,
            )
        assert error.value.response["Error"]["Code"] == "ValidationError"
        assert f"No active Lifecycle Action found with instance ID {instance_id}" in str(error.value)


def test_abandon_terminates_through_the_terminate_hook_and_launches_a_replacement(asg):
    make_group(desired=1)
    settle(asg)
    (first,) = instances_of("kcluster-demo-workers")
    client().complete_lifecycle_action(
        AutoScalingGroupName="kcluster-demo-workers",
        LifecycleHookName="kcluster-launch",
        InstanceId=first,
        LifecycleActionResult="ABANDON",
    )
    states = instances_of("kcluster-demo-workers")
    assert states[first] == "Terminating:Wait"
    (replacement,) = [i for i, s in states.items() if s == "Pending:Wait"]
    settle(asg)
    assert [d["EC2InstanceId"] for d in asg.bus.details(TERMINATE)] == [first]
    terminate = asg.bus.details(TERMINATE)[0]
    assert (terminate["Origin"], terminate["Destination"]) == ("AutoScalingGroup", "EC2")
    client().complete_lifecycle_action(
        AutoScalingGroupName="kcluster-demo-workers",
        LifecycleHookName="kcluster-terminate",
        InstanceId=first,
        LifecycleActionResult="CONTINUE",
    )
    assert instances_of("kcluster-demo-workers") == {replacement: "Pending:Wait"}
    ec2 = boto3.client("ec2", region_name=REGION)
    state = ec2.describe_instances(InstanceIds=[first])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state == "terminated"
    assert first in asg.fleet.removed


def test_heartbeat_extends_the_wait_and_timeout_applies_the_default_result(asg):
    make_group(desired=1, heartbeat=900)
    (instance_id,) = instances_of("kcluster-demo-workers")
    settle(asg, 800)
    client().record_lifecycle_action_heartbeat(
        AutoScalingGroupName="kcluster-demo-workers",
        LifecycleHookName="kcluster-launch",
        InstanceId=instance_id,
    )
    settle(asg, 800)  # 1600 s after launch: past the first 900 s, within the renewed one
    assert instances_of("kcluster-demo-workers")[instance_id] == "Pending:Wait"
    settle(asg, 200)  # renewed heartbeat ran out: DefaultResult ABANDON
    states = instances_of("kcluster-demo-workers")
    assert states[instance_id] == "Terminating:Wait"
    outcome = asg.lifecycle.outcomes[0]
    assert (outcome.instance_id, outcome.result, outcome.how) == (instance_id, "ABANDON", "heartbeat-timeout")
    assert 1700 <= outcome.at - asg.lifecycle.launched_at(instance_id) <= 1701


def test_global_timeout_caps_heartbeats(asg):
    make_group(desired=1, heartbeat=30)  # global timeout 100 x 30 s = 3000 s
    (instance_id,) = instances_of("kcluster-demo-workers")
    launched = asg.lifecycle.launched_at(instance_id)
    autoscaling = client()
    waiting = [a for a in asg.lifecycle.pending_actions() if a.instance_id == instance_id]
    while any(a.hook_name == "kcluster-launch" for a in waiting):
        autoscaling.record_lifecycle_action_heartbeat(
            AutoScalingGroupName="kcluster-demo-workers",
            LifecycleHookName="kcluster-launch",
            InstanceId=instance_id,
        )
        settle(asg, 25)
        waiting = [a for a in asg.lifecycle.pending_actions() if a.instance_id == instance_id]
    outcome = asg.lifecycle.outcomes[0]
    assert outcome.how == "global-timeout"
    assert outcome.at - launched == pytest.approx(3000)


def test_terminate_timeout_continues(asg):
    make_group(desired=1, hooks=False)
    client().put_lifecycle_hook(
        AutoScalingGroupName="kcluster-demo-workers",
        LifecycleHookName="kcluster-terminate",
        LifecycleTransition="autoscaling:EC2_INSTANCE_TERMINATING",
        HeartbeatTimeout=60,
        DefaultResult="CONTINUE",
    )
    (instance_id,) = instances_of("kcluster-demo-workers")
    client().set_desired_capacity(AutoScalingGroupName="kcluster-demo-workers", DesiredCapacity=0)
    assert instances_of("kcluster-demo-workers") == {instance_id: "Terminating:Wait"}
    settle(asg, 61)
    assert instances_of("kcluster-demo-workers") == {}


def test_scale_in_waits_then_terminates_after_complete(asg):
    make_group(desired=3, hooks=False)
    client().put_lifecycle_hook(
        AutoScalingGroupName="kcluster-demo-workers",
        LifecycleHookName="kcluster-terminate",
        LifecycleTransition="autoscaling:EC2_INSTANCE_TERMINATING",
        HeartbeatTimeout=900,
        DefaultResult="CONTINUE",
    )
    before = instances_of("kcluster-demo-workers")
    assert set(before.values()) == {"InService"}
    client().set_desired_capacity(AutoScalingGroupName="kcluster-demo-workers", DesiredCapacity=2)
    states = instances_of("kcluster-demo-workers")
    (leaving,) = [i for i, s in states.items() if s == "Terminating:Wait"]
    settle(asg)
    (event,) = asg.bus.details(TERMINATE)
    assert event["EC2InstanceId"] == leaving
    client().complete_lifecycle_action(
        AutoScalingGroupName="kcluster-demo-workers",
        LifecycleHookName="kcluster-terminate",
        LifecycleActionToken=event["LifecycleActionToken"],
        LifecycleActionResult="ABANDON",  # any result: a terminate hook cannot keep the instance
    )
    after = instances_of("kcluster-demo-workers")
    assert leaving not in after and len(after) == 2


def test_scale_in_takes_from_the_fullest_az_then_the_oldest(asg):
    make_group(desired=3, hooks=False)  # one per AZ
    first_three = set(instances_of("kcluster-demo-workers"))
    asg.scheduler.run_for(100)
    client().set_desired_capacity(AutoScalingGroupName="kcluster-demo-workers", DesiredCapacity=4)
    (fourth,) = set(instances_of("kcluster-demo-workers")) - first_three
    fourth_az = asg.fleet.instances[fourth]["availability_zone"]
    (older_same_az,) = [
        i for i, f in asg.fleet.instances.items() if f["availability_zone"] == fourth_az and i != fourth
    ]
    client().set_desired_capacity(AutoScalingGroupName="kcluster-demo-workers", DesiredCapacity=3)
    # The fullest AZ holds two; of those the older one goes.
    assert older_same_az not in instances_of("kcluster-demo-workers")
    assert fourth in instances_of("kcluster-demo-workers")


def test_pending_wait_instances_are_eligible_for_scale_in(asg):
    make_group(desired=1)
    (instance_id,) = instances_of("kcluster-demo-workers")
    client().set_desired_capacity(AutoScalingGroupName="kcluster-demo-workers", DesiredCapacity=0)
    assert instances_of("kcluster-demo-workers") == {instance_id: "Terminating:Wait"}
    assert [(o.hook_name, o.how) for o in asg.lifecycle.outcomes] == [("kcluster-launch", "superseded")]
    assert [a.hook_name for a in asg.lifecycle.pending_actions()] == ["kcluster-terminate"]


def test_unhealthy_instance_is_replaced_through_the_hooks(asg):
    make_group(desired=1, hooks=False)
    (instance_id,) = instances_of("kcluster-demo-workers")
    client().set_instance_health(InstanceId=instance_id, HealthStatus="Unhealthy")
    asg.scheduler.run_for(100)
    assert instances_of("kcluster-demo-workers") == {instance_id: "InService"}  # inside the grace period
    asg.scheduler.run_for(300)  # past the 300 s grace period
    client().set_instance_health(InstanceId=instance_id, HealthStatus="Unhealthy")
    asg.scheduler.run_for(31)
    states = instances_of("kcluster-demo-workers")
    assert instance_id not in states
    assert list(states.values()) == ["InService"]


def test_boot_registers_the_agent_and_emits_node_provisioned(twin):
    registered: list[str] = []
    agents = SimpleNamespace(register_agent=registered.append, instance_gone=lambda _id: None)
    asg = twin
    # The node side (twin/node/boot.py) registers each instance's agent with Run Command.
    undo = lifecycle.install(auto_scaling(twin, agents=agents))
    try:
        make_group(desired=1)
        (instance_id,) = instances_of("kcluster-demo-workers")
        settle(asg, 60)
        assert registered == [instance_id]
        settle(asg, 180)
        assert asg.fleet.provisioned == [instance_id]
        (detail,) = asg.bus.details("Node Provisioned")
        assert detail == {"cluster": "demo", "instance-id": instance_id, "role": "worker"}
    finally:
        undo()


def test_crash_is_noticed_and_replaced(asg):
    make_group(desired=1, hooks=False)
    (instance_id,) = instances_of("kcluster-demo-workers")
    asg.lifecycle.crash(instance_id)
    assert asg.fleet.removed == [instance_id]
    asg.scheduler.run_for(31)
    states = instances_of("kcluster-demo-workers")
    assert instance_id not in states and len(states) == 1


def test_undo_restores_moto(twin):
    lifecycle.install(auto_scaling(twin))()
    make_group(desired=1)
    assert list(instances_of("kcluster-demo-workers").values()) == ["InService"]  # moto's own behaviour
