"""Alarm-driven remediation as pure functions: which broken node to replace now, or why none.

A remediation alarm in ALARM (NotReady nodes, or control planes whose API server fails the NLB's
health check) asks for remediation until it returns to OK. Each decision (on the alarm's state change,
then every reconciler tick while an alarm stands) replaces at most one instance, through
SetInstanceHealth Unhealthy: the ASG terminates it through the terminate hook (drain, Node deleted,
etcd member removed) and launches a replacement through the launch hook. The guard rails, after
Cluster API's MachineHealthCheck and the seed's SRE notes, each a setting and each decision logged
and counted:

* a grace period before a NotReady node counts as broken;
* at most one remediation in flight per cluster, and a cooldown between two;
* never a control plane whose loss would leave etcd without quorum, nor during a control-plane join
  or removal;
* a short-circuit: when more than a set share of a node group is unhealthy at once, the cause is
  elsewhere (network, control plane): replace nothing and tell people why;
* an error budget: at most so many remediations an hour, then people are told instead.

People are told only where a person must act (short-circuit, budget spent, quorum at risk, a
remediation that never healed); a remediation that healed is a metric, not a page.
"""

from __future__ import annotations

from dataclasses import dataclass

from kcluster.core.models import (
    AlarmChanged,
    AsgInstance,
    ClusterView,
    Metric,
    NodeRecord,
    Note,
    Notify,
    Plan,
    ReplaceInstance,
)
from kcluster.core.phases import PENDING_JOIN_PHASES

# A standing condition is told to people again after this long, not every minute.
NOTIFY_AGAIN_AFTER_SECONDS = 3600.0
HOUR = 3600.0
# The remediator is invoked within seconds of an alarm's state change and, when it fails, retried
# about one and then about two minutes later (its EventInvokeConfig): until then the event decides.
EVENT_SETTLE_SECONDS = 300.0


@dataclass(frozen=True)
class RemediationSettings:
    grace_seconds: float = 300.0
    cooldown_seconds: float = 600.0
    max_unhealthy_percent: float = 40.0
    max_per_hour: int = 3
    # A remediation whose replacement has not joined after this long is given up on (and told).
    in_flight_timeout_seconds: float = 1800.0


@dataclass(frozen=True)
class Broken:
    node: NodeRecord
    why: str
    since: float


def on_alarm(view: ClusterView, event: AlarmChanged, now: float) -> Plan:
    """Remember which of our remediation alarms stand; OK ends the remediation they asked for."""
    state = view.remediation_state
    standing = set(state.alarms_in_alarm)
    if event.state == "ALARM":
        standing.add(event.alarm_name)
    else:
        standing.discard(event.alarm_name)
    if tuple(sorted(standing)) == state.alarms_in_alarm:
        return Plan()  # a duplicate, or a change that does not matter (INSUFFICIENT_DATA from OK)
    fields = {"alarm": event.alarm_name, "state": event.state, "was": event.previous_state}
    message = "remediation alarm raised" if event.state == "ALARM" else "remediation alarm cleared"
    if event.state != "ALARM" and not standing:
        message += "; no further remediation"
    return Plan.one(state.alarms_standing(tuple(sorted(standing))), notes=[Note("info", message, fields)])


@dataclass(frozen=True)
class AlarmRead:
    """One remediation alarm as DescribeAlarms gave it: its state and when that state began."""

    state: str
    since: float


def alarms_as_read(view: ClusterView, read: dict[str, AlarmRead], ours: frozenset[str], now: float) -> Plan:
    """The reconciler read our remediation alarms (`read`: those of `ours` that exist). An alarm sends
    its state-change event once; if the remediator failed on it (every retry, the event left in its
    dead-letter queue), only this read makes the standing alarm count. It is a safety net, not a race
    with the event: a state younger than EVENT_SETTLE_SECONDS is the event's to tell (the remediator,
    its retries included, acts on it first); an older one is the truth, whatever the events told. An
    alarm that does not exist stands for nothing."""
    state = view.remediation_state
    stored = set(state.alarms_in_alarm)
    recent = {name for name, alarm in read.items() if now - alarm.since < EVENT_SETTLE_SECONDS}
    settled = ours - recent
    raised = {name for name in settled if name in read and read[name].state == "ALARM"}
    standing = (stored - settled) | raised
    if standing == stored:
        return Plan()
    fields = {"raised": sorted(standing - stored), "cleared": sorted(stored - standing)}
    note = Note("warning", "remediation alarm states re-read differ from what the events told", fields)
    return Plan.one(
        state.alarms_standing(tuple(sorted(standing))),
        notes=[note],
        metrics=[Metric("AlarmStatesResynced")],
    )


def failing_api_servers(view: ClusterView, unhealthy_targets: tuple[str, ...]) -> Metric:
    """UnhealthyApiServers, what the API-servers-unhealthy alarm watches: the joined control planes the
    load balancer finds unhealthy. Not the NLB's own UnHealthyHostCount: that also counts the first
    control plane, registered before its `kubeadm init` and failing its checks until its API server
    listens, so every bring-up of a cluster would raise the alarm."""
    joined = sum(
        1
        for instance_id in unhealthy_targets
        if (node := view.nodes.get(instance_id)) is not None
        and node.is_control_plane
        and node.phase == "joined"
    )
    return Metric("UnhealthyApiServers", joined)


def next_step(
    view: ClusterView,
    instances: list[AsgInstance],
    unhealthy_targets: tuple[str, ...],
    settings: RemediationSettings,
    now: float,
) -> Plan:
    """The next remediation, if an alarm stands and every guard rail allows one."""
    done = _finished_remediation(view, instances, settings, now)
    if done is not None:
        return done
    if not view.remediation_state.alarms_in_alarm:
        return Plan()
    live = {i.instance_id: i for i in instances if i.lifecycle_state == "InService"}
    broken = _broken(view, live, unhealthy_targets, settings, now)
    if not broken:
        return Plan()
    held = _held_by_guard_rail(view, live, unhealthy_targets, broken, settings, now)
    if held is not None:
        return held
    recent = tuple(t for t in view.remediation_state.remediations if now - t < HOUR)
    refusals = []
    for candidate in broken:
        refusal = _control_plane_refusal(view, candidate.node)
        if refusal is None:
            return _remediate(view, candidate, recent, now)
        refusals.append(refusal)
    # Every broken node is a control plane that may not go now: say why (the first, most broken one).
    reason, why, _ = refusals[0]
    return _suppressed(view, reason, why, broken, notify=any(r[2] for r in refusals), now=now)


def _held_by_guard_rail(
    view: ClusterView,
    live: dict[str, AsgInstance],
    unhealthy_targets: tuple[str, ...],
    broken: list[Broken],
    settings: RemediationSettings,
    now: float,
) -> Plan | None:
    """The cluster-wide guard rails, in order: one in flight, the cooldown, the short-circuit, the error
    budget. None when they all allow a remediation."""
    state = view.remediation_state
    if state.remediating is not None:
        return _suppressed(view, "in-flight", f"replacing {state.remediating} first", broken)
    if state.remediating_since is not None and now - state.remediating_since < settings.cooldown_seconds:
        return _suppressed(view, "cooldown", "the last remediation is too recent", broken)
    for role, share in _unhealthy_shares(view, live, unhealthy_targets).items():
        if share * 100 > settings.max_unhealthy_percent and any(b.node.role == role for b in broken):
            why = (
                f"{share:.0%} of the {role} nodes are unhealthy at once (more than "
                f"{settings.max_unhealthy_percent:g}%): the cause is likely the network or the control "
                "plane, not the nodes; nothing is replaced"
            )
            return _suppressed(view, "short-circuit", why, broken, notify=True, now=now)
    recent = tuple(t for t in state.remediations if now - t < HOUR)
    if len(recent) >= settings.max_per_hour:
        why = (
            f"{len(recent)} remediations in the last hour (at most {settings.max_per_hour}): "
            "the error budget is spent"
        )
        return _suppressed(view, "error-budget", why, broken, notify=True, now=now)
    return None


# ----- the decision's parts ---------------------------------------------------------------------------


def _broken(
    view: ClusterView,
    live: dict[str, AsgInstance],
    unhealthy_targets: tuple[str, ...],
    settings: RemediationSettings,
    now: float,
) -> list[Broken]:
    """Replaceable broken nodes, most broken (longest) first: joined, in service, not already going."""
    seen: dict[str, tuple[str, float]] = {}
    health = view.health
    if health is not None and health.api_ready:
        for node in health.not_ready:
            since = node.since if node.since is not None else health.taken_at
            if now - since >= settings.grace_seconds:
                seen[node.instance_id] = ("NotReady", since)
    for instance_id in unhealthy_targets:
        seen.setdefault(instance_id, ("API server health check failing", now))
    broken = []
    for instance_id, (why, since) in seen.items():
        record = view.nodes.get(instance_id)
        if record is None or instance_id not in live or record.phase != "joined":
            continue
        if record.replace_requested_at is None:
            broken.append(Broken(record, why, since))
    return sorted(broken, key=lambda b: (b.since, b.node.instance_id))


def _unhealthy_shares(
    view: ClusterView, live: dict[str, AsgInstance], unhealthy_targets: tuple[str, ...]
) -> dict[str, float]:
    """Per role, the share of in-service nodes unhealthy now (NotReady of any age, or failing the API
    health check)."""
    unhealthy = set(unhealthy_targets)
    if view.health is not None and view.health.api_ready:
        unhealthy |= {n.instance_id for n in view.health.not_ready}
    shares = {}
    for role in {n.role for n in view.nodes.values()}:
        members = [iid for iid in live if (node := view.nodes.get(iid)) is not None and node.role == role]
        if members:
            shares[role] = sum(1 for iid in members if iid in unhealthy) / len(members)
    return shares


def _control_plane_refusal(view: ClusterView, node: NodeRecord) -> tuple[str, str, bool] | None:
    """Why a control plane may not be replaced now: (reason, explanation, tell people), or None."""
    if not node.is_control_plane:
        return None
    busy = view.control_plane_change_in_flight()
    if busy is not None:
        return "control-plane-busy", f"a control-plane join or removal ({busy}) is in flight", False
    health = view.health
    if health is None or not health.etcd_reachable or health.etcd_members == 0:
        return "quorum", "etcd's health is unknown: a control plane is not replaced blind", True
    member_healthy = node.node_name is not None and node.node_name not in health.etcd_unhealthy
    remaining = health.etcd_members - 1
    healthy_after = health.etcd_healthy - (1 if member_healthy else 0)
    needed = remaining // 2 + 1
    if remaining > 0 and healthy_after < needed:
        why = (
            f"replacing {node.instance_id} would leave {healthy_after} healthy etcd members of {remaining}, "
            f"below the quorum of {needed}"
        )
        return "quorum", why, True
    return None


def _remediate(view: ClusterView, broken: Broken, recent: tuple[float, ...], now: float) -> Plan:
    node = broken.node
    started = view.remediation_state.started(node.instance_id, now, recent)
    marked = node.replacement_requested(now)
    fields = {
        "instance_id": node.instance_id,
        "role": node.role,
        "why": broken.why,
        "broken_for": now - broken.since,
    }
    return Plan.one(
        started,
        marked,
        actions=[ReplaceInstance(node.instance_id, broken.why)],
        notes=[Note("warning", "remediating: instance marked unhealthy for replacement", fields)],
        metrics=[Metric("Remediations", 1, dimensions=(("Role", node.role),))],
    )


def _suppressed(
    view: ClusterView,
    reason: str,
    why: str,
    broken: list[Broken],
    *,
    notify: bool = False,
    now: float = 0.0,
) -> Plan:
    fields = {"reason": reason, "detail": why, "instance_ids": [b.node.instance_id for b in broken]}
    state = view.remediation_state
    notified = None
    actions: tuple[Notify, ...] = ()
    last = state.notified_at.get(reason)
    if notify and (last is None or now - last >= NOTIFY_AGAIN_AFTER_SECONDS):
        notified = state.notified(reason, now)
        broken_list = ", ".join(f"{b.node.instance_id} ({b.node.role}, {b.why})" for b in broken)
        actions = (
            Notify(
                f"kcluster {view.cluster.name}: remediation held ({reason})",
                f"kcluster did not replace broken nodes of cluster {view.cluster.name}: {why}.\n"
                f"Broken: {broken_list}.\nA person must look: nothing more will be done automatically "
                "while this holds.",
            ),
        )
    return Plan.one(
        notified,
        actions=actions,
        notes=[Note("warning" if notify else "info", "remediation suppressed", fields)],
        metrics=[Metric("RemediationsSuppressed", 1, dimensions=(("Reason", reason),))],
    )


def _finished_remediation(
    view: ClusterView, instances: list[AsgInstance], settings: RemediationSettings, now: float
) -> Plan | None:
    """End the remediation in flight once its instance is gone and every instance of the groups has
    joined (the replacement included); give up on it after a timeout, telling people."""
    state = view.remediation_state
    if state.remediating is None:
        return None
    target = state.remediating
    still_there = any(i.instance_id == target for i in instances)
    settling = any(
        i.lifecycle_state != "InService"
        or (node := view.nodes.get(i.instance_id)) is None
        or node.phase in PENDING_JOIN_PHASES
        for i in instances
    )
    overdue = now - (state.remediating_since or now) >= settings.in_flight_timeout_seconds
    if (still_there or settling) and not overdue:
        return None
    ended = state.ended()
    if not overdue or (not still_there and not settling):
        note = Note("info", "remediation finished: the instance was replaced", {"instance_id": target})
        return Plan.one(ended, notes=[note], metrics=[Metric("RemediationsCompleted")])
    why = f"the replacement of {target} has not finished after {settings.in_flight_timeout_seconds:.0f} s"
    name = view.cluster.name
    notify = Notify(f"kcluster {name}: remediation did not heal", why + "; a person must look.")
    note = Note("error", "remediation timed out", {"instance_id": target})
    return Plan.one(ended, actions=[notify], notes=[note], metrics=[Metric("RemediationsTimedOut")])
