"""Rollouts (core/rollout.py, core/preflight.py): drift, the preflight's refusals, the order of the
steps, pause / go / resume, and a failed refresh, on views built by hand (no AWS)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kcluster.config import RolloutSettings
from kcluster.core import rollout
from kcluster.core.models import (
    AsgInstance,
    ClusterState,
    ClusterView,
    HealthSnapshot,
    NodeRecord,
    RemediationState,
)
from kcluster.core.preflight import PreflightInput, preflight
from kcluster.core.rollout import RolloutWorld, advance, on_cluster_step, on_refresh_started
from kcluster.core.rollout_model import (
    CancelRefresh,
    ClusterStep,
    GroupTarget,
    RefreshSeen,
    RolloutState,
    StartRefresh,
    Target,
    drifted,
)
from kcluster.core.version_skew import KubeVersion

from .conftest import CP_ASG, WORKER_ASG

NOW = 10_000.0
DEFAULTS = RolloutSettings()


def node(iid: str, role: str, version: str = "1.37.2", template: int = 1) -> NodeRecord:
    asg = CP_ASG if role == "control-plane" else WORKER_ASG
    return NodeRecord(
        iid,
        role,
        asg,
        phase="joined",
        launch_template_version=template,
        kubernetes_version=version,
        version=3,
    )


def cluster(cps=("1.37.2",) * 3, workers=("1.37.2",) * 5, template: int = 1, **health) -> ClusterView:
    """GIVEN joined control planes and workers at these versions, and a fresh, healthy health report."""
    nodes = [node(f"i-c{i:07d}", "control-plane", v, template) for i, v in enumerate(cps)]
    nodes += [node(f"i-w{i:07d}", "worker", v, template) for i, v in enumerate(workers)]
    snapshot = HealthSnapshot(
        taken_at=NOW - 30,
        api_ready=True,
        ready_nodes=len(nodes),
        ready_control_planes=len(cps),
        etcd_reachable=True,
        etcd_members=len(cps),
        etcd_healthy=len(cps),
        version=1,
    )
    view = ClusterView(
        ClusterState("demo", phase="ready", epoch=1, version=5), health=replace(snapshot, **health)
    )
    return view.with_records(nodes)


def target(version: str = "1.38.0", template: int = 2) -> Target:
    return Target(
        KubeVersion.parse(version),
        (GroupTarget(CP_ASG, "control-plane", template), GroupTarget(WORKER_ASG, "worker", template)),
    )


def world(view, state=None, tgt=None, refreshes=None, now=NOW, backup_fresh=None) -> RolloutWorld:
    return RolloutWorld(view, state, tgt or target(), refreshes or {}, now, backup_fresh)


def reasons(view, tgt=None, **kwargs) -> list[str]:
    return [r.reason for r in preflight(PreflightInput(view, tgt or target(), NOW, **kwargs))]


# --- drift ---------------------------------------------------------------------------------------


def test_drift_is_per_group_by_launch_template_version_and_kubernetes_version():
    view = cluster()
    assert drifted(view, target("1.37.2", template=1)) == {}
    assert set(drifted(view, target("1.37.2", template=2))) == {CP_ASG, WORKER_ASG}  # a new image only
    assert len(drifted(view, target("1.38.0", template=1))[WORKER_ASG]) == 5
    # a group whose template kcluster does not pin is judged by its Kubernetes version alone
    unpinned = Target(KubeVersion(1, 37, 2), (GroupTarget(CP_ASG, "control-plane", None),))
    assert drifted(view, unpinned) == {}


def test_no_drift_no_rollout():
    decision = advance(world(cluster(), tgt=target("1.37.2", template=1)), DEFAULTS)
    assert decision.record is None and not decision.steps


# --- the preflight -------------------------------------------------------------------------------


def test_preflight_passes_on_a_healthy_quiet_cluster_one_minor_up():
    assert reasons(cluster()) == []


def test_a_skipped_minor_is_refused_naming_the_minor_to_take_first_and_people_are_told():
    view = cluster(cps=("1.36.4",) * 3, workers=("1.36.4",) * 5)
    refusals = preflight(PreflightInput(view, target("1.38.0"), NOW))
    assert [r.reason for r in refusals] == ["version-step"]
    assert "1.37 first" in refusals[0].message and refusals[0].person_must_act
    # WHEN the rollout meets it
    pending = advance(world(view), DEFAULTS).record
    decision = advance(world(view, pending), DEFAULTS)
    # THEN it stays pending, logs why and tells people once
    assert decision.record is not None and decision.record.phase == "pending"
    assert decision.record.refusals == ("version-step",)
    assert [n.subject for n in decision.notify] == ["kcluster demo: rollout refused (version-step)"]
    assert "1.37 first" in decision.notify[0].message
    assert any(n.fields.get("reason") == "version-step" for n in decision.notes)
    again = advance(world(view, decision.record, now=NOW + 60), DEFAULTS)
    assert again.record is None and not again.notify and again.notes  # logged again, not told again


def test_preflight_refuses_while_a_control_plane_is_not_ready_or_etcd_is_unhealthy():
    assert reasons(cluster(ready_control_planes=2)) == ["control-plane-not-ready"]
    unhealthy = reasons(cluster(etcd_healthy=2, etcd_unhealthy=("ip-c1",)))
    assert unhealthy == ["etcd-unhealthy"]
    assert reasons(cluster(etcd_members=2, etcd_healthy=2)) == ["etcd-unhealthy"]  # a member missing
    assert reasons(cluster(taken_at=NOW - 600)) == ["stale-health-report"]
    assert reasons(cluster(api_ready=False)) == ["control-plane-not-ready"]


def test_preflight_refuses_while_a_join_removal_or_remediation_is_in_flight():
    view = cluster()
    joining = NodeRecord("i-n0000001", "worker", WORKER_ASG, phase="joining", version=2)
    assert reasons(view.with_records([joining])) == ["membership-change-in-flight"]
    leased = view.with_records([view.cluster.take_lease("i-c0000001", NOW + 600)])
    assert reasons(leased) == ["membership-change-in-flight"]
    remediating = view.with_records([RemediationState("demo", remediating="i-w0000001", version=1)])
    assert reasons(remediating) == ["remediation-in-flight"]


def test_preflight_checks_the_backup_only_where_backups_exist():
    assert reasons(cluster(), backup_fresh=None) == []
    assert reasons(cluster(), backup_fresh=True) == []
    assert reasons(cluster(), backup_fresh=False) == ["no-fresh-backup"]


def test_kubelets_the_target_would_leave_more_than_three_minors_behind_are_refused():
    view = cluster(cps=("1.37.2",) * 3, workers=("1.37.2", "1.34.1"))
    assert reasons(view) == ["kubelet-skew"]
    assert reasons(cluster(workers=("1.35.0",))) == []  # 1.38 apiservers, a 1.35 kubelet: three minors


def test_no_minor_downgrade_but_a_patch_rollback_is_fine():
    assert reasons(cluster(), target("1.36.9")) == ["version-step", "kubelet-skew"]  # 1.37 kubelets too new
    assert reasons(cluster(), target("1.37.1")) == []


# --- the order of the steps ----------------------------------------------------------------------


def run_to(view, state, tgt=None, settings=DEFAULTS, refreshes=None):
    decision = advance(world(view, state, tgt, refreshes), settings)
    return decision, decision.record or state


def test_a_minor_upgrade_prepares_then_control_planes_one_at_a_time_then_addons_then_workers():
    view = cluster()
    decision, state = run_to(view, None)
    assert state.phase == "pending"
    decision, state = run_to(view, state)
    assert (state.phase, state.from_version, state.cluster_step) == ("preparing", "1.37.2", True)
    decision, state = run_to(view, state)
    assert decision.steps == (ClusterStep("prepare", "1.38.0"),)
    assert not run_to(view, state)[0].steps  # sent: not again until overdue
    state = on_cluster_step(state, True, None, NOW, world(view, state)).record
    assert state.phase == "control_planes"
    # control planes: MinHealthy 100 and room for exactly one more of 3: launch before terminate, one at a time
    decision, state = run_to(view, state)
    assert decision.steps == (StartRefresh(CP_ASG, 2, 100, 134, 60),)
    state = on_refresh_started(state, CP_ASG, "r-1", NOW).record
    running = {CP_ASG: RefreshSeen(CP_ASG, "r-1", "InProgress", 33)}
    decision, same = run_to(view, state, refreshes=running)
    assert same is state and decision.metrics[0].value == 33
    # WHEN the refresh succeeded and the control planes run the target
    upgraded = view.with_records([node(f"i-c{i:07d}", "control-plane", "1.38.0", 2) for i in range(3)])
    done = {CP_ASG: RefreshSeen(CP_ASG, "r-1", "Successful", 100)}
    decision, state = run_to(upgraded, state, refreshes=done)
    assert (state.phase, state.refresh_asg) == ("control_planes", None)
    decision, state = run_to(upgraded, state, refreshes=done)
    assert state.phase == "addons"
    decision, state = run_to(upgraded, state)
    assert decision.steps == (ClusterStep("addons", "1.38.0"),)
    state = on_cluster_step(state, True, None, NOW, world(upgraded, state)).record
    assert state.phase == "workers"
    decision, state = run_to(upgraded, state)
    assert decision.steps == (StartRefresh(WORKER_ASG, 2, 90, 120, 60),)  # 5 workers: room for one more
    # WHEN every worker runs the target too
    everything = upgraded.with_records([node(f"i-w{i:07d}", "worker", "1.38.0", 2) for i in range(5)])
    state = on_refresh_started(state, WORKER_ASG, "r-2", NOW).record
    decision, state = run_to(
        everything, state, refreshes={WORKER_ASG: RefreshSeen(WORKER_ASG, "r-2", "Successful")}
    )
    decision, state = run_to(everything, state)
    assert state.phase == "succeeded"
    assert advance(world(everything, state), DEFAULTS).record is None  # nothing more


def test_workers_are_never_started_before_the_control_planes_run_the_target():
    view = cluster()
    state = RolloutState("demo").begin(target(), NOW).started("workers", KubeVersion(1, 37, 2), True, NOW)
    decision = advance(world(view, state), DEFAULTS)
    assert not decision.steps
    assert decision.record is not None and decision.record.refusals == ("skew",)
    assert "newer than the oldest kube-apiserver" in decision.notify[0].message


def test_a_new_image_with_the_same_version_skips_the_cluster_step():
    view = cluster()
    tgt = target("1.37.2", template=2)
    _, state = run_to(view, None, tgt)
    decision, state = run_to(view, state, tgt)
    assert (state.phase, state.cluster_step) == ("control_planes", False)
    decision, state = run_to(view, state, tgt)
    assert isinstance(decision.steps[0], StartRefresh)


def test_a_new_worker_image_alone_goes_straight_to_the_workers():
    view = cluster()
    tgt = Target(
        KubeVersion(1, 37, 2), (GroupTarget(CP_ASG, "control-plane", 1), GroupTarget(WORKER_ASG, "worker", 2))
    )
    _, state = run_to(view, None, tgt)
    _, state = run_to(view, state, tgt)
    assert state.phase == "workers"


def test_a_patch_upgrade_updates_kubeadm_config_before_the_first_new_control_plane():
    _, state = run_to(cluster(), None, target("1.37.3"))
    _, state = run_to(cluster(), state, target("1.37.3"))
    assert (state.phase, state.cluster_step) == ("preparing", True)
    assert rollout.needs_cluster_step(KubeVersion(1, 37, 2), target("1.37.3"))


@pytest.mark.parametrize(("capacity", "expected"), [(1, (100, 200)), (3, (100, 134)), (5, (100, 120))])
def test_control_planes_surge_by_exactly_one(capacity, expected):
    assert (
        rollout.refresh_preferences(GroupTarget(CP_ASG, "control-plane", 2), capacity, DEFAULTS) == expected
    )


def test_worker_preferences_keep_the_minimum_and_the_documented_range():
    group = GroupTarget(WORKER_ASG, "worker", 2)
    assert rollout.refresh_preferences(group, 50, DEFAULTS) == (90, 110)
    assert rollout.refresh_preferences(group, 2, RolloutSettings(min_healthy_percent=50)) == (50, 150)
    # MaxHealthyPercentage - MinHealthyPercentage may not exceed 100 (AWS)
    assert rollout.refresh_preferences(group, 1, RolloutSettings(min_healthy_percent=0)) == (0, 100)


# --- pause, go, failure, a new target ------------------------------------------------------------


def test_wait_for_go_holds_until_the_go_names_the_target():
    view = cluster()
    settings = RolloutSettings(wait_for_go=True)
    _, state = run_to(view, None, settings=settings)
    decision, state = run_to(view, state, settings=settings)
    assert state.phase == "waiting_for_go" and "rollout.go" in decision.notify[0].message
    assert (
        run_to(view, state, settings=RolloutSettings(wait_for_go=True, go="something else"))[0].record is None
    )
    _, state = run_to(view, state, settings=RolloutSettings(wait_for_go=True, go=target().key))
    assert state.phase == "preparing"


def test_a_go_given_to_a_cluster_that_became_unhealthy_goes_back_to_the_preflight():
    settings = RolloutSettings(wait_for_go=True, go=target().key)
    waiting = RolloutState("demo").begin(target(), NOW).moved(NOW, phase="waiting_for_go")
    _, state = run_to(cluster(ready_control_planes=1), waiting, settings=settings)
    assert (state.phase, state.refusals) == ("pending", ("control-plane-not-ready",))


def test_pause_holds_a_running_rollout_and_follows_its_refresh_and_resume_goes_on():
    view = cluster()
    state = (
        RolloutState("demo").begin(target(), NOW).started("control_planes", KubeVersion(1, 37, 2), True, NOW)
    )
    paused_settings = RolloutSettings(paused=True)
    _, state = run_to(view, state, settings=paused_settings)
    assert (state.phase, state.paused_from) == ("paused", "control_planes")
    decision, state = run_to(view, state, settings=paused_settings)
    assert not decision.steps and decision.record is None
    _, state = run_to(view, state)
    assert state.phase == "control_planes"


def test_a_failed_refresh_stops_the_rollout_and_tells_people_and_it_is_not_retried_by_itself():
    view = cluster()
    state = (
        RolloutState("demo").begin(target(), NOW).started("control_planes", KubeVersion(1, 37, 2), True, NOW)
    )
    state = state.refresh_requested(CP_ASG, NOW).refresh_started("r-1", NOW)
    failed = {CP_ASG: RefreshSeen(CP_ASG, "r-1", "Failed", 33, "instances failed to launch")}
    decision, state = run_to(view, state, refreshes=failed)
    assert (state.phase, state.refresh_asg) == ("failed", None)
    assert "instances failed to launch" in decision.notify[0].message
    assert advance(world(view, state), DEFAULTS) == rollout.RolloutDecision()


def test_a_cancelled_refresh_cancels_the_rollout():
    state = RolloutState("demo").begin(target(), NOW).started("workers", KubeVersion(1, 37, 2), False, NOW)
    state = state.refresh_requested(WORKER_ASG, NOW).refresh_started("r-2", NOW)
    _, state = run_to(cluster(), state, refreshes={WORKER_ASG: RefreshSeen(WORKER_ASG, "r-2", "Cancelled")})
    assert state.phase == "cancelled"


def test_a_start_never_recorded_is_asked_again_after_a_while():
    state = (
        RolloutState("demo").begin(target(), NOW).started("control_planes", KubeVersion(1, 37, 2), True, NOW)
    )
    state = state.refresh_requested(CP_ASG, NOW)
    assert advance(world(cluster(), state, now=NOW + 10), DEFAULTS).record is None
    later = advance(world(cluster(), state, now=NOW + 400), DEFAULTS).record
    assert later is not None and later.refresh_asg is None


def test_a_new_target_supersedes_a_running_rollout_and_cancels_its_refresh():
    state = (
        RolloutState("demo").begin(target(), NOW).started("control_planes", KubeVersion(1, 37, 2), True, NOW)
    )
    state = state.refresh_requested(CP_ASG, NOW).refresh_started("r-1", NOW)
    rollback = target("1.37.2", template=3)
    decision, state = run_to(cluster(), state, rollback)
    assert state.phase == "cancelled" and decision.steps == (CancelRefresh(CP_ASG, "the target changed"),)
    _, state = run_to(cluster(), state, rollback)
    assert (state.phase, state.target) == ("pending", rollback.key)


def test_a_failed_cluster_step_fails_the_rollout_before_any_node_changes():
    state = RolloutState("demo").begin(target(), NOW).started("preparing", KubeVersion(1, 37, 2), True, NOW)
    state = state.step_sent(NOW)
    decision = on_cluster_step(state, False, "upload-config failed", NOW, world(cluster(), state))
    assert decision.record is not None and decision.record.phase == "failed"
    assert "upload-config failed" in decision.notify[0].message
    assert on_cluster_step(decision.record, True, None, NOW, world(cluster(), state)).record is None


def test_records_learn_what_their_instance_was_launched_from():
    fresh = NodeRecord("i-n0000001", "worker", WORKER_ASG, phase="waiting", version=2)
    older = NodeRecord("i-n0000002", "worker", WORKER_ASG, phase="waiting", version=2)
    view = cluster().with_records([fresh, older])
    instances = [
        AsgInstance("i-n0000001", WORKER_ASG, "Pending:Wait", 2),
        AsgInstance("i-n0000002", WORKER_ASG, "Pending:Wait", 1),  # from an older template version
        AsgInstance("i-w0000000", WORKER_ASG, "InService", 1),  # already stamped: left alone
    ]
    plan = rollout.record_launch_versions(view, instances, target("1.38.0", template=2), NOW)
    written = {
        r.instance_id: (r.launch_template_version, r.kubernetes_version)
        for b in plan.batches
        for r in b.writes
    }
    assert len(plan.batches) == 2  # one write each
    assert written == {"i-n0000001": (2, "1.38.0"), "i-n0000002": (1, None)}


def test_each_group_waits_for_a_healthy_quiet_cluster_before_its_refresh():
    state = (
        RolloutState("demo").begin(target(), NOW).started("control_planes", KubeVersion(1, 37, 2), True, NOW)
    )
    decision = advance(world(cluster(etcd_healthy=2, etcd_unhealthy=("ip-c1",)), state), DEFAULTS)
    assert (
        not decision.steps and decision.record is not None and decision.record.refusals == ("etcd-unhealthy",)
    )
    assert not decision.notify  # it clears up by itself (or remediation acts): logged, not paged
