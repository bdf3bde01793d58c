"""Events reach the queue (or function) only through rules whose patterns match, after a virtual delay."""

from __future__ import annotations

import json

import boto3
import pytest

from twin.aws.eventbus import schedule_period_seconds

from .conftest import ServerlessTwin


def _lifecycle(asg: str, detail_type: str = "EC2 Instance-launch Lifecycle Action") -> dict:
    detail = {"AutoScalingGroupName": asg, "EC2InstanceId": "i-0123", "LifecycleHookName": "kcluster-launch"}
    return {"Source": "aws.autoscaling", "DetailType": detail_type, "Detail": json.dumps(detail)}


def _node(cluster: str, role: str) -> dict:
    detail = {"cluster": cluster, "instance-id": "i-0456", "role": role}
    return {"Source": "kcluster.node", "DetailType": "Node Provisioned", "Detail": json.dumps(detail)}


@pytest.fixture
def quiet_queue(twin: ServerlessTwin) -> ServerlessTwin:
    """The twin with the queue's event source mapping disabled, so the test reads the queue itself."""
    for mapping in twin.stack.event_source_mappings:
        mapping.enabled = False
    return twin


def _queued_bodies(twin: ServerlessTwin) -> list[dict]:
    sqs = boto3.client("sqs")
    url = twin.stack.physical_id("EventsQueue")
    bodies = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
            "Messages"
        )
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


@pytest.mark.parametrize(
    ("entry", "expected_rule"),
    [
        (_lifecycle("kcluster-alpha-control-plane"), "LifecycleRule"),  # prefix filter
        (_lifecycle("kcluster-alpha-workers", "EC2 Instance-terminate Lifecycle Action"), "LifecycleRule"),
        (_lifecycle("kcluster-beta-workers"), None),  # prefix of another cluster
        (_lifecycle("kcluster-alpha-workers", "EC2 Instance Launch Successful"), None),  # not in the list
        (_node("alpha", "worker"), "NodeRule"),  # nested detail fields, list of roles
        (_node("alpha", "etcd"), None),  # role not in the list
        (_node("beta", "worker"), None),  # nested detail.cluster differs
    ],
)
def test_event_reaches_the_queue_only_when_a_rule_pattern_matches(quiet_queue, entry, expected_rule):
    twin = quiet_queue
    response = twin.bus.put_events([entry])
    assert response["FailedEntryCount"] == 0
    assert _queued_bodies(twin) == []  # EventBridge delivery takes (virtual) time
    twin.scheduler.run_for(5)

    bodies = _queued_bodies(twin)
    if expected_rule is None:
        assert bodies == []
        assert twin.bus.deliveries == []
        return
    # Exactly one copy: DisabledRule matches kcluster.node events too but is DISABLED.
    assert len(bodies) == 1
    (event,) = bodies
    assert event["id"] == response["Entries"][0]["EventId"]
    assert event["source"] == entry["Source"]
    assert event["detail-type"] == entry["DetailType"]
    assert event["detail"] == json.loads(entry["Detail"])
    assert (event["version"], event["account"], event["region"]) == ("0", "123456789012", "us-east-1")
    assert event["time"] == "2026-01-01T00:00:00Z"
    rule_name = twin.stack.physical_id(expected_rule)
    assert [(rule, target) for rule, target, _ in twin.bus.deliveries] == [(rule_name, "queue")]


def test_every_put_event_is_recorded_with_a_seeded_id(aws, clock):
    from .conftest import build_twin

    first = build_twin(clock, seed=3, stack_name="first")
    first.bus.put_events([_node("demo", "worker")])
    second = build_twin(clock, seed=3, stack_name="second")
    second.bus.put_events([_node("demo", "worker")])
    assert first.recorder.events[0]["id"] == second.recorder.events[0]["id"]
    assert first.recorder.events[0]["detail"]["instance-id"] == "i-0456"


def test_interceptors_can_drop_duplicate_and_delay_events(quiet_queue: ServerlessTwin):
    twin = quiet_queue

    def duplicate_late(event):
        if event["detail"].get("role") == "worker":
            return [(0.0, event), (300.0, event)]
        return []  # drop everything else

    twin.bus.interceptors.append(duplicate_late)
    twin.bus.put_events([_node("alpha", "worker"), _node("alpha", "control-plane")])
    twin.scheduler.run_for(10)
    early = _queued_bodies(twin)
    assert [body["detail"]["role"] for body in early] == ["worker"]
    twin.scheduler.run_for(300)
    late = _queued_bodies(twin)
    assert [body["id"] for body in late] == [early[0]["id"]]  # the same event, delivered twice


def test_lambda_target_is_invoked_async_and_retried_per_event_invoke_config(twin: ServerlessTwin):
    alarm = {
        "Source": "aws.cloudwatch",
        "DetailType": "CloudWatch Alarm State Change",
        "Detail": json.dumps({"alarmName": "x", "explode": True}),
    }
    start = twin.clock.now()
    twin.bus.put_events([alarm])
    twin.scheduler.run_for(600)
    attempts = [record for record in twin.functions.invocations if record.function == "EchoFunction"]
    # MaximumRetryAttempts 1: the first attempt and one retry about a minute later, then given up.
    assert len(attempts) == 2
    assert all(not record.ok for record in attempts)
    assert 59 <= attempts[1].started_at - attempts[0].started_at <= 61
    assert attempts[0].started_at - start < 3
    ((function, event, error),) = twin.functions.async_failures
    assert function == "EchoFunction"
    assert event["detail"]["alarmName"] == "x"
    assert "echo was asked to fail" in error


def test_schedule_rules_fire_scheduled_events_at_the_period(twin: ServerlessTwin):
    assert twin.bus.schedule_rules() == [twin.stack.physical_id("TickerFunctionEveryMinute")]
    twin.scheduler.run_for(3 * 60 + 30)
    scheduled = [e for e in twin.recorder.events if e["detail-type"] == "Scheduled Event"]
    assert [e["time"] for e in scheduled] == [
        "2026-01-01T00:01:00Z",
        "2026-01-01T00:02:00Z",
        "2026-01-01T00:03:00Z",
    ]
    assert all(e["source"] == "aws.events" for e in scheduled)
    assert scheduled[0]["resources"] == [twin.stack.resources["TickerFunctionEveryMinute"].attributes["Arn"]]


def test_schedule_expressions():
    assert schedule_period_seconds("rate(1 minute)") == 60
    assert schedule_period_seconds("rate(5 minutes)") == 300
    assert schedule_period_seconds("rate(2 hours)") == 7200
    with pytest.raises(ValueError, match="1 minute"):
        schedule_period_seconds("rate(1 minutes)")
    with pytest.raises(NotImplementedError):
        schedule_period_seconds("cron(0/5 * * * ? *)")
