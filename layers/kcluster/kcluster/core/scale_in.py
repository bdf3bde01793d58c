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

from kcluster import contract
from kcluster.config import ClusterConfig
from kcluster.core import helpers
from kcluster.core.models import (
    IN_FLIGHT_PHASES,
    LEAVING_PHASES,
    CancelCommand,
    ClusterView,
    CommandFinished,
    CompleteLifecycle,
    LifecycleTerminate,
    NodeRecord,
    Note,
    Plan,
    SendCommand,
    Step,
    bump,
)

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
        adopted = bump(node, now, terminate_token=event.token)
        return Plan((Step(writes=(adopted,)),))
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


def _start_leaving(before: NodeRecord, terminate: dict, fields: dict, now: float) -> Plan:
    leaving = bump(before, now, **terminate, phase="leaving", command_id=None, not_before=None, attempts=0)
    actions: list = []
    if before.phase == "joining" and before.command_id:
        # The join may or may not have added its Node / etcd member: clean up either way. The instance is
        # kept alive while it is drained, so its join could still add them after drain-remove took them
        # away: cancel it (best effort; a failed cancel is logged and blocks nothing).
        actions.append(CancelCommand(before.command_id, before.instance_id))
    notes = [Note("info", "node leaving: drain and remove before termination", fields)]
    return Plan((Step(writes=(leaving,), actions=tuple(actions), notes=tuple(notes)),))


def _complete_at_once(
    view: ClusterView, before: NodeRecord, terminate: dict, fields: dict, now: float
) -> Plan:
    gone = bump(before, now, **terminate, phase="gone", command_id=None)
    writes: list = [gone]
    actions: list = []
    cluster = view.cluster
    if cluster.phase == "initializing" and cluster.init_owner == before.instance_id:
        # The owner of an unfinished init leaves (in flight, between retries, or abandoned): whatever it
        # started goes with its instance, so another control plane may init.
        writes.append(bump(cluster, phase="uninitialized", init_owner=None, init_claimed_at=None))
    elif cluster.lease_owner == before.instance_id:
        writes.append(bump(cluster, lease_owner=None, lease_expires_at=None))
    # No CancelCommand here: what is in flight for it (init) runs on the instance itself, which is let
    # go at once and takes its command with it; a refresh-join runs on a helper and is harmless.
    actions += _complete(gone)
    notes = (Note("info", "instance is not in the cluster: terminate completed at once", fields),)
    return Plan(
        (
            Step(
                writes=tuple(writes),
                actions=tuple(actions),
                notes=notes,
                metrics=(("TerminationsCompleted", 1),),
            ),
        )
    )


def on_drain_finished(
    view: ClusterView, node: NodeRecord, event: CommandFinished, config: ClusterConfig, now: float
) -> Plan:
    result = event.result or {}
    fields = {"instance_id": node.instance_id, "role": node.role, "node_name": result.get("node_name")}
    succeeded = event.status == "Success" and result.get("ok", False)
    error = "" if succeeded else str(result.get("error") or event.status)
    # A quorum refusal is the cluster's state, not the helper's fault.
    release = helpers.cluster_after(
        view,
        release_lease_of=[node.instance_id],
        helper=event.instance_id,
        helper_ok=succeeded or error == "quorum-risk",
    )
    if succeeded:
        metrics = [
            ("TerminationsCompleted", 1),
            ("Drains", 1 if result.get("drained") else 0),
            ("NodesDeleted", 1 if result.get("node_deleted") else 0),
            ("EtcdMembersRemoved", 1 if result.get("etcd_member_removed") else 0),
        ]
        notes = [Note("info", "node drained and removed", {**fields, **_summary(result)})]
        if result.get("drain_timed_out"):
            metrics.append(("DrainTimeouts", 1))
            notes.append(
                Note(
                    "error",
                    "drain timed out (a PodDisruptionBudget blocked eviction); node removed anyway",
                    fields,
                )
            )
        gone = bump(
            node,
            now,
            phase="gone",
            command_id=None,
            last_error=None,
            node_name=result.get("node_name", node.node_name),
        )
        return Plan(
            (
                Step(
                    writes=(gone, *release),
                    actions=_complete(gone),
                    notes=tuple(notes),
                    metrics=tuple(metrics),
                ),
            )
        )
    waited = now - (node.terminate_started_at or now)
    if error == "quorum-risk" and waited < config.timeouts.quorum_wait_seconds:
        retry = bump(
            node,
            now,
            phase="leaving",
            command_id=None,
            last_error=error,
            not_before=now + QUORUM_RETRY_SECONDS,
        )
        return Plan(
            (
                Step(
                    writes=(retry, *release),
                    notes=(
                        Note(
                            "error",
                            "etcd member not removed: quorum at risk while another member is unhealthy; "
                            "holding the instance and retrying",
                            {**fields, "detail": result.get("message")},
                        ),
                    ),
                    metrics=(("QuorumRiskRefusals", 1),),
                ),
            )
        )
    attempts = node.attempts + 1
    if error != "quorum-risk" and attempts < config.max_attempts:
        retry = bump(
            node,
            now,
            phase="leaving",
            command_id=None,
            attempts=attempts,
            last_error=error,
            not_before=now + DRAIN_RETRY_SECONDS * attempts,
        )
        return Plan(
            (
                Step(
                    writes=(retry, *release),
                    notes=(
                        Note(
                            "warning",
                            "drain-remove failed; will retry",
                            {**fields, "error": error, "attempts": attempts},
                        ),
                    ),
                    metrics=(("StepFailures", 1),),
                ),
            )
        )
    gone = bump(node, now, phase="gone", command_id=None, attempts=attempts, last_error=error)
    return Plan(
        (
            Step(
                writes=(gone, *release),
                actions=_complete(gone),
                notes=(
                    Note(
                        "error",
                        "could not drain and remove the node; terminating anyway: clean up by hand or "
                        "let the reconciler remove what is left",
                        {**fields, "error": error},
                    ),
                ),
                metrics=(("TerminationsWithoutCleanup", 1),),
            ),
        )
    )


def vanished(view: ClusterView, live_instances: set[str], now: float) -> Plan:
    """Records of instances that no longer exist although we never saw them leave (killed, the
    terminate hook lost or timed out). Their Node and etcd member are cleaned up like a leaving node's,
    with no lifecycle action to complete; anything they held is released."""
    steps = []
    for node in view.nodes.values():
        if node.instance_id in live_instances or node.phase in ("gone", "leaving", "draining"):
            continue
        if now - node.created_at < VANISHED_AFTER_SECONDS:
            continue  # Auto Scaling's listing may not show a brand-new instance yet
        fields = {"instance_id": node.instance_id, "role": node.role, "was": node.phase}
        if may_be_in_cluster(node):
            leaving = bump(node, now, phase="leaving", command_id=None, not_before=None, attempts=0)
            steps.append(
                Step(
                    writes=(leaving,),
                    notes=(
                        Note(
                            "warning",
                            "instance vanished without a terminate action; cleaning up its Node",
                            fields,
                        ),
                    ),
                )
            )
            continue
        writes: list = [bump(node, now, phase="gone", command_id=None)]
        cluster = view.cluster
        if cluster.init_owner == node.instance_id and cluster.phase == "initializing":
            writes.append(bump(cluster, phase="uninitialized", init_owner=None, init_claimed_at=None))
        elif cluster.lease_owner == node.instance_id:
            writes.append(bump(cluster, lease_owner=None, lease_expires_at=None))
        steps.append(
            Step(writes=tuple(writes), notes=(Note("warning", "instance vanished before joining", fields),))
        )
    return Plan(tuple(steps))


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
    if not leaving:
        return Plan(), view
    steps: list[Step] = []
    cluster = view.cluster
    for node in leaving:
        helper = helpers.choose_helper(view, exclude=node.instance_id)
        if helper is None and _control_plane_may_be_joining(view, exclude=node.instance_id):
            # Its join may already have added an etcd member: wait for it to finish joining (through
            # this one, which keeps running meanwhile, see helpers.choose_helper) or to be abandoned,
            # heartbeating the terminate action, instead of declaring this the last control plane.
            continue
        if helper is None:
            steps.append(_no_helper(view, node, now))
            continue
        if config.documents.drain_remove is None:
            steps.append(_no_document(node, now))
            continue
        writes: list = []
        if node.is_control_plane:
            if not cluster.lease_free(now) and cluster.lease_owner != node.instance_id:
                continue
            cluster = bump(
                cluster, lease_owner=node.instance_id, lease_expires_at=now + config.timeouts.lease_seconds
            )
            writes.append(cluster)
        draining = bump(
            node,
            now,
            phase="draining",
            step=contract.DOC_DRAIN_REMOVE,
            command_id=None,
            step_started_at=now,
            not_before=None,
        )
        writes.append(draining)
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
        steps.append(Step(writes=tuple(writes), actions=(send,)))
    plan = Plan(tuple(steps))
    after = view
    for step in plan.steps:
        after = after.with_records(list(step.writes))
    return plan, after


def _control_plane_may_be_joining(view: ClusterView, exclude: str) -> bool:
    """A control plane joining now, or waiting to retry a join that failed (a join reported failed may
    have added its etcd member all the same)."""
    return any(
        n.is_control_plane
        and n.instance_id != exclude
        and (
            n.phase in IN_FLIGHT_PHASES
            or (n.phase == "waiting" and n.step == contract.DOC_JOIN_CONTROL_PLANE)
        )
        for n in view.nodes.values()
    )


def _no_helper(view: ClusterView, node: NodeRecord, now: float) -> Step:
    gone = bump(node, now, phase="gone", command_id=None)
    writes: list = [gone]
    notes = []
    if node.is_control_plane:
        # The last control plane: nothing can drain it and its etcd goes with it; the next control plane
        # that launches initializes a new cluster (a new epoch).
        writes.append(
            bump(
                view.cluster,
                phase="uninitialized",
                init_owner=None,
                init_claimed_at=None,
                lease_owner=None,
                lease_expires_at=None,
            )
        )
        notes.append(
            Note(
                "error",
                "last control plane leaving: the cluster is now uninitialized",
                {"instance_id": node.instance_id},
            )
        )
    else:
        notes.append(
            Note(
                "error",
                "no healthy control plane to drain the worker; terminating without cleanup",
                {"instance_id": node.instance_id},
            )
        )
    return Step(
        writes=tuple(writes),
        actions=_complete(gone),
        notes=tuple(notes),
        metrics=(("TerminationsWithoutCleanup", 1),),
    )


def _no_document(node: NodeRecord, now: float) -> Step:
    gone = bump(node, now, phase="gone", command_id=None)
    return Step(
        writes=(gone,),
        actions=_complete(gone),
        notes=(
            Note(
                "error",
                "no drain-remove document configured; terminating without cleanup",
                {"instance_id": node.instance_id},
            ),
        ),
        metrics=(("TerminationsWithoutCleanup", 1),),
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


def _summary(result: dict) -> dict:
    keys = ("drained", "drain_timed_out", "node_deleted", "etcd_member_removed")
    return {key: bool(result.get(key)) for key in keys}


__all__ = ["LEAVING_PHASES", "dispatch_leaving", "on_drain_finished", "on_terminate"]
