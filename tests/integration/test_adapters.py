"""Adapters against moto (DynamoDB) and botocore's Stubber (errors moto does not produce)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from kcluster.adapters.autoscaling import Lifecycle
from kcluster.adapters.commands import Commands, SendRefused, parse_result_line
from kcluster.adapters.state_store import StateStore, WriteConflict
from kcluster.core.models import BackupState, ClusterState, CommandRecord, NodeRecord, bump
from kcluster.core.rollout_model import GroupTarget, RolloutState, Target
from kcluster.core.version_skew import KubeVersion

from .conftest import CLUSTER, TABLE

TOKEN = "87654321-4321-4321-4321-210987654321"


@pytest.fixture
def store(state_table) -> StateStore:
    return StateStore(TABLE, CLUSTER)


def test_records_round_trip(store):
    cluster = bump(
        ClusterState(CLUSTER), phase="initializing", epoch=1, init_owner="i-00000001", init_claimed_at=12.5
    )
    node = bump(
        NodeRecord("i-00000001", "control-plane", created_at=10.0), 11.0, provisioned=True, attempts=2
    )
    command = bump(CommandRecord("c" * 36, "init", ("i-00000001",), ("i-00000001",), sent_at=12.0))
    store.write((cluster, node, command))
    view = store.load()
    assert view.cluster == cluster
    assert view.nodes == {"i-00000001": node}
    assert view.commands == {"c" * 36: command}


def test_the_backup_record_round_trips_on_its_own_item(store):
    taking = BackupState(CLUSTER).taking("20260101T000000Z", "daily", "schedule", "i-00000001", 100.0)
    store.write((taking,))
    store.write((store.load().backup.command_recorded("c" * 36),))
    good = store.load().backup.succeeded("daily/20260101T000000Z/", 4096, 17)
    store.write((good,))
    view = store.load()
    assert view.backup == good and view.cluster == ClusterState(CLUSTER)  # the cluster item is untouched
    with pytest.raises(WriteConflict):
        store.write((taking.command_recorded("d" * 36),))  # decided on an older version


def test_the_rollout_record_round_trips_on_its_own_item_and_stays_out_of_the_view(store):
    # GIVEN a rollout toward a new worker launch template version, refused once, then following a refresh
    target = Target(KubeVersion.parse("1.37.2"), (GroupTarget("kcluster-demo-workers", "worker", 4),))
    begun = RolloutState(CLUSTER).begin(target, 100.0)
    store.write_rollout(begun, None)
    store.load()
    refused = store.loaded_rollout.refused(("health-stale", "etcd"), 160.0)
    store.write_rollout(refused, begun)
    # one decision may move the record twice: the condition is on the version it was loaded at
    following = refused.started("workers", KubeVersion.parse("1.37.2"), False, 220.0).refresh_requested(
        "kcluster-demo-workers", 220.0
    )
    store.write_rollout(following, refused)
    # THEN it reads back as written, tuples and all, on the cluster's query, beside the view
    view = store.load()
    assert store.loaded_rollout == following
    assert view.nodes == {} and view.cluster == ClusterState(CLUSTER)
    # AND a decision on an older version loses
    with pytest.raises(WriteConflict):
        store.write_rollout(refused.moved(230.0, refusals=()), refused)
    with pytest.raises(WriteConflict):
        store.write_rollout(begun, None)  # a second first rollout record


def test_no_rollout_record_reads_as_none(store):
    store.load()
    assert store.loaded_rollout is None


def test_first_writer_wins_the_init_claim(store):
    # GIVEN two deciders that both saw an unclaimed cluster
    base = ClusterState(CLUSTER)
    claim_a = bump(base, phase="initializing", init_owner="i-0000000a")
    claim_b = bump(base, phase="initializing", init_owner="i-0000000b")
    store.write((claim_a,))
    # WHEN the second writes its claim THEN it conflicts and the first claim stands
    with pytest.raises(WriteConflict):
        store.write((claim_b,))
    assert store.load().cluster.init_owner == "i-0000000a"


def test_a_step_is_all_or_nothing(store):
    node = bump(NodeRecord("i-00000001", "worker"), 1.0)
    store.write((node,))
    stale_node = bump(NodeRecord("i-00000001", "worker"), 2.0, phase="waiting")  # based on version 0 again
    new_node = bump(NodeRecord("i-00000002", "worker"), 2.0)
    with pytest.raises(WriteConflict):
        store.write((new_node, stale_node))
    assert set(store.load().nodes) == {"i-00000001"}


def test_a_step_may_not_write_a_record_twice(store):
    node = bump(NodeRecord("i-00000001", "worker"), 1.0)
    with pytest.raises(ValueError, match="twice"):
        store.write((node, bump(node, 2.0)))


def test_send_refused_for_unregistered_agent(aws):
    client = boto3.client("ssm")
    with Stubber(client) as stub:
        stub.add_client_error(
            "send_command", "InvalidInstanceId", "Instances [[i-00000001]] not in a valid state"
        )
        with pytest.raises(SendRefused) as refused:
            Commands(client).send("kcluster-demo-init", ("i-00000001",), {"ClusterName": "demo"}, 900, "c")
    assert refused.value.code == "InvalidInstanceId"


def test_send_passes_parameters_as_lists(aws):
    client = boto3.client("ssm")
    with Stubber(client) as stub:
        stub.add_response(
            "send_command",
            {"Command": {"CommandId": "d" * 36}},
            {
                "DocumentName": "kcluster-demo-join-worker",
                "InstanceIds": ["i-00000001", "i-00000002"],
                "Parameters": {"ClusterName": ["demo"]},
                "TimeoutSeconds": 600,
                "Comment": "join",
            },
        )
        command_id = Commands(client).send(
            "kcluster-demo-join-worker", ("i-00000001", "i-00000002"), {"ClusterName": "demo"}, 600, "join"
        )
    assert command_id == "d" * 36


def test_send_refuses_more_than_fifty_instances(aws):
    with pytest.raises(ValueError, match=r"1\.\.50"):
        Commands(boto3.client("ssm")).send("d", tuple(f"i-{n:08x}" for n in range(51)), {}, 60, "c")


def test_invocation_not_visible_yet_is_none(aws):
    client = boto3.client("ssm")
    with Stubber(client) as stub:
        stub.add_client_error("get_command_invocation", "InvocationDoesNotExist", "")
        assert Commands(client).invocation("e" * 36, "i-00000001") is None


def test_invocation_result_is_the_last_json_line(aws):
    client = boto3.client("ssm")
    with Stubber(client) as stub:
        stub.add_response(
            "get_command_invocation",
            {
                "Status": "Success",
                "StandardOutputContent": 'noise\n{"ok": true, "step": "join-worker", "node_name": "ip-10-0-1-5"}',
            },
        )
        result = Commands(client).invocation("e" * 36, "i-00000001")
    assert result.status == "Success"
    assert result.result == {"ok": True, "step": "join-worker", "node_name": "ip-10-0-1-5"}


@pytest.mark.parametrize("stdout", ["", "plain text", '{"ok": true}\ntrailing text', "[1, 2]"])
def test_no_result_line(stdout):
    assert parse_result_line(stdout) is None


def test_complete_without_token_uses_instance_id_and_reports_nothing_pending(aws):
    client = boto3.client("autoscaling")
    with Stubber(client) as stub:
        stub.add_client_error(
            "complete_lifecycle_action",
            "ValidationError",
            "No active Lifecycle Action found with instance ID i-00000001",
            expected_params={
                "AutoScalingGroupName": "g",
                "LifecycleHookName": "h",
                "InstanceId": "i-00000001",
                "LifecycleActionResult": "CONTINUE",
            },
        )
        assert Lifecycle(client).complete("g", "h", "i-00000001", None, "CONTINUE") is False


def test_heartbeat_with_token(aws):
    client = boto3.client("autoscaling")
    with Stubber(client) as stub:
        stub.add_response(
            "record_lifecycle_action_heartbeat",
            {},
            {"AutoScalingGroupName": "g", "LifecycleHookName": "h", "LifecycleActionToken": TOKEN},
        )
        assert Lifecycle(client).heartbeat("g", "h", "i-00000001", TOKEN) is True


def test_sent_since_asks_for_the_document_on_the_instance_after_a_time(aws):
    client = boto3.client("ssm")
    with Stubber(client) as stub:
        stub.add_response(
            "list_commands",
            {
                "Commands": [
                    {
                        "CommandId": "c" * 36,
                        "InstanceIds": ["i-00000001"],
                        "Parameters": {"ClusterName": ["demo"], "InstanceId": ["i-00000009"]},
                    }
                ]
            },
            {
                "InstanceId": "i-00000001",
                "Filters": [
                    {"key": "DocumentName", "value": "kcluster-demo-drain-remove"},
                    {"key": "InvokedAfter", "value": "2026-01-01T00:00:00Z"},
                ],
            },
        )
        (found,) = Commands(client).sent_since("kcluster-demo-drain-remove", "i-00000001", 1767225600.5)
    assert (found.command_id, found.instance_ids) == ("c" * 36, ("i-00000001",))
    assert found.parameters == {"ClusterName": "demo", "InstanceId": "i-00000009"}


def test_mark_unhealthy_skips_the_grace_period_and_reports_a_gone_instance(aws):
    client = boto3.client("autoscaling")
    with Stubber(client) as stub:
        expected = {
            "InstanceId": "i-00000001",
            "HealthStatus": "Unhealthy",
            "ShouldRespectGracePeriod": False,
        }
        stub.add_response("set_instance_health", {}, expected)
        stub.add_client_error("set_instance_health", "ValidationError", "not found", expected_params=expected)
        assert Lifecycle(client).mark_unhealthy("i-00000001") is True
        assert Lifecycle(client).mark_unhealthy("i-00000001") is False


def test_a_refused_cancel_is_reported_not_raised(aws):
    # CancelCommand has no resource types and no condition keys in the Service Authorization Reference:
    # a denied cancel must not stop the lifecycle action from being completed after it.
    client = boto3.client("ssm")
    with Stubber(client) as stub:
        stub.add_client_error("cancel_command", service_error_code="AccessDeniedException")
        stub.add_client_error("cancel_command", service_error_code="InvalidCommandId")
        commands = Commands(client)
        assert commands.cancel("c" * 36, "i-00000001") == "AccessDeniedException"
        assert commands.cancel("c" * 36, "i-00000001") is None  # already finished: nothing to cancel


def test_describe_asks_auto_scaling_fifty_instances_at_a_time(aws):
    client = boto3.client("autoscaling")
    ids = [f"i-{n:017x}" for n in range(120)]
    with Stubber(client) as stub:
        for chunk in (ids[:50], ids[50:100], ids[100:]):
            listed = [
                {
                    "InstanceId": chunk[0],
                    "InstanceType": "t4g.small",
                    "AutoScalingGroupName": f"kcluster-{CLUSTER}-workers",
                    "AvailabilityZone": "us-east-1a",
                    "LifecycleState": "Pending:Wait",
                    "HealthStatus": "HEALTHY",
                    "ProtectedFromScaleIn": False,
                }
            ]
            stub.add_response(
                "describe_auto_scaling_instances",
                {"AutoScalingInstances": listed},
                {"InstanceIds": chunk, "MaxRecords": 50},
            )
        found = Lifecycle(client).describe(ids + ids[:10])  # repeats are asked once
        stub.assert_no_pending_responses()
    assert sorted(found) == sorted([ids[0], ids[50], ids[100]])
    assert found[ids[50]].lifecycle_state == "Pending:Wait"
