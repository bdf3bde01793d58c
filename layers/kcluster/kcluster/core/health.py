"""The cluster's health as the control loop sees it: the `health` document, run on a control plane.

The reconciler asks for it (at most one probe in flight, one a minute); its result (status event, or the
reconciler asking SSM when that event is lost) becomes the stored HealthSnapshot, which the remediator
reads, and the CloudWatch metrics the alarms watch: ReadyNodes, NotReadyNodes, ReadyControlPlanes,
EtcdMembers, EtcdMembersHealthy, EtcdMembersUnhealthy, ApiServerReady and, per NotReady node,
NodeNotReadySeconds (dimension InstanceId).
"""

from __future__ import annotations

from typing import Any

from kcluster import contract
from kcluster.config import ClusterConfig
from kcluster.core import helper_control_plane
from kcluster.core.models import (
    ClusterView,
    HealthReported,
    HealthSnapshot,
    Metric,
    NodeHealth,
    Note,
    Plan,
    SendCommand,
    bump,
)

# A probe a minute (the reconciler's own rhythm); one unanswered this long is given up on.
PROBE_INTERVAL_SECONDS = 55.0
PROBE_LOST_AFTER_SECONDS = 180.0
# The document's own timeout (documents.json); the probe reports rather than fails.
PROBE_TIMEOUT_SECONDS = 60


def probe(view: ClusterView, config: ClusterConfig, now: float) -> Plan:
    """Send the `health` document to a healthy control plane, if it is time and none is in flight."""
    last = view.health or HealthSnapshot()
    if config.documents.health is None or view.cluster.phase != "ready":
        return Plan()
    if last.probe_sent_at is not None and now - last.probe_sent_at < PROBE_LOST_AFTER_SECONDS:
        return Plan()  # one in flight (or just sent)
    if now - last.taken_at < PROBE_INTERVAL_SECONDS:
        return Plan()
    helper = helper_control_plane.choose(view)
    if helper is None:
        return Plan()
    sent = last.probe_sent(helper, now)
    send = SendCommand(
        contract.DOC_HEALTH, (helper,), {"ClusterName": config.cluster_name}, (), PROBE_TIMEOUT_SECONDS
    )
    return Plan.one(sent, actions=[send])


def probe_to_check(view: ClusterView, now: float) -> tuple[str, str] | None:
    """(command id, instance) of the probe whose result is overdue (its status event may be lost): ask
    SSM directly."""
    last = view.health
    if last is None or None in (last.probe_command_id, last.probe_target, last.probe_sent_at):
        return None
    if now - (last.probe_sent_at or now) < 2 * PROBE_TIMEOUT_SECONDS:
        return None
    return last.probe_command_id or "", last.probe_target or ""


def on_sent(view: ClusterView, command_id: str) -> Plan:
    last = view.health or HealthSnapshot()
    return Plan.one(last.probe_recorded(command_id))


def on_report(view: ClusterView, event: HealthReported, now: float) -> Plan:
    last = view.health
    if last is None or event.command_id != last.probe_command_id:
        return Plan()  # late, duplicate, or of a probe given up on
    result = event.result or {}
    if event.status != "Success" or not result.get("ok"):
        probe_done = last.probe_failed()
        suspect = view.cluster.suspect_helper(event.instance_id)
        note = Note(
            "warning",
            "health probe failed",
            {"instance_id": event.instance_id, "status": event.status, "error": result.get("error")},
        )
        return Plan.one(probe_done, suspect, notes=[note], metrics=[Metric("HealthProbeFailures")])
    snapshot = _snapshot(last, result, event.instance_id, now)
    # A control plane whose own API server does not answer cannot see the Nodes: the next probe (and
    # any other helper command) goes to another one; an answering one is trusted again. The cluster
    # record is written only when that changes.
    trust = view.cluster.after_helper_command(event.instance_id, snapshot.api_ready)
    notes = tuple(
        Note("warning", "health probe warning", {"instance_id": event.instance_id, "warning": text})
        for text in result.get("warnings", [])[:5]
    )
    return Plan.one(snapshot, trust, notes=notes, metrics=_metrics(snapshot, now))


def api_ready_unprobed(view: ClusterView, now: float) -> Metric | None:
    """ApiServerReady for a reconciler tick with no fresh probe answer (None when there is one: the
    probe published it). NoReadyControlPlaneAlarm pages on INSUFFICIENT_DATA too, so a reconciler that
    does not run at all pages; the reconciler itself speaks for every other minute: 0 once the cluster
    has formed and no probe answered lately (no control plane left to run it on, every probe lost):
    exactly when people must act; 1 while the first control plane is still being brought up (nothing
    is lost yet; a bring-up that stalls is the stuck-node alarm's)."""
    last = view.health
    if last is not None and last.taken_at and now - last.taken_at < PROBE_LOST_AFTER_SECONDS:
        return None
    cluster = view.cluster
    first_bring_up = cluster.epoch == 0 or (cluster.epoch == 1 and cluster.phase == "initializing")
    return Metric("ApiServerReady", 1 if first_bring_up else 0)


def _snapshot(previous: HealthSnapshot, result: dict[str, Any], ran_on: str, now: float) -> HealthSnapshot:
    counts = result.get("counts") or {}
    etcd = result.get("etcd") or {}
    not_ready = tuple(
        NodeHealth(
            instance_id=node.get("instance_id") or "",
            name=str(node.get("name", "")),
            control_plane=bool(node.get("control_plane")),
            ready=False,
            since=node.get("not_ready_since"),
        )
        for node in result.get("nodes") or []
        if not node.get("ready") and node.get("instance_id")
    )
    snapshot = HealthSnapshot(
        taken_at=now,
        taken_on=ran_on,
        api_ready=bool(result.get("api_ready")),
        ready_nodes=int(counts.get("ready", 0)),
        not_ready_nodes=int(counts.get("not_ready", 0)),
        ready_control_planes=int(counts.get("ready_control_planes", 0)),
        not_ready=not_ready,
        truncated=bool(result.get("nodes_truncated")),
        etcd_reachable=bool(etcd.get("reachable")),
        etcd_members=int(etcd.get("members", 0)),
        etcd_healthy=int(etcd.get("healthy", 0)),
        etcd_unhealthy=tuple(
            str(member.get("name") or "")
            for member in etcd.get("member_health", [])
            if not member.get("healthy")
        ),
        version=previous.version,
    )
    return bump(snapshot)


def _metrics(snapshot: HealthSnapshot, now: float) -> tuple[Metric, ...]:
    metrics = [
        Metric("ApiServerReady", 1 if snapshot.api_ready else 0),
        Metric("EtcdMembers", snapshot.etcd_members),
        Metric("EtcdMembersHealthy", snapshot.etcd_healthy),
        Metric("EtcdMembersUnhealthy", snapshot.etcd_members - snapshot.etcd_healthy),
    ]
    if snapshot.api_ready:  # without the API there are no Node counts to report, only their absence
        metrics += [
            Metric("ReadyNodes", snapshot.ready_nodes),
            Metric("NotReadyNodes", snapshot.not_ready_nodes),
            Metric("ReadyControlPlanes", snapshot.ready_control_planes),
        ]
    metrics += [
        Metric(
            "NodeNotReadySeconds",
            max(0.0, now - node.since) if node.since is not None else 0.0,
            "Seconds",
            (("InstanceId", node.instance_id),),
        )
        for node in snapshot.not_ready
    ]
    return tuple(metrics)
