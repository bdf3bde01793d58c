"""Scale-in as pure functions: a terminate lifecycle action -> drain, delete the Node, remove the etcd member.

Rules (DESIGN.md section 5, and what NTH / Cluster API / kops users got hurt by):
* The terminate action is always completed CONTINUE: a terminate hook cannot keep an instance. What
  fails is reported loudly (error log + metric), never left to the hook timeout.
* An instance that never joined is completed at once (launch work in flight on it goes with it) and
  any claim or lease it held released.
* `drain-remove` runs on a healthy control plane other than the leaving one. Control planes leave one
  at a time (the same lease as joins). If removing the member would leave etcd without quorum while
  another member is unhealthy, the script refuses; we keep the instance (heartbeats) for a bounded
  wait in case the other member recovers, then let it go and alert.
* The last control plane leaving marks the cluster uninitialized: the next control plane inits anew.
"""

from __future__ import annotations

from typing import Any

from kcluster import contract
from kcluster.config import ClusterConfig
from kcluster.core import backup, helper_control_plane
from kcluster.core.models import (
    Batch,
    CancelCommand,
    ClusterState,
    ClusterView,
    CommandFinished,
    CompleteLifecycle,
    LifecycleTerminate,
    Metric,
    NodeRecord,
    Note,
    Plan,
    SendCommand,
)
from kcluster.core.phases import LEAVING_PHASES

# A refused SendCommand (the helper's agent not registered, say) is tried again after this long.
SEND_REFUSED_BACKOFF_SECONDS = 30.0

# A refused removal (quorum at risk) is tried again after this long.
QUORUM_RETRY_SECONDS = 60.0
DRAIN_RETRY_SECONDS = 30.0
# A record whose instance is missing from its group this long after we created it has vanished.
VANISHED_AFTER_SECONDS = 300.0
# Phases in which the instance may have a Node object or an etcd member that must be cleaned up.
MAY_BE_IN_CLUSTER = frozenset({"joined", "joining"})
_JOIN_STEPS = frozenset({contract.DOC_JOIN_CONTROL_PLANE, contract.DOC_JOIN_WORKER})


def may_be_in_cluster(node: NodeRecord) -> bool:
    """Joined or joining, or waiting to retry a join that ran: a join that failed after kubeadm ran may
    have left a Node and, for a control plane, an etcd member (found by chaos seed 34: a control plane
    waiting to retry such a join was let go at once and its member stayed, costing etcd its quorum)."""
    return node.phase in MAY_BE_IN_CLUSTER or (node.step in _JOIN_STEPS and node.attempts > 0)


def on_terminate(view: ClusterView, event: LifecycleTerminate, config: ClusterConfig, now: float) -> Plan:
    node = view.nodes.get(event.instance_id)
    if (
        node is not None
        and node.terminate_token == event.token
        and node.terminate_hook_name == event.hook_name
    ):
        return Plan()  # duplicate delivery
    if node is not None and node.phase == "gone":
        return Plan()  # late duplicate of an action already completed
    if node is not None and node.phase in LEAVING_PHASES and node.terminate_hook_name:
        # The same terminate action, already being handled: the reconciler found it waiting before its
        # event arrived (no token then). An instance has one lifecycle action at a time, so this is
        # not a new one: keep the work going, and keep the token if we had none.
        if node.terminate_token is not None or event.token is None:
            return Plan()
        return Plan.one(node.adopt_terminate_token(event.token, now))
    if node is None:
        node = NodeRecord(
            instance_id=event.instance_id, role=event.role, asg_name=event.asg_name, created_at=now
        )
    # Applied together with each path's own changes: one new version per decision.
    terminate = {
        "asg_name": node.asg_name or event.asg_name,
        "terminate_hook_name": event.hook_name,
        "terminate_token": event.token,
        "terminate_started_at": now,
        "last_heartbeat_at": now,
    }
    fields = {
        "instance_id": node.instance_id,
        "role": node.role,
        "was": node.phase,
        "destination": event.destination or "absent",
    }
    if may_be_in_cluster(node):
        return _start_leaving(node, terminate, fields, now)
    return _complete_at_once(view, node, terminate, fields, now)


def _start_leaving(before: NodeRecord, terminate: dict[str, Any], fields: dict[str, Any], now: float) -> Plan:
    leaving = before.leave(now, **terminate)
    actions: list[CancelCommand] = []
    if before.phase == "joining" and before.command_id:
        # The join may or may not have added its Node / etcd member: clean up either way. The instance is
        # kept alive while it is drained, so its join could still add them after drain-remove took them
        # away: cancel it (best effort; a failed cancel is logged and blocks nothing).
        actions.append(CancelCommand(before.command_id, before.instance_id))
    note = Note("info", "node leaving: drain and remove before termination", fields)
    return Plan.one(leaving, actions=actions, notes=[note])


def _complete_at_once(
    view: ClusterView, before: NodeRecord, terminate: dict[str, Any], fields: dict[str, Any], now: float
) -> Plan:
    gone = before.gone(now, **terminate)
    # No CancelCommand here: what is in flight for it (init) runs on the instance itself, which is let
    # go at once and takes its command with it; a refresh-join runs on a helper and is harmless.
    return Plan.one(
        gone,
        view.cluster.released_by_leaving(before.instance_id),
        actions=_complete(gone),
        notes=[Note("info", "instance is not in the cluster: terminate completed at once", fields)],
        metrics=[Metric("TerminationsCompleted")],
    )


def on_drain_finished(
    view: ClusterView, node: NodeRecord, event: CommandFinished, config: ClusterConfig, now: float
) -> Plan:
    result = event.result or {}
    fields = {"instance_id": node.instance_id, "role": node.role, "node_name": result.get("node_name")}
    succeeded = event.status == "Success" and bool(result.get("ok", False))
    error = "" if succeeded else str(result.get("error") or event.status)
    # A quorum refusal is the cluster's state, not the helper's fault.
    cluster = view.cluster.after_helper_command(
        event.instance_id, succeeded or error == "quorum-risk", release_lease_of=[node.instance_id]
    )
    if succeeded:
        return _drained(node, cluster, result, fields, now)
    waited = now - (node.terminate_started_at or now)
    if error == "quorum-risk" and waited < config.timeouts.quorum_wait_seconds:
        note = Note(
            "error",
            "etcd member not removed: quorum at risk while another member is unhealthy; "
            "holding the instance and retrying",
            {**fields, "detail": result.get("message")},
        )
        retry = node.requeue(now, error, backoff=QUORUM_RETRY_SECONDS)
        return Plan.one(retry, cluster, notes=[note], metrics=[Metric("QuorumRiskRefusals")])
    attempts = node.attempts + 1
    if error != "quorum-risk" and attempts < config.max_attempts:
        note = Note(
            "warning", "drain-remove failed; will retry", {**fields, "error": error, "attempts": attempts}
        )
        retry = node.requeue(now, error, backoff=DRAIN_RETRY_SECONDS * attempts, attempts=attempts)
        return Plan.one(retry, cluster, notes=[note], metrics=[Metric("StepFailures")])
    gone = node.gone(now, attempts=attempts, last_error=error)
    note = Note(
        "error",
        "could not drain and remove the node; terminating anyway: clean up by hand or "
        "let the reconciler remove what is left",
        {**fields, "error": error},
    )
    return Plan.one(
        gone, cluster, actions=_complete(gone), notes=[note], metrics=[Metric("TerminationsWithoutCleanup")]
    )


def _drained(
    node: NodeRecord,
    cluster: ClusterState | None,
    result: dict[str, object],
    fields: dict[str, object],
    now: float,
) -> Plan:
    metrics = [
        Metric("TerminationsCompleted"),
        Metric("Drains", 1 if result.get("drained") else 0),
        Metric("NodesDeleted", 1 if result.get("node_deleted") else 0),
        Metric("EtcdMembersRemoved", 1 if result.get("etcd_member_removed") else 0),
    ]
    notes = [Note("info", "node drained and removed", {**fields, **_summary(result)})]
    if result.get("drain_timed_out"):
        metrics.append(Metric("DrainTimeouts"))
        notes.append(
            Note(
                "error",
                "drain timed out (a PodDisruptionBudget blocked eviction); node removed anyway",
                fields,
            )
        )
    node_name = result.get("node_name", node.node_name)
    gone = node.gone(now, last_error=None, node_name=node_name)
    return Plan.one(gone, cluster, actions=_complete(gone), notes=notes, metrics=metrics)


def on_send_failed(nodes: list[NodeRecord], error: str, now: float) -> Batch:
    """drain-remove was refused for `nodes`: back to leaving, to be dispatched again after a while."""
    return Batch.of(*(n.requeue(now, error, backoff=SEND_REFUSED_BACKOFF_SECONDS) for n in nodes))


def vanished(view: ClusterView, live_instances: set[str], now: float) -> Plan:
    """Records of instances that no longer exist although we never saw them leave (killed, the
    terminate hook lost or timed out). Their Node and etcd member are cleaned up like a leaving node's,
    with no lifecycle action to complete; anything they held is released."""
    batches = []
    for node in view.nodes.values():
        if node.instance_id in live_instances or node.phase in ("gone", "leaving", "draining"):
            continue
        if now - node.created_at < VANISHED_AFTER_SECONDS:
            continue  # Auto Scaling's listing may not show a brand-new instance yet
        fields = {"instance_id": node.instance_id, "role": node.role, "was": node.phase}
        if may_be_in_cluster(node):
            note = Note(
                "warning", "instance vanished without a terminate action; cleaning up its Node", fields
            )
            batches.append(Batch.of(node.leave(now), notes=[note]))
            continue
        note = Note("warning", "instance vanished before joining", fields)
        batches.append(
            Batch.of(node.gone(now), view.cluster.released_by_leaving(node.instance_id), notes=[note])
        )
    return Plan.of(*batches)


def dispatch_leaving(view: ClusterView, config: ClusterConfig, now: float) -> tuple[Plan, ClusterView]:
    """Start drain-remove for leaving nodes. Returns the plan and the view as it will be after it, so
    the join dispatch that follows sees the lease taken here."""
    leaving = sorted(
        (
            n
            for n in view.nodes.values()
            if n.phase == "leaving" and (n.not_before is None or n.not_before <= now)
        ),
        key=lambda n: (n.terminate_started_at or 0, n.instance_id),
    )
    batches: list[Batch] = []
    after = view
    for node in leaving:
        batch = _next_for_leaving(view, after, node, config, now)
        if batch is not None:
            batches.append(batch)
            after = after.with_records(batch.writes)
    return Plan.of(*batches), after


def _next_for_leaving(
    view: ClusterView, after: ClusterView, node: NodeRecord, config: ClusterConfig, now: float
) -> Batch | None:
    """What one leaving node can do now (None: wait). `after` is the view with what this dispatch already
    decided for the nodes before it (the lease it took)."""
    helper = helper_control_plane.choose(view, exclude=node.instance_id)
    if helper is None and view.has_joining_control_plane(exclude=node.instance_id):
        # Its join may already have added an etcd member: wait for it to finish joining (through
        # this one, which keeps running meanwhile, see helper_control_plane.choose) or to be abandoned,
        # heartbeating the terminate action, instead of declaring this the last control plane.
        return None
    if helper is None:
        return _no_helper(view, node, now)
    if config.documents.drain_remove is None:
        return _no_document(node, now)
    cluster = None
    if node.is_control_plane:
        if not after.control_plane_change_allowed(node.instance_id, now):
            return None
        if not backup.change_of_node_may_proceed(after, node, config, now):
            return None  # its backup first (core/backup.py), heartbeating the terminate action meanwhile
        cluster = after.cluster.take_lease(node.instance_id, now + config.timeouts.lease_seconds)
    send = SendCommand(
        contract.DOC_DRAIN_REMOVE,
        (helper,),
        {
            "ClusterName": config.cluster_name,
            "InstanceId": node.instance_id,
            "RemoveEtcdMember": "true" if node.is_control_plane else "false",
            "DrainTimeout": f"{config.timeouts.drain_seconds}s",
        },
        (node.instance_id,),
        config.timeouts.drain_seconds + 300,
    )
    return Batch.of(cluster, node.start_document(contract.DOC_DRAIN_REMOVE, now), actions=[send])


def _no_helper(view: ClusterView, node: NodeRecord, now: float) -> Batch:
    gone = node.gone(now)
    if node.is_control_plane:
        # The last control plane: nothing can drain it and its etcd goes with it; the next control plane
        # that launches initializes a new cluster (a new epoch).
        cluster = view.cluster.last_control_plane_gone()
        why = "last control plane leaving: the cluster is now uninitialized"
    else:
        cluster = None
        why = "no healthy control plane to drain the worker; terminating without cleanup"
    return Batch.of(
        gone,
        cluster,
        actions=_complete(gone),
        notes=[Note("error", why, {"instance_id": node.instance_id})],
        metrics=[Metric("TerminationsWithoutCleanup")],
    )


def _no_document(node: NodeRecord, now: float) -> Batch:
    gone = node.gone(now)
    note = Note(
        "error",
        "no drain-remove document configured; terminating without cleanup",
        {"instance_id": node.instance_id},
    )
    return Batch.of(
        gone, actions=_complete(gone), notes=[note], metrics=[Metric("TerminationsWithoutCleanup")]
    )


def _complete(node: NodeRecord) -> tuple[CompleteLifecycle, ...]:
    """Complete the terminate action, if there is one (an instance that vanished has none)."""
    if node.terminate_hook_name is None:
        return ()
    return (
        CompleteLifecycle(
            node.instance_id, node.asg_name or "", node.terminate_hook_name, node.terminate_token, "CONTINUE"
        ),
    )


def _summary(result: dict[str, object]) -> dict[str, bool]:
    keys = ("drained", "drain_timed_out", "node_deleted", "etcd_member_removed")
    return {key: bool(result.get(key)) for key in keys}
