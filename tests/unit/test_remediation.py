"""Remediation core: which broken node is replaced, and every guard rail that says "not now"."""

from __future__ import annotations

from dataclasses import replace

from kcluster.core import remediation
from kcluster.core.models import (
    AlarmChanged,
    AsgInstance,
    HealthSnapshot,
    Metric,
    NodeHealth,
    Notify,
    ReplaceInstance,
)
from kcluster.core.remediation import EVENT_SETTLE_SECONDS, AlarmRead, RemediationSettings

from .conftest import CP_ASG, WORKER_ASG
from .test_scale_in import joined_cluster

NOT_READY_ALARM = "kcluster-demo-remediate-nodes-not-ready"
SETTINGS = RemediationSettings(
    grace_seconds=300, cooldown_seconds=600, max_unhealthy_percent=40, max_per_hour=3
)


def cluster_of(harness, control_planes: int = 3, workers: int = 5) -> tuple[list[str], list[str]]:
    """GIVEN a joined cluster, node names as the model gives them (ip-<instance id>)."""
    ids = joined_cluster(harness, control_planes=control_planes, workers=workers)
    return ids[:control_planes], ids[control_planes:]


def in_service(harness) -> list[AsgInstance]:
    return [
        AsgInstance(n.instance_id, CP_ASG if n.is_control_plane else WORKER_ASG, "InService")
        for n in harness.view.nodes.values()
        if n.phase not in ("gone",)
    ]


def observe(harness, not_ready: dict[str, float], *, etcd=(3, 3), unhealthy_members=()) -> None:
    """GIVEN the health probe saw these Nodes NotReady (instance id -> since)."""
    nodes = harness.view.nodes
    snapshot = HealthSnapshot(
        taken_at=harness.now,
        api_ready=True,
        ready_nodes=len(nodes) - len(not_ready),
        not_ready_nodes=len(not_ready),
        not_ready=tuple(
            NodeHealth(iid, f"ip-{iid}", nodes[iid].is_control_plane, False, since)
            for iid, since in not_ready.items()
        ),
        etcd_reachable=True,
        etcd_members=etcd[0],
        etcd_healthy=etcd[1],
        etcd_unhealthy=tuple(unhealthy_members),
        version=(harness.view.health.version if harness.view.health else 0) + 1,
    )
    harness.view = harness.view.with_records([snapshot])


def store(harness, record) -> None:
    """GIVEN this record is what the table holds (as another decider left it)."""
    harness.view = harness.view.with_records([record])


def alarm(harness, state: str = "ALARM", name: str = NOT_READY_ALARM) -> None:
    previous = "OK" if state == "ALARM" else "ALARM"
    harness.apply(remediation.on_alarm(harness.view, AlarmChanged(name, state, previous), harness.now))


def decide(harness, unhealthy_targets=(), settings=SETTINGS):
    plan = remediation.next_step(harness.view, in_service(harness), unhealthy_targets, settings, harness.now)
    actions = harness.apply(plan)
    metrics = [m for batch in plan.batches for m in batch.metrics if isinstance(m, Metric)]
    return actions, metrics


def replaced(actions) -> list[str]:
    return [a.instance_id for a in actions if isinstance(a, ReplaceInstance)]


def suppressed(metrics) -> list[str]:
    return [dict(m.dimensions)["Reason"] for m in metrics if m.name == "RemediationsSuppressed"]


def test_a_node_notready_past_the_grace_period_is_replaced_and_only_one(harness):
    _, workers = cluster_of(harness)
    observe(harness, {workers[0]: harness.now - 400, workers[1]: harness.now - 100})
    alarm(harness)
    actions, metrics = decide(harness)
    # the one past its grace period, through SetInstanceHealth; its record keeps it joined (it is drained)
    assert replaced(actions) == [workers[0]]
    assert [m.name for m in metrics] == ["Remediations"]
    assert harness.view.remediation_state.remediating == workers[0]
    assert harness.phase(workers[0]) == "joined"


def test_nothing_without_a_standing_alarm_and_an_ok_stops_what_is_pending(harness):
    _, workers = cluster_of(harness)
    observe(harness, {workers[0]: harness.now - 400})
    assert decide(harness) == ([], [])
    alarm(harness)
    alarm(harness, "OK")
    assert harness.view.remediation_state.alarms_in_alarm == ()
    assert decide(harness) == ([], [])


def test_one_in_flight_then_a_cooldown_then_the_next(harness):
    _, workers = cluster_of(harness)
    observe(harness, {workers[0]: harness.now - 900, workers[1]: harness.now - 800})
    alarm(harness)
    assert replaced(decide(harness)[0]) == [workers[0]]
    harness.now += 60
    actions, metrics = decide(harness)
    assert replaced(actions) == [] and suppressed(metrics) == ["in-flight"]
    # the first instance is gone and everything left has joined: the remediation is over ...
    store(harness, replace(harness.view.nodes[workers[0]], phase="gone"))
    observe(harness, {workers[1]: harness.now - 860})
    actions, metrics = decide(harness)
    assert harness.view.remediation_state.remediating is None and replaced(actions) == []
    actions, metrics = decide(harness)
    assert suppressed(metrics) == ["cooldown"]
    # ... and once the cooldown has passed, the next broken node goes
    harness.now += SETTINGS.cooldown_seconds
    assert replaced(decide(harness)[0]) == [workers[1]]


def test_too_many_unhealthy_at_once_short_circuits_and_tells_people_once(harness):
    _, workers = cluster_of(harness)
    observe(harness, {iid: harness.now - 600 for iid in workers[:3]})  # 3 of 5 workers: 60% > 40%
    alarm(harness)
    actions, metrics = decide(harness)
    assert replaced(actions) == [] and suppressed(metrics) == ["short-circuit"]
    (notify,) = [a for a in actions if isinstance(a, Notify)]
    assert "60% of the worker nodes" in notify.message and "nothing is replaced" in notify.message
    harness.now += 60
    actions, metrics = decide(harness)
    assert suppressed(metrics) == ["short-circuit"] and not [a for a in actions if isinstance(a, Notify)]
    # a new episode (the alarm cleared, then raised again) is told again
    alarm(harness, "OK")
    alarm(harness)
    assert [a for a in decide(harness)[0] if isinstance(a, Notify)]


def test_the_error_budget_stops_remediation_and_tells_people(harness):
    _, workers = cluster_of(harness)
    store(
        harness,
        replace(
            harness.view.remediation_state,
            remediations=(harness.now - 3000, harness.now - 2000, harness.now - 1000),
        ),
    )
    observe(harness, {workers[0]: harness.now - 600})
    alarm(harness)
    actions, metrics = decide(harness)
    assert replaced(actions) == [] and suppressed(metrics) == ["error-budget"]
    assert any("error budget" in a.message for a in actions if isinstance(a, Notify))
    harness.now += 1000  # the oldest of the three falls out of the hour
    assert replaced(decide(harness)[0]) == [workers[0]]


def test_a_control_plane_whose_loss_would_break_quorum_is_not_replaced(harness):
    control_planes, _ = cluster_of(harness, control_planes=3, workers=1)
    # GIVEN another member is already unhealthy: 2 healthy of 3
    observe(harness, {}, etcd=(3, 2), unhealthy_members=(f"ip-{control_planes[2]}",))
    alarm(harness, name="kcluster-demo-remediate-api-servers-unhealthy")
    actions, metrics = decide(harness, unhealthy_targets=(control_planes[1],))
    assert replaced(actions) == [] and suppressed(metrics) == ["quorum"]
    (notify,) = [a for a in actions if isinstance(a, Notify)]
    assert "below the quorum of 2" in notify.message
    # WHEN every member is healthy, the broken API server's control plane may go (2 of 2 remain)
    observe(harness, {}, etcd=(3, 3))
    assert replaced(decide(harness, unhealthy_targets=(control_planes[1],))[0]) == [control_planes[1]]


def test_a_control_plane_is_not_replaced_during_a_control_plane_join(harness):
    control_planes, _ = cluster_of(harness, control_planes=3, workers=1)
    store(harness, replace(harness.view.cluster, lease_owner="i-000000ff"))
    observe(harness, {})
    alarm(harness, name="kcluster-demo-remediate-api-servers-unhealthy")
    actions, metrics = decide(harness, unhealthy_targets=(control_planes[0],))
    assert replaced(actions) == [] and suppressed(metrics) == ["control-plane-busy"]
    assert not [a for a in actions if isinstance(a, Notify)]  # it will pass by itself: no page


def test_nodes_already_leaving_or_not_in_service_are_never_candidates(harness):
    _, workers = cluster_of(harness)
    store(harness, replace(harness.view.nodes[workers[0]], phase="leaving"))
    observe(harness, {workers[0]: harness.now - 900})
    alarm(harness)
    assert decide(harness) == ([], [])


# --- the reconciler re-reads the alarms' states ---------------------------------------------------

API_ALARM = "kcluster-demo-remediate-api-servers-unhealthy"
OURS = frozenset({NOT_READY_ALARM, API_ALARM})


def read_as(harness, age: float, **states: str) -> dict[str, AlarmRead]:
    """DescribeAlarms' answer: each alarm (by key) in its state since `age` seconds ago."""
    names = {"not_ready": NOT_READY_ALARM, "api": API_ALARM}
    return {names[key]: AlarmRead(state, harness.now - age) for key, state in states.items()}


def test_an_alarm_whose_event_was_never_acted_on_counts_once_read(harness):
    # GIVEN a NotReady worker and its alarm in ALARM, but the remediator failed on the state change
    _, workers = cluster_of(harness)
    harness.now += 1000
    observe(harness, {workers[0]: harness.now - 600})
    actions, _ = decide(harness)
    assert replaced(actions) == []  # nothing stands as far as the stored state knows
    # WHEN the reconciler reads the alarm in ALARM for longer than the remediator's retries take
    read = read_as(harness, EVENT_SETTLE_SECONDS, not_ready="ALARM", api="OK")
    harness.apply(remediation.alarms_as_read(harness.view, read, OURS, harness.now))
    # THEN it stands, and the next step replaces the worker
    assert harness.view.remediation_state.alarms_in_alarm == (NOT_READY_ALARM,)
    actions, _ = decide(harness)
    assert replaced(actions) == [workers[0]]


def test_a_fresh_alarm_state_is_left_to_its_event(harness):
    # GIVEN alarms that changed state moments ago (the remediator is being told of it)
    cluster_of(harness)
    read = read_as(harness, 5.0, not_ready="ALARM", api="OK")
    # WHEN the reconciler reads them THEN it changes nothing: the event, not the read, raises the alarm
    assert remediation.alarms_as_read(harness.view, read, OURS, harness.now).batches == ()
    # AND a standing alarm that went OK moments ago is not cleared by the read either
    alarm(harness)
    read = read_as(harness, 5.0, not_ready="OK", api="OK")
    assert remediation.alarms_as_read(harness.view, read, OURS, harness.now).batches == ()


def test_a_read_that_agrees_changes_nothing_and_a_cleared_alarm_stops_standing(harness):
    cluster_of(harness)
    alarm(harness)
    read = read_as(harness, 600.0, not_ready="ALARM", api="OK")
    assert remediation.alarms_as_read(harness.view, read, OURS, harness.now).batches == ()
    read = read_as(harness, 600.0, not_ready="INSUFFICIENT_DATA", api="OK")
    harness.apply(remediation.alarms_as_read(harness.view, read, OURS, harness.now))
    assert harness.view.remediation_state.alarms_in_alarm == ()


def test_an_alarm_that_does_not_exist_stands_for_nothing(harness):
    # GIVEN the stored state says the API alarm stands, but the stack has no such alarm (no target group)
    cluster_of(harness)
    alarm(harness, name=API_ALARM)
    # WHEN the read finds only the NotReady alarm THEN the API alarm stops standing
    read = read_as(harness, 600.0, not_ready="OK")
    harness.apply(remediation.alarms_as_read(harness.view, read, OURS, harness.now))
    assert harness.view.remediation_state.alarms_in_alarm == ()


# --- the API-servers-unhealthy alarm's metric ----------------------------------------------------


def test_the_first_control_plane_failing_its_checks_during_init_is_no_unhealthy_api_server(harness):
    # GIVEN the first control plane registered with the target group and running kubeadm init
    harness.launch("i-00000001", "control-plane")
    (init,) = harness.sends(harness.dispatch())
    harness.send(init)
    assert harness.phase("i-00000001") != "joined"
    # WHEN the load balancer finds it unhealthy (its API server does not listen yet)
    # THEN the alarm's metric counts no failing API server
    assert remediation.failing_api_servers(harness.view, ("i-00000001",)) == Metric("UnhealthyApiServers", 0)


def test_joined_control_planes_failing_their_checks_are_counted(harness):
    control_planes, workers = cluster_of(harness, control_planes=3, workers=1)
    unhealthy = (control_planes[1], control_planes[2], workers[0], "i-0unknown")
    # only joined control planes count: a worker is no API server, an instance without a record no node
    assert remediation.failing_api_servers(harness.view, unhealthy) == Metric("UnhealthyApiServers", 2)
