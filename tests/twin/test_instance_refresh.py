"""Auto Scaling instance refresh as the twin emulates it (twin/aws/instance_refresh.py): preferences,
lifecycle hooks, checkpoints, cancel, failure, and the events in AWS's shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.twin.conftest import REGION, auto_scaling, make_group
from twin.aws import instance_refresh, lifecycle

GROUP = "kcluster-demo-workers"
STARTED = "EC2 Auto Scaling Instance Refresh Started"
CHECKPOINT = "EC2 Auto Scaling Instance Refresh Checkpoint Reached"
SUCCEEDED = "EC2 Auto Scaling Instance Refresh Succeeded"
FAILED = "EC2 Auto Scaling Instance Refresh Failed"
CANCELLED = "EC2 Auto Scaling Instance Refresh Cancelled"


@pytest.fixture
def asg(twin: SimpleNamespace) -> Iterator[SimpleNamespace]:
    twin.lifecycle = auto_scaling(twin)
    twin.refresh = instance_refresh.InstanceRefreshEmulation(twin.lifecycle)
    undo_lifecycle = lifecycle.install(twin.lifecycle)
    undo_refresh = instance_refresh.install(twin.refresh)
    try:
        yield twin
    finally:
        undo_refresh()
        undo_lifecycle()


def client():
    return boto3.client("autoscaling", region_name=REGION)


class Operator:
    """Stands in for kcluster: completes each lifecycle action `delay` seconds after it starts
    (CONTINUE, or ABANDON for launches when `abandon_launches`), and watches the group meanwhile."""

    def __init__(self, world: SimpleNamespace, delay: float = 20.0, abandon_launches: bool = False) -> None:
        self.world, self.delay, self.abandon_launches = world, delay, abandon_launches
        self.min_in_service = 10**6
        self.max_live = 0
        self.max_leaving = 0

    def run(self, seconds: float, step: float = 1.0) -> None:
        end = self.world.clock.now() + seconds
        while self.world.clock.now() < end:
            self.world.scheduler.run_for(step)
            self._complete_due()
            self._watch()

    def _complete_due(self) -> None:
        now = self.world.clock.now()
        for action in self.world.lifecycle.pending_actions():
            if now - action.started_at < self.delay:
                continue
            launching = action.transition == "autoscaling:EC2_INSTANCE_LAUNCHING"
            result = "ABANDON" if launching and self.abandon_launches else "CONTINUE"
            self.world.lifecycle.complete(action.group_name, action.hook_name, result, action.token, None)

    def _watch(self) -> None:
        states = [i["LifecycleState"] for i in group()["Instances"]]
        self.min_in_service = min(self.min_in_service, states.count("InService"))
        self.max_live = max(self.max_live, len([s for s in states if s in lifecycle.LIVE_STATES]))
        self.max_leaving = max(self.max_leaving, len([s for s in states if s.startswith("Terminating")]))


def group() -> dict:
    return client().describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])["AutoScalingGroups"][0]


def versions() -> dict[str, str]:
    return {i["InstanceId"]: i["LaunchTemplate"]["Version"] for i in group()["Instances"]}


def in_service_group(world: SimpleNamespace, size: int) -> Operator:
    """GIVEN a group of `size` InService instances from launch template version 1, then a version 2
    that the group now names (as Terraform does: a number, not $Latest)."""
    make_group(GROUP, desired=size)
    operator = Operator(world)
    operator.run(60)
    ec2 = boto3.client("ec2", region_name=REGION)
    ec2.create_launch_template_version(
        LaunchTemplateName=f"{GROUP}-lt", SourceVersion="1", LaunchTemplateData={"ImageId": "ami-12c6146b"}
    )
    client().update_auto_scaling_group(
        AutoScalingGroupName=GROUP, LaunchTemplate={"LaunchTemplateName": f"{GROUP}-lt", "Version": "2"}
    )
    assert set(versions().values()) == {"1"} and len(versions()) == size
    return Operator(world)


def start(**preferences) -> str:
    return client().start_instance_refresh(AutoScalingGroupName=GROUP, Preferences=preferences)[
        "InstanceRefreshId"
    ]


def describe(refresh_id: str) -> dict:
    return client().describe_instance_refreshes(AutoScalingGroupName=GROUP, InstanceRefreshIds=[refresh_id])[
        "InstanceRefreshes"
    ][0]


def test_launch_before_terminate_replaces_one_at_a_time_through_the_hooks(asg):
    operator = in_service_group(asg, 3)
    # WHEN control planes are refreshed: MinHealthy 100, room for exactly one more
    refresh_id = start(
        MinHealthyPercentage=100, MaxHealthyPercentage=134, InstanceWarmup=30, SkipMatching=True
    )
    operator.run(900)
    # THEN every instance runs version 2, never fewer than 3 in service nor more than 4 live
    assert set(versions().values()) == {"2"} and len(versions()) == 3
    assert operator.min_in_service >= 3 and operator.max_live == 4
    described = describe(refresh_id)
    assert (described["Status"], described["PercentageComplete"], described["InstancesToUpdate"]) == (
        "Successful",
        100,
        0,
    )
    assert described["Preferences"]["MaxHealthyPercentage"] == 134
    # the old ones left through the terminate hook (each completed, none timed out)
    terminations = [o for o in asg.lifecycle.outcomes if o.transition.endswith("TERMINATING")]
    assert len(terminations) == 3 and {o.how for o in terminations} == {"completed"}
    # the events, in AWS's shape
    (started,) = asg.bus.of_type(STARTED)
    (succeeded,) = asg.bus.of_type(SUCCEEDED)
    for event in (started, succeeded):
        assert event["Source"] == "aws.autoscaling" and event["Resources"] == [group()["AutoScalingGroupARN"]]
        assert json.loads(event["Detail"]) == {"InstanceRefreshId": refresh_id, "AutoScalingGroupName": GROUP}


def test_the_minimum_healthy_share_holds_for_a_worker_group(asg):
    operator = in_service_group(asg, 5)
    start(MinHealthyPercentage=90, MaxHealthyPercentage=120, InstanceWarmup=10, SkipMatching=True)
    operator.run(1200)
    assert set(versions().values()) == {"2"}
    assert operator.min_in_service >= 5 and operator.max_live <= 6


def test_min_healthy_100_without_surge_replaces_one_at_a_time(asg):
    operator = in_service_group(asg, 3)
    refresh_id = start(MinHealthyPercentage=100, InstanceWarmup=0)
    operator.run(900)
    assert describe(refresh_id)["Status"] == "Successful" and set(versions().values()) == {"2"}
    assert operator.max_leaving == 1 and operator.max_live == 3


def test_skip_matching_keeps_instances_already_on_the_target(asg):
    operator = in_service_group(asg, 2)
    start(MinHealthyPercentage=50, SkipMatching=True, InstanceWarmup=0)
    operator.run(600)
    replaced = versions()
    again = start(SkipMatching=True)
    operator.run(30)
    assert describe(again)["Status"] == "Successful" and versions() == replaced  # nothing to replace
    everything = start(MinHealthyPercentage=50, InstanceWarmup=0)  # without SkipMatching: all again
    operator.run(600)
    assert describe(everything)["Status"] == "Successful" and not set(versions()) & set(replaced)


def test_a_checkpoint_waits_its_delay_and_is_announced(asg):
    operator = in_service_group(asg, 4)
    refresh_id = start(
        MinHealthyPercentage=75,
        InstanceWarmup=0,
        SkipMatching=True,
        CheckpointPercentages=[50, 100],
        CheckpointDelay=600,
    )
    operator.run(300)
    assert sorted(versions().values()) == ["1", "1", "2", "2"]
    assert asg.bus.details(CHECKPOINT) == [
        {
            "InstanceRefreshId": refresh_id,
            "AutoScalingGroupName": GROUP,
            "CheckpointPercentage": "50",
            "CheckpointDelay": "600",
        }
    ]
    assert describe(refresh_id)["Status"] == "InProgress"
    assert "checkpoint" in describe(refresh_id)["StatusReason"]
    operator.run(900)
    assert describe(refresh_id)["Status"] == "Successful" and set(versions().values()) == {"2"}
    assert len(asg.bus.of_type(CHECKPOINT)) == 1  # none for 100 %


def test_cancel_stops_after_in_flight_replacements_and_keeps_what_was_replaced(asg):
    operator = in_service_group(asg, 4)
    refresh_id = start(MinHealthyPercentage=75, InstanceWarmup=0, SkipMatching=True)
    with pytest.raises(ClientError) as error:
        start()
    assert error.value.response["Error"]["Code"] == "InstanceRefreshInProgress"
    operator.run(30)
    assert client().cancel_instance_refresh(AutoScalingGroupName=GROUP)["InstanceRefreshId"] == refresh_id
    assert describe(refresh_id)["Status"] == "Cancelling"
    operator.run(300)
    assert describe(refresh_id)["Status"] == "Cancelled"
    assert asg.bus.details(CANCELLED) == [{"InstanceRefreshId": refresh_id, "AutoScalingGroupName": GROUP}]
    left = sorted(versions().values())
    assert left.count("2") >= 1 and left.count("1") >= 1 and len(left) == 4
    with pytest.raises(ClientError) as error:
        client().cancel_instance_refresh(AutoScalingGroupName=GROUP)
    assert error.value.response["Error"]["Code"] == "ActiveInstanceRefreshNotFound"


def test_replacements_that_never_become_healthy_fail_the_refresh(asg):
    in_service_group(asg, 2)
    operator = Operator(asg, abandon_launches=True)
    refresh_id = start(MinHealthyPercentage=100, MaxHealthyPercentage=150, InstanceWarmup=0)
    operator.run(900)
    described = describe(refresh_id)
    assert described["Status"] == "Failed" and "failed to become healthy" in described["StatusReason"]
    assert len(asg.bus.of_type(FAILED)) == 1
    assert set(versions().values()) == {"1"} and len(versions()) == 2  # launch before terminate: none lost


@pytest.mark.parametrize(
    ("preferences", "message"),
    [
        ({"MinHealthyPercentage": 90, "MaxHealthyPercentage": 250}, "between 100 and 200"),
        ({"MinHealthyPercentage": 20, "MaxHealthyPercentage": 150}, "at most 100 above"),
        ({"CheckpointPercentages": [50, 20]}, "ascending"),
        ({"AutoRollback": True}, "does not emulate AutoRollback"),
    ],
)
def test_bad_or_unemulated_preferences_are_refused_with_a_clear_error(asg, preferences, message):
    in_service_group(asg, 1)
    with pytest.raises(ClientError) as error:
        start(**preferences)
    assert error.value.response["Error"]["Code"] == "ValidationError" and message in str(error.value)
    assert client().describe_instance_refreshes(AutoScalingGroupName=GROUP)["InstanceRefreshes"] == []


def test_the_product_adapter_starts_adopts_follows_and_cancels_a_refresh(asg):
    from kcluster.adapters.instance_refresh import InstanceRefreshes
    from kcluster.core.rollout_model import StartRefresh

    operator = in_service_group(asg, 3)
    refreshes = InstanceRefreshes(client())
    step = StartRefresh(GROUP, 2, 100, 134, 0)
    refresh_id = refreshes.start(step)
    assert refreshes.start(step) == refresh_id  # a second start adopts the active refresh
    operator.run(30)
    assert refreshes.latest([GROUP])[GROUP].status == "InProgress"
    assert refreshes.cancel(GROUP) == refresh_id
    operator.run(300)
    seen = refreshes.latest([GROUP])[GROUP]
    assert (seen.refresh_id, seen.status) == (refresh_id, "Cancelled")
    assert refreshes.cancel(GROUP) is None
