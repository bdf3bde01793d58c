"""Rollouts as a pure decision: a new Kubernetes version, a new node image, or both, rolled through
the cluster the way kops and Cluster API's KubeadmControlPlane do it, by replacing nodes.

``advance`` is called on every reconciler tick and on every instance refresh event; it re-derives the
next step from the world (what the members run, the last health report, the refreshes Auto Scaling
reports) and the rollout record, so a lost event or a crashed function costs a tick, not a rollout:

1. drift: the members do not all run the target the cluster config names -> a rollout (pending);
2. preflight (core/preflight.py) -> refused with its reasons, or a go (or waiting for a person's go);
3. the cluster-level kubeadm step when the Kubernetes version changes ("prepare": kubeadm-config,
   kubelet-config, RBAC, before the first new control plane joins);
4. the control planes, one instance refresh: MinHealthyPercentage 100 and room for exactly one
   more instance, so each new control plane joins (through the launch hook, under the join lease)
   before an old one leaves (through the terminate hook: drained, Node deleted, member removed);
5. "addons" (kube-proxy, CoreDNS) after the last control plane, when the version changed;
6. each worker group in turn, keeping `min_healthy_percent` of it in service, launch before terminate;
7. succeeded once no member drifts. A failed or cancelled refresh stops the rollout and tells people.

Before each refresh starts, the cluster as it will be after the group's first replacement is checked
against the skew policy (core/version_skew.py); a refusal holds the rollout and says why. Settings:
``rollout.paused`` holds a running rollout (a refresh already running runs on), ``rollout.wait_for_go``
holds each new rollout until ``rollout.go`` names its target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from kcluster.config import RolloutSettings
from kcluster.core.models import AsgInstance, Batch, ClusterView, Metric, Note, Notify, Plan
from kcluster.core.phases import ROLLOUT_FINISHED_PHASES, RolloutPhase
from kcluster.core.preflight import PreflightInput, Refusal, between_groups, preflight
from kcluster.core.rollout_model import (
    REFRESH_CANCELLED,
    REFRESH_FAILED,
    REFRESH_RUNNING,
    CancelRefresh,
    ClusterStep,
    GroupTarget,
    RefreshSeen,
    RolloutDecision,
    RolloutState,
    StartRefresh,
    Target,
    drifted,
    running,
)
from kcluster.core.version_skew import KubeVersion, violations

# A StartInstanceRefresh whose answer was never recorded is asked again after this long (a second
# start while one runs is refused by Auto Scaling, and the shell adopts the running one).
REFRESH_UNRECORDED_SECONDS = 300.0
# A cluster-level step sent this long ago without an answer is sent again (the step is idempotent).
CLUSTER_STEP_RETRY_SECONDS = 900.0


@dataclass(frozen=True)
class RolloutWorld:
    """What one decision reads: the stored view and rollout record, the target the cluster config
    names, the latest instance refresh of each group, and the backup hook (see PreflightInput)."""

    view: ClusterView
    rollout: RolloutState | None
    target: Target
    refreshes: dict[str, RefreshSeen]
    now: float
    backup_fresh: bool | None = None


def advance(world: RolloutWorld, settings: RolloutSettings) -> RolloutDecision:
    """The rollout's next step, or why there is none."""
    rollout, target = world.rollout, world.target
    if rollout is None or rollout.phase in ROLLOUT_FINISHED_PHASES:
        return _maybe_begin(world)
    if rollout.target != target.key:
        return _superseded(world, rollout)
    if rollout.refresh_asg is not None:
        return _follow_refresh(world, rollout)
    if rollout.phase == "pending":
        return _preflight_gate(world, rollout, settings)
    if rollout.phase == "waiting_for_go":
        return _go_gate(world, rollout, settings)
    if rollout.phase == "paused":
        return _resume_gate(world, rollout, settings)
    if settings.paused:
        return _decision(rollout.pause(world.now), "rollout paused", rollout)
    return _drive(world, rollout, settings)


# --- starting --------------------------------------------------------------------------------------


def _maybe_begin(world: RolloutWorld) -> RolloutDecision:
    rollout, target = world.rollout, world.target
    if not drifted(world.view, target):
        return RolloutDecision()
    if rollout is not None and rollout.target == target.key and rollout.phase != "succeeded":
        # A failed or cancelled rollout is not retried by itself: people were told; a new target (a
        # rollback to the previous launch template version, or a fixed one) starts the next one.
        return RolloutDecision()
    fresh = (rollout or RolloutState(world.view.cluster.name)).begin(target, world.now)
    return _decision(fresh, "rollout noticed: the cluster does not run its target", fresh)


def _preflight_gate(world: RolloutWorld, rollout: RolloutState, settings: RolloutSettings) -> RolloutDecision:
    refusals = preflight(PreflightInput(world.view, world.target, world.now, world.backup_fresh))
    if refusals:
        return _refused(rollout, refusals, world.now)
    if settings.wait_for_go and settings.go != rollout.target:
        waiting = rollout.moved(world.now, phase="waiting_for_go", refusals=())
        return _told(
            _decision(waiting, "rollout ready: waiting for a go", waiting),
            "waiting-for-go",
            f"kcluster {rollout.name}: rollout ready, waiting for a go",
            f"The preflight passed for target {rollout.target}. Set rollout.go to that target to start it.",
        )
    return _start(world, rollout)


def _go_gate(world: RolloutWorld, rollout: RolloutState, settings: RolloutSettings) -> RolloutDecision:
    if settings.wait_for_go and settings.go != rollout.target:
        return RolloutDecision()
    # The world may have changed while it waited: the preflight runs again.
    refusals = preflight(PreflightInput(world.view, world.target, world.now, world.backup_fresh))
    if refusals:
        return _refused(rollout.moved(world.now, phase="pending"), refusals, world.now, force_write=True)
    return _start(world, rollout)


def _start(world: RolloutWorld, rollout: RolloutState) -> RolloutDecision:
    apiservers = running(world.view).apiservers
    from_version = min(apiservers) if apiservers else None
    cluster_step = needs_cluster_step(from_version, world.target)
    first = _first_phase(world, cluster_step)
    started = rollout.started(first, from_version, cluster_step, world.now)
    return _decision(started, f"rollout started: {first}", started)


def needs_cluster_step(from_version: KubeVersion | None, target: Target) -> bool:
    """Whether the cluster-level step runs: whenever the Kubernetes version changes, a patch too. A new
    control plane's `kubeadm join` builds its static Pods from kubeadm-config's ClusterConfiguration
    (its kubernetesVersion), so that must name the target before the first one joins; a new image with
    the same version needs none of it."""
    return from_version is not None and from_version != target.kubernetes_version


def _first_phase(world: RolloutWorld, cluster_step: bool) -> RolloutPhase:
    if cluster_step:
        return "preparing"
    drift = drifted(world.view, world.target)
    if world.target.control_plane_group.asg_name in drift:
        return "control_planes"
    return "workers" if drift else "succeeded"


def _refused(
    rollout: RolloutState, refusals: list[Refusal], now: float, *, force_write: bool = False
) -> RolloutDecision:
    reasons = tuple(r.reason for r in refusals)
    record = rollout.refused(reasons, now) or (rollout if force_write else None)
    notes = tuple(
        Note(
            "warning", "rollout refused", {"reason": r.reason, "detail": r.message, "target": rollout.target}
        )
        for r in refusals
    )
    decision = RolloutDecision(record, notes=notes, metrics=(Metric("RolloutRefusals", len(refusals)),))
    for refusal in refusals:
        if refusal.person_must_act:
            decision = _told(
                decision,
                refusal.reason,
                f"kcluster {rollout.name}: rollout refused ({refusal.reason})",
                f"Rollout to {rollout.target} refused: {refusal.message}",
            )
    return decision


# --- driving ------------------------------------------------------------------------------------


def _drive(world: RolloutWorld, rollout: RolloutState, settings: RolloutSettings) -> RolloutDecision:
    drift = drifted(world.view, world.target)
    match rollout.phase:
        case "preparing":
            return _cluster_step(world, rollout, "prepare", "control_planes")
        case "control_planes":
            group = world.target.control_plane_group
            if group.asg_name in drift:
                return _start_refresh(world, rollout, group, settings)
            after: RolloutPhase = "addons" if rollout.cluster_step else _after_control_planes(world)
            return _decision(
                rollout.moved(world.now, phase=after), f"control planes at target: {after}", rollout
            )
        case "addons":
            return _cluster_step(world, rollout, "addons", _after_control_planes(world))
        case _:
            group_left = next((g for g in world.target.worker_groups if g.asg_name in drift), None)
            if group_left is not None:
                return _start_refresh(world, rollout, group_left, settings)
            done = rollout.moved(world.now, phase="succeeded")
            return _decision(done, "rollout succeeded: every node runs the target", rollout)


def _after_control_planes(world: RolloutWorld) -> RolloutPhase:
    drift = drifted(world.view, world.target)
    return "workers" if any(g.asg_name in drift for g in world.target.worker_groups) else "succeeded"


def _cluster_step(
    world: RolloutWorld, rollout: RolloutState, stage: Literal["prepare", "addons"], then: RolloutPhase
) -> RolloutDecision:
    """Send the step (again when its answer is overdue); ``on_cluster_step`` moves on once it is done."""
    sent = rollout.step_sent_at
    if sent is not None and world.now - sent < CLUSTER_STEP_RETRY_SECONDS:
        return RolloutDecision()
    step = ClusterStep(stage, rollout.kubernetes_version)
    note = Note("info", f"cluster-level step {stage}", {"target": rollout.target, "then": then})
    return RolloutDecision(rollout.step_sent(world.now), steps=(step,), notes=(note,))


def on_cluster_step(
    rollout: RolloutState, ok: bool, error: str | None, now: float, world: RolloutWorld
) -> RolloutDecision:
    """The cluster-level step's result: on to the next phase, or the rollout fails and people are told
    (nothing about the nodes changed yet for "prepare"; for "addons" every control plane already runs
    the target, which the skew policy allows with old addons)."""
    if rollout.phase not in ("preparing", "addons") or rollout.step_sent_at is None:
        return RolloutDecision()  # late or duplicate
    if not ok:
        failed = rollout.moved(now, phase="failed", step_sent_at=None, error=error or "cluster step failed")
        return _told(
            _decision(failed, "cluster-level step failed", failed),
            "cluster-step-failed",
            f"kcluster {rollout.name}: rollout failed",
            f"The cluster-level step of the rollout to {rollout.target} failed: {error}",
        )
    then: RolloutPhase = "control_planes" if rollout.phase == "preparing" else _after_control_planes(world)
    return _decision(rollout.step_done(then, now), f"cluster-level step done: {then}", rollout)


def refresh_preferences(group: GroupTarget, capacity: int, settings: RolloutSettings) -> tuple[int, int]:
    """(MinHealthyPercentage, MaxHealthyPercentage) for a group of `capacity` instances. Control planes:
    100 and room for exactly one more, so one is replaced at a time and each new one is in service
    before an old one goes. Workers: the configured minimum, and a maximum that leaves room for at
    least one more instance (a small group could otherwise never replace anything)."""
    one_more = 100 + math.ceil(100 / max(capacity, 1))
    if group.is_control_plane:
        return 100, min(one_more, 200)
    maximum = min(max(settings.worker_max_healthy_percent, one_more), 200)
    return settings.min_healthy_percent, min(maximum, settings.min_healthy_percent + 100)


def _start_refresh(
    world: RolloutWorld, rollout: RolloutState, group: GroupTarget, settings: RolloutSettings
) -> RolloutDecision:
    unhealthy = between_groups(PreflightInput(world.view, world.target, world.now, world.backup_fresh))
    if unhealthy:
        return _refused(rollout, unhealthy, world.now)
    after_first = running(world.view).with_node(
        world.target.kubernetes_version, control_plane=group.is_control_plane
    )
    problems = violations(after_first)
    if problems:
        refusal = Refusal(
            "skew", f"replacing {group.asg_name} now would break the skew policy: {'; '.join(problems)}", True
        )
        return _refused(rollout, [refusal], world.now)
    capacity = len(
        [n for n in world.view.nodes.values() if n.asg_name == group.asg_name and n.phase == "joined"]
    )
    minimum, maximum = refresh_preferences(group, capacity, settings)
    start = StartRefresh(
        group.asg_name, group.launch_template_version, minimum, maximum, settings.instance_warmup_seconds
    )
    requested = rollout.refresh_requested(group.asg_name, world.now)
    note = Note(
        "info",
        "instance refresh requested",
        {"asg": group.asg_name, "min_healthy": minimum, "max_healthy": maximum, "target": rollout.target},
    )
    return RolloutDecision(requested, steps=(start,), notes=(note,))


def on_refresh_started(rollout: RolloutState, asg_name: str, refresh_id: str, now: float) -> RolloutDecision:
    """StartInstanceRefresh answered (or a running refresh of the group was adopted)."""
    if rollout.refresh_asg != asg_name or rollout.refresh_id == refresh_id:
        return RolloutDecision()
    return RolloutDecision(rollout.refresh_started(refresh_id, now))


def _follow_refresh(world: RolloutWorld, rollout: RolloutState) -> RolloutDecision:
    asg = rollout.refresh_asg or ""
    seen = world.refreshes.get(asg)
    if seen is None or seen.refresh_id != rollout.refresh_id:
        if world.now - (rollout.refresh_requested_at or world.now) < REFRESH_UNRECORDED_SECONDS:
            return RolloutDecision()
        # The start was never recorded (or never made): forget it; the next decision asks again.
        again = rollout.refresh_over(world.now)
        return _decision(again, "instance refresh start unrecorded; asking again", rollout, level="warning")
    if seen.status in REFRESH_RUNNING:
        progress = Metric("RolloutPercentComplete", seen.percentage_complete)
        return RolloutDecision(metrics=(progress,))
    if seen.status in REFRESH_FAILED | REFRESH_CANCELLED:
        return _refresh_ended_badly(world, rollout, seen)
    done = rollout.refresh_over(world.now)
    return _decision(done, "instance refresh succeeded", rollout, asg=asg)


def _refresh_ended_badly(world: RolloutWorld, rollout: RolloutState, seen: RefreshSeen) -> RolloutDecision:
    phase: RolloutPhase = "cancelled" if seen.status in REFRESH_CANCELLED else "failed"
    error = f"instance refresh of {seen.asg_name} {seen.status}: {seen.status_reason}".rstrip(": ")
    ended = rollout.refresh_over(world.now, phase=phase, paused_from=None, error=error)
    return _told(
        _decision(ended, f"rollout {phase}", rollout, level="error", error=error),
        f"refresh-{phase}",
        f"kcluster {rollout.name}: rollout {phase}",
        f"The rollout to {rollout.target} stopped: {error}. Instances already replaced stay replaced; the "
        "cluster keeps running with the versions it has, within the skew policy.",
    )


def _superseded(world: RolloutWorld, rollout: RolloutState) -> RolloutDecision:
    """The target changed under a rollout (a rollback, a newer version): stop this one; the next
    decision begins the new one from what runs then."""
    steps = (CancelRefresh(rollout.refresh_asg, "the target changed"),) if rollout.refresh_asg else ()
    ended = rollout.moved(
        world.now,
        phase="cancelled",
        refresh_asg=None,
        refresh_id=None,
        refresh_requested_at=None,
        error="the target changed",
    )
    decision = _decision(ended, "rollout superseded by a new target", rollout, new_target=world.target.key)
    return RolloutDecision(decision.record, steps, decision.notes)


def _resume_gate(world: RolloutWorld, rollout: RolloutState, settings: RolloutSettings) -> RolloutDecision:
    if settings.paused:
        return RolloutDecision()
    return _decision(rollout.resume(world.now), "rollout resumed", rollout)


# --- helpers --------------------------------------------------------------------------------------


def _decision(
    record: RolloutState,
    message: str,
    about: RolloutState,
    *,
    level: Literal["info", "warning", "error"] = "info",
    **fields: object,
) -> RolloutDecision:
    note = Note(level, message, {"target": about.target, "phase": record.phase, **fields})
    return RolloutDecision(record, notes=(note,))


def _told(decision: RolloutDecision, reason: str, subject: str, message: str) -> RolloutDecision:
    """Tell people, once per rollout and reason (the record remembers)."""
    record = decision.record
    if record is None or reason in record.notified:
        return decision
    return RolloutDecision(
        record.told(reason),
        decision.steps,
        decision.notes,
        (*decision.notify, Notify(subject, message)),
        decision.metrics,
    )


def record_launch_versions(
    view: ClusterView, instances: list[AsgInstance], target: Target, now: float
) -> Plan:
    """Stamp each node record that lacks it with what its instance was launched from: the launch
    template version Auto Scaling reports, and the Kubernetes version the target pairs with that
    template version (unknown, None, for an instance launched from another one). Run while the
    instance is new, so the pairing is the one its launch used. One write per node: a first tick after
    deployment may stamp many more records than one transaction takes."""
    stamped = []
    for instance in instances:
        node = view.nodes.get(instance.instance_id)
        if (
            node is None
            or node.launch_template_version is not None
            or instance.launch_template_version is None
        ):
            continue
        group = target.group(instance.asg_name)
        pinned = None if group is None else group.launch_template_version
        version = (
            str(target.kubernetes_version) if pinned in (None, instance.launch_template_version) else None
        )
        stamped.append(node.launched_from(instance.launch_template_version, version, now))
    return Plan.of(*(Batch.of(node) for node in stamped))
