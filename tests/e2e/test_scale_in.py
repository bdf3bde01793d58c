"""End to end on the local twin: scale-in drains, deletes the Node, removes the etcd member, then lets EC2 go."""

from __future__ import annotations

import json

import pytest

from kcluster import contract
from twin import scenarios
from twin.report import build_report
from twin.world import Twin

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def failed_invariants(report: dict) -> dict:
    return {name: inv["detail"] for name, inv in report["invariants"].items() if not inv["ok"]}


def log_lines(twin: Twin) -> list[dict]:
    """The functions' Powertools log lines (EMF metric documents are JSON lines too: left out)."""
    lines = [json.loads(line) for line in twin.recorder.log_lines if line.startswith("{")]
    return [line for line in lines if "level" in line]


@pytest.fixture
def twin():
    world = Twin(seed=21)
    yield world
    world.close()


def test_scale_in_scenario_leaves_the_cluster_whole():
    result = scenarios.run("scale-in", control_planes=3, workers=5, seed=7)
    try:
        report = result.report
        assert failed_invariants(report) == {}
        assert report["counters"]["drains"] == 4  # 3 workers and 1 control plane
        assert report["counters"]["nodes_deleted"] == 4
        assert report["counters"]["etcd_members_removed"] == 1
        live = {n["instance_id"] for n in report["nodes"]}
        members = {m.instance_id for m in result.twin.model.etcd_members()}
        assert len(report["etcd_members"]) == 3 and members <= live
        assert sum(1 for n in report["nodes"] if n["role"] == "worker") == 2
        # every terminate action was completed by kcluster, none left to time out
        terminations = [o for o in result.twin.lifecycle.outcomes if o.transition.endswith("TERMINATING")]
        assert len(terminations) == 4 and all(o.how == "completed" for o in terminations)
    finally:
        result.twin.close()


def test_a_drain_blocked_by_a_pod_disruption_budget_is_reported_and_the_node_still_removed(twin):
    scenarios.scale_out(twin, 1, 2)
    for node in twin.model.nodes():
        if not node.control_plane:
            twin.model.add_pod(node.name, f"db-{node.name}", pdb="db")
    twin.model.set_pdb("db", 2)  # no eviction allowed
    twin.set_desired(contract.ROLE_WORKER, 1)
    assert twin.run_until_settled()
    report = build_report(twin)
    assert report["counters"]["nodes_deleted"] == 1
    assert failed_invariants(report) == {}
    errors = [line for line in log_lines(twin) if line["level"] == "ERROR"]
    assert any("drain timed out" in line["message"] for line in errors)
    assert any(e.operation == "node-drain-timed-out" for e in twin.model.history)
    assert any("DrainTimeouts" in document for document in twin.functions.metrics)  # EMF, for the alarm


def test_control_plane_removal_refused_at_quorum_risk_is_held_then_let_go_with_an_alert(twin):
    scenarios.scale_out(twin, 3, 0)
    _first, second, third = (i["instance_id"] for i in twin.instances())
    # GIVEN one member already down (its instance still InService to EC2)
    twin.model.remove_host(second)
    # WHEN another control plane is terminated by hand
    twin.terminate(third, decrement=True)
    assert twin.run_until_settled(limit_seconds=4 * 3600)
    # THEN its member was never removed while that would lose quorum ...
    assert not [e for e in twin.model.history if e.operation == "etcd-member-removed"]
    refusals = [line for line in log_lines(twin) if "quorum at risk" in line["message"]]
    assert refusals and all(line["level"] == "ERROR" for line in refusals)
    # ... the instance was held (heartbeats kept the hook alive past its 900 s timeout), then let go
    (outcome,) = [
        o for o in twin.lifecycle.outcomes if o.instance_id == third and "TERMINATING" in o.transition
    ]
    assert outcome.how == "completed" and outcome.result == "CONTINUE"
    config_wait = 1800
    assert outcome.at - twin.start_time > config_wait
    assert third not in {i["instance_id"] for i in twin.instances()}


def test_hand_termination_during_launch_cancels_the_launch_cleanly(twin):
    twin.set_desired(contract.ROLE_CONTROL_PLANE, 1)
    twin.set_desired(contract.ROLE_WORKER, 1)
    # run until the worker is launching, then terminate it before it could join
    twin.scheduler.run_until(lambda: any(i["role"] == "worker" for i in twin.instances()), 600)
    (worker,) = [i["instance_id"] for i in twin.instances() if i["role"] == "worker"]
    twin.terminate(worker, decrement=True)
    assert twin.run_until_settled()
    report = build_report(twin)
    assert failed_invariants(report) == {}
    assert report["counters"]["worker_joins"] == 0
    items = [json.dumps(item) for item in twin.state_items()]
    cluster = next(json.loads(i) for i in items if '"CLUSTER"' in i)
    assert "lease_owner" not in cluster  # no lease or claim left behind
