"""`kcluster status`: is the cluster healthy, and what is its control loop doing (after `kops validate
cluster`: node groups, nodes, validation errors; exit 2 when not valid).

Read only. It reads what AWS and the control loop already keep: the Auto Scaling groups and their
instances (fleet.py), the control loop's state table (the cluster record, node records, the latest health
report the `health` document made on a control plane), and when the reconciler last ran (the newest event
of its log group). `build` and `validation_errors` are pure: the same inputs give the same status.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from kcluster.adapters.state_store import StateStore
from kcluster.core.models import ClusterView, HealthSnapshot, NodeRecord
from kcluster.core.phases import PENDING_JOIN_PHASES
from kcluster_cli.aws import Cluster, aws_errors
from kcluster_cli.control_loop import ControlLoop, find_control_loop
from kcluster_cli.fleet import GroupView, InstanceView, node_groups

# The reconciler runs every minute and probes health every minute: older than this is a finding.
STALE_AFTER_SECONDS = 300.0


@dataclass(frozen=True)
class Observed:
    """Everything `kcluster status` read, at `now`."""

    cluster: str
    region: str
    kubernetes_version: str
    groups: tuple[GroupView, ...]
    view: ClusterView
    last_reconcile: float | None
    now: float


def observe(cluster: Cluster) -> Observed:
    loop = find_control_loop(cluster)
    groups = node_groups(cluster)
    with aws_errors(f"reading the state table {loop.state_table}"):
        view = StateStore(loop.state_table, cluster.name, client=cluster.client("dynamodb")).load()
    return Observed(
        cluster=cluster.name,
        region=cluster.region,
        kubernetes_version=cluster.config.kubernetes_version,
        groups=groups,
        view=view,
        last_reconcile=last_reconcile(cluster, loop),
        now=time.time(),
    )


def last_reconcile(cluster: Cluster, loop: ControlLoop) -> float | None:
    """When the reconciler last wrote to its log (every tick publishes its metrics there), or None."""
    logs = cluster.client("logs")
    with aws_errors(f"reading {loop.log_group('reconciler')}"):
        try:
            streams = logs.describe_log_streams(
                logGroupName=loop.log_group("reconciler"), orderBy="LastEventTime", descending=True, limit=1
            )["logStreams"]
        except logs.exceptions.ResourceNotFoundException:
            return None  # it has never run: Lambda creates the group on the first invocation
    stamps = [s.get("lastEventTimestamp") or s.get("lastIngestionTime") for s in streams]
    return max((stamp / 1000 for stamp in stamps if stamp), default=None)


def build(observed: Observed) -> dict[str, Any]:
    view, now = observed.view, observed.now
    nodes = [_node(observed, instance) for group in observed.groups for instance in group.instances]
    status: dict[str, Any] = {
        "cluster": observed.cluster,
        "region": observed.region,
        "node_groups": [_group(group) for group in observed.groups],
        "nodes": nodes,
        "control_loop": _control_loop(view, observed.last_reconcile, now),
    }
    errors = validation_errors(observed, nodes)
    status["validation_errors"] = errors
    status["valid"] = not errors
    return status


def _group(group: GroupView) -> dict[str, Any]:
    states = [instance.lifecycle_state for instance in group.instances]
    return {
        "name": group.asg_name,
        "role": group.role,
        "min": group.min_size,
        "desired": group.desired,
        "max": group.max_size,
        "in_service": sum(1 for state in states if state == "InService"),
        "pending": sum(1 for state in states if state.startswith("Pending")),
        "leaving": sum(1 for state in states if state.startswith("Terminating")),
    }


def _node(observed: Observed, instance: InstanceView) -> dict[str, Any]:
    record = observed.view.nodes.get(instance.instance_id)
    launched = instance.launch_time.timestamp() if instance.launch_time else None
    return {
        "instance_id": instance.instance_id,
        "node_name": record.node_name if record else None,
        "role": instance.role,
        "node_group": instance.asg_name,
        "ready": readiness(record, observed.view.health),
        "phase": record.phase if record else None,
        "lifecycle_state": instance.lifecycle_state,
        # What the cluster's configuration installs on its nodes (the launch template's version).
        "kubernetes_version": observed.kubernetes_version,
        "age_seconds": None if launched is None else round(observed.now - launched),
    }


def readiness(record: NodeRecord | None, health: HealthSnapshot | None) -> str:
    """Ready / NotReady as the latest health report saw the node; Unknown when no report covers it (not
    joined yet, or joined after the report was taken)."""
    if record is None or record.phase != "joined" or health is None or not health.api_ready:
        return "Unknown"
    if any(node.instance_id == record.instance_id for node in health.not_ready):
        return "NotReady"
    if health.taken_at < record.updated_at or health.truncated:
        return "Unknown"
    return "Ready"


def _control_loop(view: ClusterView, reconciled_at: float | None, now: float) -> dict[str, Any]:
    cluster, health = view.cluster, view.health
    pending = [n for n in view.nodes.values() if n.phase in PENDING_JOIN_PHASES]
    oldest = min((n.lifecycle_started_at or n.created_at for n in pending), default=None)
    lease_held = cluster.lease_owner is not None and not cluster.lease_free(now)
    return {
        "phase": cluster.phase,
        "epoch": cluster.epoch,
        "init_owner": cluster.init_owner,
        "lease_holder": cluster.lease_owner if lease_held else None,
        "lease_expires_in_seconds": round((cluster.lease_expires_at or now) - now) if lease_held else None,
        "joins_pending": len(pending),
        "oldest_pending_action_seconds": None if oldest is None else round(now - oldest),
        "last_reconcile_seconds_ago": None if reconciled_at is None else round(now - reconciled_at),
        "last_health_report": None if health is None or not health.taken_at else _health(health, now),
        "alarms_in_alarm": list(view.remediation_state.alarms_in_alarm),
        "remediating": view.remediation_state.remediating,
        # Being built now: etcd backups (issue 15) and rollouts (issue 14) will keep their records in the
        # state table. Until those records exist there is nothing to show, and nothing is made up.
        "last_backup": last_backup(view),
        "rollout": rollout(view),
    }


def last_backup(view: ClusterView) -> dict[str, Any] | None:
    """The newest etcd backup's record: none is kept yet (issue 15 adds them)."""
    return None


def rollout(view: ClusterView) -> dict[str, Any] | None:
    """The rollout in progress: none is recorded yet (issue 14 adds rollout records)."""
    return None


def _health(health: HealthSnapshot, now: float) -> dict[str, Any]:
    return {
        "seconds_ago": round(now - health.taken_at),
        "taken_on": health.taken_on,
        "api_ready": health.api_ready,
        "ready_nodes": health.ready_nodes,
        "not_ready_nodes": health.not_ready_nodes,
        "etcd_members": health.etcd_members,
        "etcd_healthy": health.etcd_healthy,
        "etcd_unhealthy": list(health.etcd_unhealthy),
    }


def validation_errors(observed: Observed, nodes: list[dict[str, Any]]) -> list[dict[str, str]]:
    """What keeps the cluster from being valid, as kops lists it: a kind, a name, a message."""
    errors = _cluster_errors(observed)
    for group in observed.groups:
        in_service = sum(1 for i in group.instances if i.lifecycle_state == "InService")
        if in_service != group.desired:
            errors.append(
                _error("NodeGroup", group.asg_name, f"{in_service} of {group.desired} instances InService")
            )
    for node in nodes:
        errors.extend(_node_errors(node))
    return errors


def _cluster_errors(observed: Observed) -> list[dict[str, str]]:
    view, now = observed.view, observed.now
    errors = []
    if view.cluster.phase != "ready":
        errors.append(_error("Cluster", observed.cluster, f"cluster is {view.cluster.phase}, not ready"))
    health = view.health
    if health is None or not health.taken_at:
        errors.append(_error("Health", observed.cluster, "no health report yet"))
    else:
        if now - health.taken_at > STALE_AFTER_SECONDS:
            errors.append(
                _error("Health", observed.cluster, f"last health report {round(now - health.taken_at)}s ago")
            )
        if not health.api_ready:
            errors.append(_error("Health", health.taken_on, "the API server did not answer the health probe"))
        errors.extend(_error("EtcdMember", name, "etcd member unhealthy") for name in health.etcd_unhealthy)
    if observed.last_reconcile is None or now - observed.last_reconcile > STALE_AFTER_SECONDS:
        ago = "never" if observed.last_reconcile is None else f"{round(now - observed.last_reconcile)}s ago"
        errors.append(_error("ControlLoop", "reconciler", f"last reconcile: {ago}"))
    errors.extend(_error("Alarm", name, "in ALARM") for name in view.remediation_state.alarms_in_alarm)
    return errors


def _node_errors(node: dict[str, Any]) -> list[dict[str, str]]:
    instance = node["instance_id"]
    if node["lifecycle_state"] != "InService":
        return [
            _error(
                "Instance",
                instance,
                f"{node['lifecycle_state']} (control loop: {node['phase'] or 'no record'})",
            )
        ]
    if node["phase"] != "joined":
        return [
            _error(
                "Instance",
                instance,
                f"InService but not joined (control loop: {node['phase'] or 'no record'})",
            )
        ]
    if node["ready"] != "Ready":
        return [_error("Node", node["node_name"] or instance, f"{node['ready']} ({instance})")]
    return []


def _error(kind: str, name: str, message: str) -> dict[str, str]:
    return {"kind": kind, "name": name, "message": message}
