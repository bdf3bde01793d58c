"""The health probe core: when a probe is sent, what its answer becomes (snapshot and metrics)."""

from __future__ import annotations

from kcluster import contract
from kcluster.core import health, workflow
from kcluster.core.models import HealthReported, Metric, SendCommand

from .test_launch_workflow import start_cluster


def probe_result(**overrides) -> dict:
    """A `health` result line as terraform/documents/health.sh prints it."""
    result = {
        "ok": True,
        "step": "health",
        "changed": False,
        "api_ready": True,
        "nodes": [
            {
                "name": "cp-a",
                "instance_id": "i-0000000a",
                "control_plane": True,
                "ready": True,
                "ready_since": 0,
            },
            {
                "name": "w-b",
                "instance_id": "i-0000000b",
                "control_plane": False,
                "ready": False,
                "not_ready_since": 700.0,
            },
        ],
        "nodes_truncated": False,
        "counts": {"ready": 1, "not_ready": 1, "ready_control_planes": 1},
        "etcd": {
            "reachable": True,
            "members": 3,
            "healthy": 2,
            "leader": "cp-a",
            "member_health": [
                {"name": "cp-a", "healthy": True},
                {"name": "cp-c", "healthy": True},
                {"name": "cp-d", "healthy": False},
            ],
        },
        "warnings": [],
    }
    result.update(overrides)
    return result


def sent_probe(harness) -> tuple[SendCommand, str]:
    (probe,) = harness.sends(harness.apply(health.probe(harness.view, harness.config, harness.now)))
    return probe, harness.send(probe)


def test_no_probe_before_the_cluster_is_ready_nor_twice_at_once(config, harness):
    assert health.probe(harness.view, config, harness.now).empty  # nothing to probe yet
    start_cluster(harness)
    probe, command_id = sent_probe(harness)
    assert (probe.document, probe.targets, probe.for_instances) == (contract.DOC_HEALTH, ("i-0000000a",), ())
    assert harness.view.health.probe_command_id == command_id
    assert command_id not in harness.view.commands  # probes leave no command records behind
    cluster_version = harness.view.cluster.version
    assert health.probe(harness.view, config, harness.now + 30).empty
    assert harness.view.cluster.version == cluster_version  # a probe never contends for the cluster record


def test_an_answer_becomes_the_snapshot_and_the_metrics_the_alarms_watch(harness):
    start_cluster(harness)
    _, command_id = sent_probe(harness)
    harness.now = 1_000.0
    plan = workflow.on_event(
        harness.view,
        HealthReported(command_id, "i-0000000a", "Success", probe_result()),
        harness.config,
        harness.now,
    )
    harness.apply(plan)
    snapshot = harness.view.health
    assert (snapshot.ready_nodes, snapshot.not_ready_nodes, snapshot.ready_control_planes) == (1, 1, 1)
    assert [(n.instance_id, n.since) for n in snapshot.not_ready] == [("i-0000000b", 700.0)]
    assert (snapshot.etcd_members, snapshot.etcd_healthy, snapshot.etcd_unhealthy) == (3, 2, ("cp-d",))
    assert snapshot.probe_command_id is None
    metrics = {m.name: m for batch in plan.batches for m in batch.metrics if isinstance(m, Metric)}
    assert metrics["NotReadyNodes"].value == 1 and metrics["ReadyControlPlanes"].value == 1
    assert metrics["EtcdMembersUnhealthy"].value == 1
    per_node = metrics["NodeNotReadySeconds"]
    assert (per_node.value, per_node.unit, per_node.dimensions) == (
        300.0,
        "Seconds",
        (("InstanceId", "i-0000000b"),),
    )
    # the next probe waits for the interval
    assert health.probe(harness.view, harness.config, harness.now + 10).empty
    assert not health.probe(harness.view, harness.config, harness.now + health.PROBE_INTERVAL_SECONDS).empty


def test_a_late_or_duplicate_answer_changes_nothing(harness):
    start_cluster(harness)
    _, command_id = sent_probe(harness)
    report = HealthReported(command_id, "i-0000000a", "Success", probe_result())
    harness.event(report)
    before = harness.view
    assert workflow.on_event(harness.view, report, harness.config, harness.now).empty
    assert harness.view == before


def test_without_the_api_only_etcd_is_reported(harness):
    start_cluster(harness)
    _, command_id = sent_probe(harness)
    result = probe_result(api_ready=False, nodes=None, counts=None)
    plan = workflow.on_event(
        harness.view, HealthReported(command_id, "i-0000000a", "Success", result), harness.config, harness.now
    )
    names = {m.name for batch in plan.batches for m in batch.metrics if isinstance(m, Metric)}
    assert "ApiServerReady" in names and "EtcdMembersHealthy" in names
    assert not names & {"ReadyNodes", "NotReadyNodes", "ReadyControlPlanes"}  # absent, not zero


def test_a_failed_probe_makes_its_control_plane_suspect_and_a_lost_one_is_checked(harness):
    start_cluster(harness)
    _, command_id = sent_probe(harness)
    assert health.probe_to_check(harness.view, harness.now + 10) is None
    later = harness.now + 2 * health.PROBE_TIMEOUT_SECONDS
    assert health.probe_to_check(harness.view, later) == (command_id, "i-0000000a")
    harness.event(HealthReported(command_id, "i-0000000a", "TimedOut", None))
    assert harness.view.cluster.suspect_helpers == ("i-0000000a",)
    assert harness.view.health.probe_command_id is None and harness.view.health.taken_at == 0.0
