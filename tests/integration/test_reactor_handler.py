"""The reactor handler against moto: parsing, refusal of foreign or malformed events, partial failures."""

from __future__ import annotations

import io
import json
import logging

import pytest

from kcluster.adapters.state_store import StateStore

from .conftest import CLUSTER, TABLE, eventbridge_event, import_handler, sqs_event


def launch_event(asg: str, instance_id: str = "i-0123456789abcdef0") -> dict:
    return eventbridge_event(
        "EC2 Instance-launch Lifecycle Action",
        "aws.autoscaling",
        {
            "LifecycleActionToken": "87654321-4321-4321-4321-210987654321",
            "AutoScalingGroupName": asg,
            "LifecycleHookName": "kcluster-launch",
            "EC2InstanceId": instance_id,
            "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
            "Origin": "EC2",
            "Destination": "AutoScalingGroup",
        },
        resources=[
            f"arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:x:autoScalingGroupName/{asg}"
        ],
    )


@pytest.fixture
def reactor(state_table, cluster_config):
    return import_handler("reactor")


def stored_nodes() -> dict:
    return StateStore(TABLE, CLUSTER).load().nodes


def log_records(caplog) -> list[dict]:
    """Powertools log records as dicts (message, level and the structured extras)."""
    return [
        {
            **{k: v for k, v in vars(r).items() if not k.startswith("_")},
            "level": r.levelname,
            "message": r.getMessage(),
        }
        for r in caplog.records
    ]


def test_launch_event_records_the_node(reactor, lambda_context):
    # GIVEN a launch lifecycle action of the cluster's worker group
    event = sqs_event(launch_event(f"kcluster-{CLUSTER}-workers"))
    # WHEN the reactor handles it
    response = reactor.lambda_handler(event, lambda_context)
    # THEN the node is recorded as launching and nothing failed
    assert response == {"batchItemFailures": []}
    node = stored_nodes()["i-0123456789abcdef0"]
    assert (node.phase, node.role, node.hook_name) == ("launching", "worker", "kcluster-launch")


def test_event_of_another_clusters_asg_is_refused_without_state_change(reactor, lambda_context, caplog):
    event = sqs_event(launch_event("kcluster-other-workers"))
    response = reactor.lambda_handler(event, lambda_context)
    assert response == {"batchItemFailures": []}  # dropped, not retried
    assert stored_nodes() == {}
    warnings = [r for r in log_records(caplog) if r["level"] == "WARNING"]
    assert any(
        "another cluster" in r["message"] and "kcluster-other-workers" in r["reason"] for r in warnings
    )


@pytest.mark.parametrize(
    "body",
    [
        "not json at all",
        json.dumps({"detail-type": "Something Else", "source": "aws.ec2", "detail": {}}),
        json.dumps(launch_event("kcluster-demo-workers", instance_id="i-; rm -rf /")),
        json.dumps(
            {**launch_event("kcluster-demo-workers"), "detail": {"EC2InstanceId": "i-0123456789abcdef0"}}
        ),
    ],
    ids=["not-json", "unknown-detail-type", "bad-instance-id", "missing-fields"],
)
def test_malformed_event_fails_only_itself_and_changes_nothing(reactor, lambda_context, caplog, body):
    good = launch_event(f"kcluster-{CLUSTER}-workers", instance_id="i-0aaaaaaaaaaaaaaaa")
    event = sqs_event(body, good)
    bad_id = event["Records"][0]["messageId"]
    response = reactor.lambda_handler(event, lambda_context)
    assert response == {"batchItemFailures": [{"itemIdentifier": bad_id}]}
    assert set(stored_nodes()) == {"i-0aaaaaaaaaaaaaaaa"}
    errors = [r for r in log_records(caplog) if r["level"] == "ERROR"]
    assert any(r["message"] == "event refused" and r["reason"] for r in errors)


def test_same_event_twice_gives_the_same_state(reactor, lambda_context):
    event = launch_event(f"kcluster-{CLUSTER}-control-plane")
    reactor.lambda_handler(sqs_event(event), lambda_context)
    once = stored_nodes()
    reactor.lambda_handler(sqs_event(event, event), lambda_context)
    assert stored_nodes() == once


def test_logs_carry_the_instance_id_as_correlation_id(reactor, lambda_context):
    # Read the JSON lines Powertools really writes, from its own handler.
    buffer = io.StringIO()
    handler = reactor.logger.registered_handler
    previous = handler.setStream(buffer)
    try:
        reactor.lambda_handler(sqs_event(launch_event(f"kcluster-{CLUSTER}-workers")), lambda_context)
    finally:
        handler.setStream(previous)
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    launching = [line for line in lines if line["message"] == "node launching"]
    assert launching and launching[0]["correlation_id"] == "i-0123456789abcdef0"
    assert launching[0]["service"] == "kcluster"


@pytest.fixture(autouse=True)
def _quiet_botocore():
    logging.getLogger("botocore").setLevel(logging.WARNING)
