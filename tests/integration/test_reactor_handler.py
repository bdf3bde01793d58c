"""The reactor handler against moto: parsing, refusal of foreign or malformed events, partial failures."""

from __future__ import annotations

import io
import json
import logging

import pytest
from botocore.exceptions import ClientError

from kcluster.adapters.state_store import StateStore
from kcluster.core.models import NodeRecord

from .conftest import (
    CLUSTER,
    TABLE,
    AutoScalingWorld,
    eventbridge_event,
    import_handler,
    sqs_event,
    with_world,
)


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


@pytest.fixture
def world(reactor) -> AutoScalingWorld:
    """GIVEN Auto Scaling lists the instances the tests launch, waiting on the launch hook."""
    world = with_world(reactor)
    world.put("i-0123456789abcdef0", f"kcluster-{CLUSTER}-workers", "Pending:Wait")
    world.put("i-0aaaaaaaaaaaaaaaa", f"kcluster-{CLUSTER}-workers", "Pending:Wait")
    return world


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


def test_launch_event_records_the_node(reactor, world, lambda_context):
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
def test_malformed_event_fails_only_itself_and_changes_nothing(reactor, world, lambda_context, caplog, body):
    good = launch_event(f"kcluster-{CLUSTER}-workers", instance_id="i-0aaaaaaaaaaaaaaaa")
    event = sqs_event(body, good)
    bad_id = event["Records"][0]["messageId"]
    response = reactor.lambda_handler(event, lambda_context)
    assert response == {"batchItemFailures": [{"itemIdentifier": bad_id}]}
    assert set(stored_nodes()) == {"i-0aaaaaaaaaaaaaaaa"}
    errors = [r for r in log_records(caplog) if r["level"] == "ERROR"]
    assert any(r["message"] == "event refused" and r["reason"] for r in errors)


def test_same_event_twice_gives_the_same_state(reactor, world, lambda_context):
    event = launch_event(f"kcluster-{CLUSTER}-control-plane")
    reactor.lambda_handler(sqs_event(event), lambda_context)
    once = stored_nodes()
    reactor.lambda_handler(sqs_event(event, event), lambda_context)
    assert stored_nodes() == once


def test_logs_carry_the_instance_id_as_correlation_id(reactor, world, lambda_context):
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


def provisioned_event(instance_id: str, role: str = "control-plane", cluster: str = CLUSTER) -> dict:
    return eventbridge_event(
        "Node Provisioned", "kcluster.node", {"cluster": cluster, "instance-id": instance_id, "role": role}
    )


def terminate_event(asg: str, instance_id: str) -> dict:
    event = launch_event(asg, instance_id)
    event["detail-type"] = "EC2 Instance-terminate Lifecycle Action"
    event["detail"]["LifecycleTransition"] = "autoscaling:EC2_INSTANCE_TERMINATING"
    event["detail"]["LifecycleHookName"] = "kcluster-terminate"
    return event


def test_a_batch_of_forged_node_provisioned_events_creates_nothing_in_bounded_calls(
    reactor, world, lambda_context, caplog
):
    # GIVEN 60 Node Provisioned events, one per instance Auto Scaling has never heard of
    forged = [provisioned_event(f"i-{n:017x}") for n in range(60)]
    # WHEN the reactor handles them as one batch
    response = reactor.lambda_handler(sqs_event(*forged), lambda_context)
    # THEN nothing is recorded, nothing is retried, and Auto Scaling was asked twice (50 ids a call)
    assert response == {"batchItemFailures": []}
    assert stored_nodes() == {}
    assert [len(ids) for ids in world.describe_calls] == [50, 10]
    dropped = [r for r in log_records(caplog) if r["message"].startswith("event not believed")]
    assert len(dropped) == 60 and "lists no such instance" in dropped[0]["reason"]


def test_node_provisioned_takes_its_role_from_the_group(reactor, world, lambda_context):
    # GIVEN a worker of the cluster claims to be a control plane
    reactor.lambda_handler(
        sqs_event(provisioned_event("i-0123456789abcdef0", "control-plane")), lambda_context
    )
    # THEN its record says what its group says
    assert stored_nodes()["i-0123456789abcdef0"].role == "worker"


def test_forged_terminate_of_a_joined_worker_drains_nothing(reactor, world, lambda_context):
    # GIVEN a joined worker that Auto Scaling keeps InService
    iid = "i-0123456789abcdef0"
    StateStore(TABLE, CLUSTER).write(
        (NodeRecord(iid, "worker", f"kcluster-{CLUSTER}-workers", phase="joined", version=1),)
    )
    world.put(iid, f"kcluster-{CLUSTER}-workers", "InService")
    # WHEN a terminate-shaped message for it arrives on the queue
    response = reactor.lambda_handler(
        sqs_event(terminate_event(f"kcluster-{CLUSTER}-workers", iid)), lambda_context
    )
    # THEN it is dropped: the worker stays joined
    assert response == {"batchItemFailures": []}
    assert stored_nodes()[iid].phase == "joined"


class _DeniedCancels:
    """The SSM client, except CancelCommand is denied (as the old ssm:resourceTag-conditioned grant was)."""

    def __init__(self, client) -> None:
        self._client = client
        self.cancels = 0

    def cancel_command(self, **kwargs):
        self.cancels += 1
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "denied"}}, "CancelCommand")

    def __getattr__(self, name: str):
        return getattr(self._client, name)


def test_a_denied_cancel_blocks_neither_leaving_nor_the_batch(reactor, world, lambda_context, caplog):
    # GIVEN a control plane whose join is in flight, and Auto Scaling terminating it
    iid = "i-0123456789abcdef0"
    cp = f"kcluster-{CLUSTER}-control-plane"
    StateStore(TABLE, CLUSTER).write(
        (NodeRecord(iid, "control-plane", cp, phase="joining", command_id="c" * 36, version=1),)
    )
    world.put(iid, cp, "Terminating:Wait")
    ssm = _DeniedCancels(reactor.clients.ssm)
    reactor.clients.ssm = ssm
    # WHEN its terminate event arrives and CancelCommand is denied
    response = reactor.lambda_handler(sqs_event(terminate_event(cp, iid)), lambda_context)
    # THEN the node leaves all the same (the only control plane: no helper, so it is let go and its
    # terminate action completed), and the failed cancel is a warning
    assert response == {"batchItemFailures": []}
    assert ssm.cancels == 1
    assert stored_nodes()[iid].phase == "gone"
    assert [(c["AutoScalingGroupName"], c["LifecycleActionResult"]) for c in world.completed] == [
        (cp, "CONTINUE")
    ]
    warnings = [r for r in log_records(caplog) if r["level"] == "WARNING"]
    assert any(
        r["message"].startswith("could not cancel") and r["error"] == "AccessDeniedException"
        for r in warnings
    )


def test_command_status_of_another_clusters_document_is_ignored(reactor, world, lambda_context, caplog):
    # GIVEN cluster "demo-x", whose document names start with "kcluster-demo-"
    event = eventbridge_event(
        "EC2 Command Invocation Status-change Notification",
        "aws.ssm",
        {
            "command-id": "c" * 36,
            "document-name": f"kcluster-{CLUSTER}-x-init",
            "instance-id": "i-0123456789abcdef0",
            "status": "Success",
        },
    )
    response = reactor.lambda_handler(sqs_event(event), lambda_context)
    assert response == {"batchItemFailures": []}
    warnings = [r for r in log_records(caplog) if r["level"] == "WARNING"]
    assert any("another cluster" in r["message"] and "kcluster-demo-x-init" in r["reason"] for r in warnings)
