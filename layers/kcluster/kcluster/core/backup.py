"""etcd backups, decided: when one is due, which control plane takes it, what its result means.

The reconciler asks (``take``) every tick; at most one `backup` command is out at a time. A backup is due
* on the schedule: the newest good one is older than ``config.backup.interval_seconds`` (15 minutes by
  default; a failed attempt is retried after ``retry_seconds``);
* before a control-plane membership change: a control plane waits to join or is leaving, and the newest
  good backup was asked for before that change became pending. Dispatch of the change waits for it
  (``membership_change_may_proceed``) at most ``membership_wait_seconds``, so a cluster that cannot take
  a backup (etcd without quorum) still heals.
The first good backup of each UTC day goes to the daily tier (kept a year), the others to frequent (kept
a week): the bucket's lifecycle rules do the keeping. The command runs on a joined control plane whose
etcd member the last health probe did not report unhealthy. Its result is metadata only (key, size,
revision, hash): the snapshot and the PKI go from the node to S3 and never through a function.

Metrics (each tick, so the alarm sees the age grow): BackupAgeSeconds (since the newest good backup was
asked for, or since the loop started watching when there is none yet) and BackupSizeBytes; on each
result BackupSucceeded or BackupFailures.
"""

from __future__ import annotations

import time
from typing import Any

from kcluster import contract
from kcluster.config import ClusterConfig
from kcluster.core.backup_catalog import DAILY, FREQUENT, ID_FORMAT
from kcluster.core.models import (
    BackupReported,
    BackupState,
    ClusterView,
    Metric,
    NodeRecord,
    Note,
    Plan,
    SendCommand,
)
from kcluster.core.phases import LEAVING_PHASES

# The document's own timeout (documents.json); an answer this much later is given up on.
BACKUP_TIMEOUT_SECONDS = 600
BACKUP_LOST_AFTER_SECONDS = 2 * BACKUP_TIMEOUT_SECONDS

REASON_SCHEDULE = "schedule"
REASON_MEMBERSHIP = "membership-change"


def enabled(config: ClusterConfig) -> bool:
    return config.documents.backup is not None and config.backup_bucket is not None


def backup_id(now: float) -> str:
    """The id a backup is stored under: the UTC second the loop asked for it (the document's pattern)."""
    return time.strftime(ID_FORMAT, time.gmtime(now))


def tier(state: BackupState, now: float) -> str:
    """The first backup of a UTC day is kept a year; the rest a week."""
    return FREQUENT if state.last_daily_day == backup_id(now)[:8] else DAILY


def pending_membership_change(view: ClusterView) -> float | None:
    """Since when a control-plane membership change waits (a control plane waiting to join a ready
    cluster, or leaving it); None when none does."""
    since = [
        pending_since(node)
        for node in view.nodes.values()
        if node.is_control_plane
        and (
            (node.phase == "waiting" and view.cluster.phase == "ready")
            or (node.phase in LEAVING_PHASES and node.command_id is None)
        )
    ]
    return min(since) if since else None


def pending_since(node: NodeRecord) -> float:
    """Since when the control-plane membership change of `node` (its join, or its removal) waits."""
    if node.phase in LEAVING_PHASES:
        return node.terminate_started_at or node.updated_at
    return node.lifecycle_started_at or node.created_at


def due(state: BackupState, view: ClusterView, config: ClusterConfig, now: float) -> str | None:
    """Why a backup should be taken now, or None."""
    settings = config.backup
    if state.last_failed_at is not None and now - state.last_failed_at < settings.retry_seconds:
        return None
    change_since = pending_membership_change(view)
    if change_since is not None and (state.last_good_at is None or state.last_good_at < change_since):
        return REASON_MEMBERSHIP
    if state.last_good_at is None or now - state.last_good_at >= settings.interval_seconds:
        return REASON_SCHEDULE
    return None


def membership_change_may_proceed(view: ClusterView, config: ClusterConfig, since: float, now: float) -> bool:
    """Gate of a control-plane join or removal pending since `since`: a good backup taken after it
    became pending, or backups off, or waited long enough (a backup must never stop the cluster healing)."""
    if not enabled(config) or view.cluster.phase != "ready":
        return True
    state = view.backup_state
    if state.last_good_at is not None and state.last_good_at >= since:
        return True
    return now - since >= config.backup.membership_wait_seconds


def change_of_node_may_proceed(
    view: ClusterView, node: NodeRecord, config: ClusterConfig, now: float
) -> bool:
    """The backup gate of `node`'s control-plane join or removal (the dispatches ask it before taking
    the lease)."""
    return membership_change_may_proceed(view, config, pending_since(node), now)


def choose_control_plane(view: ClusterView) -> str | None:
    """A joined control plane to take the snapshot: trusted and with a healthy etcd member (as the last
    health probe saw it) first, the oldest first."""
    unhealthy = set(view.health.etcd_unhealthy) if view.health else set()
    healthy = [n.instance_id for n in view.joined_control_planes() if n.node_name not in unhealthy]
    trusted = [i for i in healthy if i not in view.cluster.suspect_helpers]
    preferred = trusted or healthy
    return preferred[0] if preferred else None


def take(view: ClusterView, config: ClusterConfig, now: float) -> Plan:
    """Send the `backup` document to a control plane, if one is due and none is out."""
    if not enabled(config) or view.cluster.phase != "ready":
        return Plan()
    state = view.backup_state
    if state.phase == "taking":
        if now - (state.sent_at or now) < BACKUP_LOST_AFTER_SECONDS:
            return Plan()
        note = Note("warning", "backup never answered; given up", {"backup_id": state.backup_id})
        state = state.failed("no-answer", now)
        return Plan.one(state, notes=[note], metrics=[Metric("BackupFailures")])
    reason = due(state, view, config, now)
    target = choose_control_plane(view) if reason else None
    if reason is None or target is None:
        # Remember when watching began: the age of "no backup yet" counts from there.
        return Plan.one(state.watching(now)) if state.watching_since is None else Plan()
    chosen_tier = tier(state, now)
    ident = backup_id(now)
    send = SendCommand(
        contract.DOC_BACKUP,
        (target,),
        {"ClusterName": config.cluster_name, "BackupId": ident, "Tier": chosen_tier},
        (),
        BACKUP_TIMEOUT_SECONDS,
    )
    note = Note("info", "taking an etcd backup", {"backup_id": ident, "tier": chosen_tier, "reason": reason})
    return Plan.one(state.taking(ident, chosen_tier, reason, target, now), actions=[send], notes=[note])


def to_check(view: ClusterView, now: float) -> tuple[str, str] | None:
    """(command id, instance) of the backup whose answer is overdue (its status event may be lost)."""
    state = view.backup
    if state is None or state.phase != "taking" or state.command_id is None or state.target is None:
        return None
    if now - (state.sent_at or now) < BACKUP_TIMEOUT_SECONDS:
        return None
    return state.command_id, state.target


def on_sent(view: ClusterView, command_id: str) -> Plan:
    state = view.backup_state
    if state.phase != "taking" or state.command_id is not None:
        return Plan()
    return Plan.one(state.command_recorded(command_id))


def on_send_failed(view: ClusterView, error_code: str, now: float) -> Plan:
    state = view.backup_state
    if state.phase != "taking" or state.command_id is not None:
        return Plan()
    note = Note("warning", "SendCommand backup refused", {"error": error_code, "target": state.target})
    return Plan.one(state.failed(error_code, now), notes=[note], metrics=[Metric("BackupFailures")])


def on_report(view: ClusterView, event: BackupReported, now: float) -> Plan:
    state = view.backup
    if state is None or state.phase != "taking" or event.command_id != state.command_id:
        return Plan()  # late, duplicate, or of a backup given up on
    result = event.result or {}
    fields: dict[str, Any] = {"backup_id": state.backup_id, "instance_id": event.instance_id}
    if event.status == "Success" and result.get("ok") and _whole(result):
        good = state.succeeded(str(result["key"]), int(result["size"]), int(result["revision"]))
        note = Note(
            "info", "etcd backup taken", {**fields, "key": good.last_good_key, "size": good.last_good_size}
        )
        metrics = [Metric("BackupSucceeded"), *_age_and_size(good, now)]
        return Plan.one(good, view.cluster.trust_helper(event.instance_id), notes=[note], metrics=metrics)
    error = str(result.get("error") or event.status)
    note = Note("warning", "etcd backup failed", {**fields, "status": event.status, "error": error})
    suspect = view.cluster.suspect_helper(event.instance_id)
    return Plan.one(state.failed(error, now), suspect, notes=[note], metrics=[Metric("BackupFailures")])


def _whole(result: dict[str, Any]) -> bool:
    """The result names what a restore needs: where (key), and a snapshot that was checked."""
    try:
        return bool(result["key"]) and int(result["size"]) > 0 and int(result["revision"]) > 0
    except (KeyError, TypeError, ValueError):
        return False


def metrics(view: ClusterView, config: ClusterConfig, now: float) -> Plan:
    """The age of the newest good backup, every tick while backups are on and the cluster is ready."""
    state = view.backup
    if not enabled(config) or view.cluster.phase != "ready" or state is None:
        return Plan()
    return Plan.one(metrics=_age_and_size(state, now))


def _age_and_size(state: BackupState, now: float) -> list[Metric]:
    since = state.last_good_at if state.last_good_at is not None else state.watching_since
    found = [Metric("BackupAgeSeconds", max(0.0, now - (since or now)), "Seconds")]
    if state.last_good_size is not None:
        found.append(Metric("BackupSizeBytes", state.last_good_size, "Bytes"))
    return found
