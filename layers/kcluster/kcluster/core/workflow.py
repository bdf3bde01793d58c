"""The launch workflow as pure functions: (stored view, event or command outcome, config, now) -> Plan.

Nothing here touches AWS. The shell (kcluster.service) loads the view, calls one of these, writes each
Step's records with conditional writes and only then runs the Step's actions, feeding their outcomes
back through ``on_command_sent`` / ``on_send_failed``.

Why it is shaped like this:
* Every transition is idempotent: a duplicate, late or reordered event finds the record already past
  the state it expects and yields an empty plan.
* Exclusive things (the init claim, the control-plane lease) are fields of the one cluster record;
  two deciders racing for them both write it, and the versioned write lets exactly one win.
* Nothing waits: a step that cannot run yet leaves the node ``waiting`` (with ``not_before`` for
  backoff) and dispatch, run after every event batch and every reconciler tick, picks it up.
"""

from __future__ import annotations

from dataclasses import replace

from kcluster import contract
from kcluster.config import ClusterConfig
from kcluster.core import health, helpers, scale_in
from kcluster.core.models import (
    IN_FLIGHT_PHASES,
    ClusterState,
    ClusterView,
    CommandFinished,
    CommandRecord,
    CompleteLifecycle,
    Event,
    HealthReported,
    LifecycleLaunch,
    LifecycleTerminate,
    NodeProvisioned,
    NodeRecord,
    Note,
    Plan,
    ReplaceInstance,
    SendCommand,
    Step,
    bump,
)

# An agent that has not registered yet, or a missing marker, is retried after this long.
NOT_READY_BACKOFF_SECONDS = 30.0
# Backoff after a failed attempt grows with the attempt number.
FAILURE_BACKOFF_SECONDS = 20.0
# Results that say "try again later" without spending one of the node's attempts.
RETRYABLE_ERRORS = frozenset({"not-provisioned"})
# init failures the script reports before `kubeadm init` ran: the owner runs no control plane, so the
# claim may go to another control plane. Any other failure (kubeadm or a later step failed, a timeout,
# no result line at all) may have left a working control plane behind (init succeeded, then the CNI or
# publishing the join material failed): a second init elsewhere would start a second cluster. The
# owner keeps the claim and retries (the script is idempotent); once its attempts are spent it is
# abandoned, and the claim is released when its instance leaves (core/scale_in.py).
INIT_NOT_STARTED_ERRORS = frozenset({"invalid-parameter", "not-provisioned", "version-mismatch"})


def on_event(view: ClusterView, event: Event, config: ClusterConfig, now: float) -> Plan:
    if isinstance(event, LifecycleLaunch):
        return _on_launch(view, event, now)
    if isinstance(event, LifecycleTerminate):
        return scale_in.on_terminate(view, event, config, now)
    if isinstance(event, NodeProvisioned):
        return _on_provisioned(view, event, now)
    if isinstance(event, HealthReported):
        return health.on_report(view, event, now)
    return _on_command_finished(view, event, config, now)


# --- events ------------------------------------------------------------------------------------


def _on_launch(view: ClusterView, event: LifecycleLaunch, now: float) -> Plan:
    node = view.nodes.get(event.instance_id)
    if node is None:
        node = NodeRecord(
            instance_id=event.instance_id,
            role=event.role,
            created_at=now,
        )
    elif node.lifecycle_token == event.token and node.hook_name == event.hook_name:
        return Plan()  # duplicate delivery
    elif node.phase == "gone":
        # A new launch of an instance we saw leave: it is back from a warm pool (stopped, not
        # terminated). Its user data ran at first boot and will not run again, so it is provisioned;
        # the join scripts find what is still on its disk and do only what is missing.
        node = replace(
            NodeRecord(instance_id=event.instance_id, role=event.role, created_at=now),
            version=node.version,
            provisioned=event.origin == "WarmPool",
        )
    elif node.phase not in ("launching", "waiting") or node.terminate_hook_name:
        # A launch action for a node already past it: the event is late; the record knows better.
        return _note_only("info", "launch event for a node already in progress; ignored", node)
    updated = bump(
        node,
        now,
        asg_name=event.asg_name,
        hook_name=event.hook_name,
        lifecycle_token=event.token,
        lifecycle_started_at=node.lifecycle_started_at or now,
        last_heartbeat_at=node.last_heartbeat_at or now,
        phase="waiting" if node.provisioned else "launching",
    )
    return _single(updated, note=Note("info", "node launching", _fields(updated)))


def _on_provisioned(view: ClusterView, event: NodeProvisioned, now: float) -> Plan:
    node = view.nodes.get(event.instance_id)
    if node is None:
        # Provisioned overtook the launch event: remember it; the launch event (or the reconciler's
        # discovery of the Pending:Wait instance) supplies the hook.
        stub = bump(
            NodeRecord(instance_id=event.instance_id, role=event.role, created_at=now), now, provisioned=True
        )
        return _single(stub, note=Note("info", "node provisioned before its launch event", _fields(stub)))
    if node.provisioned:
        return Plan()
    phase = "waiting" if node.phase == "launching" and node.hook_name else node.phase
    updated = bump(node, now, provisioned=True, phase=phase)
    return _single(updated, note=Note("info", "node provisioned", _fields(updated)))


def _on_command_finished(
    view: ClusterView, event: CommandFinished, config: ClusterConfig, now: float
) -> Plan:
    command = view.commands.get(event.command_id)
    if command is None:
        # Either not ours, or the event overtook the write that records the command id.
        return Plan(deferred=f"command {event.command_id} not recorded (yet)")
    if command.document == contract.DOC_REFRESH_JOIN:
        return _on_refresh_finished(view, command, event, config, now)
    if command.document == contract.DOC_DRAIN_REMOVE:
        # Runs on a helper control plane, for the leaving node.
        leaving = view.nodes.get(command.for_instances[0])
        if leaving is None or leaving.command_id != command.command_id or leaving.phase != "draining":
            return Plan()
        return scale_in.on_drain_finished(view, leaving, event, config, now)
    node = view.nodes.get(event.instance_id)
    if node is None or node.command_id != event.command_id or node.phase not in IN_FLIGHT_PHASES:
        return Plan()  # late or duplicate: the node has moved on
    if event.status == "Success" and (event.result or {}).get("ok", True):
        return _on_step_succeeded(view, node, event, now)
    return _on_step_failed(view, node, _error_code(event), config, now)


def _on_refresh_finished(
    view: ClusterView, command: CommandRecord, event: CommandFinished, config: ClusterConfig, now: float
) -> Plan:
    beneficiaries = [
        node
        for iid in command.for_instances
        if (node := view.nodes.get(iid)) is not None
        and node.phase == "refreshing"
        and node.command_id == command.command_id
    ]
    if not beneficiaries:
        return Plan()
    ok = event.status == "Success" and (event.result or {}).get("ok", True)
    if not ok:
        # The control plane that ran it failed, not the joining nodes: back to waiting, with backoff,
        # and the lease (if a control plane held it) released so dispatch starts over cleanly.
        writes = [
            bump(
                n,
                now,
                phase="waiting",
                command_id=None,
                not_before=now + FAILURE_BACKOFF_SECONDS,
                last_error=f"refresh-join {_error_code(event)}",
            )
            for n in beneficiaries
        ]
        writes += helpers.cluster_after(
            view,
            release_lease_of=[n.instance_id for n in beneficiaries],
            helper=event.instance_id,
            helper_ok=False,
        )
        return Plan(
            (
                Step(
                    writes=tuple(writes),
                    notes=(
                        Note(
                            "error",
                            "refresh-join failed; joins will be retried",
                            {"command_id": command.command_id, "error": _error_code(event)},
                        ),
                    ),
                    metrics=(("RefreshJoinFailures", 1),),
                ),
            )
        )
    control_planes = [n for n in beneficiaries if n.is_control_plane]
    workers = [n for n in beneficiaries if not n.is_control_plane]
    trusted = helpers.cluster_after(view, helper=event.instance_id, helper_ok=True)
    steps = [Step(writes=trusted)] if trusted else []
    for node in control_planes:
        steps.append(_start_step(node, contract.DOC_JOIN_CONTROL_PLANE, (node.instance_id,), config, now))
    for start in range(0, len(workers), config.worker_batch_size):
        batch = workers[start : start + config.worker_batch_size]
        steps.append(_start_batch(batch, contract.DOC_JOIN_WORKER, config, now))
    return Plan(tuple(steps))


def _on_step_succeeded(view: ClusterView, node: NodeRecord, event: CommandFinished, now: float) -> Plan:
    result = event.result or {}
    updated = bump(
        node,
        now,
        phase="joined",
        command_id=None,
        node_name=result.get("node_name", node.node_name),
        last_error=None,
        not_before=None,
    )
    writes: list = [updated]
    notes = [Note("info", f"{node.step} succeeded", _fields(updated))]
    metrics = []
    actions: list = []
    if node.step == contract.DOC_INIT:
        writes.append(bump(view.cluster, phase="ready", init_owner=node.instance_id))
        notes.append(Note("info", "cluster initialized", {"epoch": view.cluster.epoch}))
        metrics.append(("ClusterInitialized", 1))
        stranded = _stranded_by_new_cluster(view, node)
        for other in stranded:
            writes.append(bump(other, now, phase="replacing", replace_requested_at=now))
            actions.append(ReplaceInstance(other.instance_id, "joined to a cluster that no longer exists"))
        if stranded:
            notes.append(
                Note(
                    "warning",
                    "nodes of the previous cluster epoch are replaced",
                    {"instance_ids": [n.instance_id for n in stranded], "epoch": view.cluster.epoch},
                )
            )
            metrics.append(("NodesReplaced", len(stranded)))
    elif node.is_control_plane:
        writes += _release_lease(view, [node])
    metrics.append(("NodesJoined", 1))
    complete = CompleteLifecycle(
        node.instance_id, node.asg_name or "", node.hook_name or "", node.lifecycle_token, "CONTINUE"
    )
    return Plan(
        (
            Step(
                writes=tuple(writes),
                actions=(complete, *actions),
                notes=tuple(notes),
                metrics=tuple(metrics),
            ),
        )
    )


def _stranded_by_new_cluster(view: ClusterView, owner: NodeRecord) -> list[NodeRecord]:
    """Nodes still recorded as joined when a new cluster epoch initializes: joins only happen into a
    ready cluster and a new init only into none, so they joined the previous one, whose control planes
    (and etcd) are gone. Their kubelets talk to nothing; replacing the instances is the clean way back."""
    return sorted(
        (n for n in view.nodes.values() if n.phase == "joined" and n.instance_id != owner.instance_id),
        key=lambda n: n.instance_id,
    )


def _on_step_failed(
    view: ClusterView, node: NodeRecord, error: str, config: ClusterConfig, now: float
) -> Plan:
    retryable = error in RETRYABLE_ERRORS
    attempts = node.attempts if retryable else node.attempts + 1
    writes: list = []
    if node.step == contract.DOC_INIT:
        if error in INIT_NOT_STARTED_ERRORS:
            writes.append(_release_init_claim(view))
    elif node.is_control_plane:
        writes += _release_lease(view, [node])
    fields = {**_fields(node), "error": error, "attempts": attempts}
    if attempts >= config.max_attempts:
        updated = bump(node, now, phase="abandoned", command_id=None, attempts=attempts, last_error=error)
        abandon = CompleteLifecycle(
            node.instance_id, node.asg_name or "", node.hook_name or "", node.lifecycle_token, "ABANDON"
        )
        return Plan(
            (
                Step(
                    writes=(updated, *writes),
                    actions=(abandon,),
                    notes=(
                        Note(
                            "error", f"{node.step} failed {attempts} times; abandoning the instance", fields
                        ),
                    ),
                    metrics=(("NodesAbandoned", 1),),
                ),
            )
        )
    backoff = NOT_READY_BACKOFF_SECONDS if retryable else FAILURE_BACKOFF_SECONDS * attempts
    updated = bump(
        node,
        now,
        phase="waiting",
        command_id=None,
        attempts=attempts,
        last_error=error,
        not_before=now + backoff,
    )
    return Plan(
        (
            Step(
                writes=(updated, *writes),
                notes=(Note("warning", f"{node.step} failed; will retry", fields),),
                metrics=(("StepFailures", 1),),
            ),
        )
    )


# --- outcomes of actions ---------------------------------------------------------------------


def on_command_sent(view: ClusterView, send: SendCommand, command_id: str, now: float) -> Plan:
    """Record the command id on the nodes it is for, and what the command is for."""
    if send.document == contract.DOC_HEALTH:
        return health.on_sent(view, command_id)
    record = bump(CommandRecord(command_id, send.document, send.targets, send.for_instances, sent_at=now))
    writes: list = [record]
    for iid in send.for_instances:
        node = view.nodes.get(iid)
        if node is not None and node.phase in IN_FLIGHT_PHASES | {"draining"} and node.command_id is None:
            writes.append(bump(node, now, command_id=command_id))
    return Plan((Step(writes=tuple(writes)),))


def on_send_failed(view: ClusterView, send: SendCommand, error_code: str, now: float) -> Plan:
    """SendCommand was refused (e.g. InvalidInstanceId: the agent has not registered yet)."""
    writes: list = []
    for iid in send.for_instances:
        node = view.nodes.get(iid)
        if node is None or node.phase not in IN_FLIGHT_PHASES | {"draining"} or node.command_id is not None:
            continue
        if node.phase == "draining":
            writes.append(
                bump(
                    node,
                    now,
                    phase="leaving",
                    not_before=now + NOT_READY_BACKOFF_SECONDS,
                    last_error=error_code,
                )
            )
            continue
        if node.step == contract.DOC_INIT:
            # Refused before it ran: nothing was started, another control plane may init.
            writes.append(_release_init_claim(view))
        writes.append(
            bump(
                node, now, phase="waiting", not_before=now + NOT_READY_BACKOFF_SECONDS, last_error=error_code
            )
        )
    involved = [view.nodes[i] for i in send.for_instances if i in view.nodes]
    writes += _release_lease(view, [n for n in involved if n.is_control_plane])
    if not writes:
        return Plan()
    note = Note(
        "warning",
        f"SendCommand {send.document} refused; will retry",
        {"error": error_code, "targets": list(send.targets)},
    )
    return Plan((Step(writes=tuple(writes), notes=(note,)),))


# --- dispatch: start whatever can start now ------------------------------------------------------


def dispatch(view: ClusterView, config: ClusterConfig, now: float) -> Plan:
    # Leaving nodes first: a control-plane removal takes the lease before a join can.
    leaving, view = scale_in.dispatch_leaving(view, config, now)
    return leaving + _dispatch_joins(view, config, now)


def _dispatch_joins(view: ClusterView, config: ClusterConfig, now: float) -> Plan:
    cluster = view.cluster
    waiting = sorted((n for n in view.nodes.values() if n.eligible(now)), key=_queue_order)
    if not waiting:
        return Plan()
    if cluster.phase == "uninitialized":
        candidates = [n for n in waiting if n.is_control_plane]
        if not candidates:
            return Plan()
        owner = min(candidates, key=lambda n: (n.attempts, n.created_at, n.instance_id))
        claimed = bump(
            cluster,
            phase="initializing",
            epoch=cluster.epoch + 1,
            init_owner=owner.instance_id,
            init_claimed_at=now,
        )
        step = _start_step(owner, contract.DOC_INIT, (owner.instance_id,), config, now)
        return Plan(
            (
                Step(
                    writes=(claimed, *step.writes),
                    actions=step.actions,
                    notes=(Note("info", "init claimed", {**_fields(owner), "epoch": claimed.epoch}),),
                ),
            )
        )
    if cluster.phase == "initializing":
        # Everyone else waits for the init; its owner, back to waiting after a failure, retries it.
        owner = view.nodes.get(cluster.init_owner or "")
        if owner is None or not owner.eligible(now):
            return Plan()
        retry = _start_step(owner, contract.DOC_INIT, (owner.instance_id,), config, now)
        note = Note("info", "init retried by its claim owner", {**_fields(owner), "attempts": owner.attempts})
        return Plan((replace(retry, notes=(note,)),))
    if cluster.phase != "ready":
        return Plan()
    helper = helpers.choose_helper(view, leaving_ok=True)
    if helper is None:
        return Plan()
    steps = []
    control_planes = [n for n in waiting if n.is_control_plane]
    if control_planes and cluster.lease_free(now):
        joiner = control_planes[0]
        leased = bump(
            cluster, lease_owner=joiner.instance_id, lease_expires_at=now + config.timeouts.lease_seconds
        )
        refresh = _refresh_step([joiner], helper, upload_certificates=True, config=config, now=now)
        steps.append(
            Step(
                writes=(leased, *refresh.writes),
                actions=refresh.actions,
                notes=(Note("info", "control-plane join lease taken", _fields(joiner)),),
            )
        )
    workers = [n for n in waiting if not n.is_control_plane]
    for start in range(0, len(workers), config.worker_batch_size):
        batch = workers[start : start + config.worker_batch_size]
        steps.append(_refresh_step(batch, helper, upload_certificates=False, config=config, now=now))
    return Plan(tuple(steps))


# --- helpers -----------------------------------------------------------------------------------------


def _queue_order(node: NodeRecord) -> tuple:
    return (node.created_at, node.instance_id)


def _document_parameters(document: str, config: ClusterConfig, *, upload_certificates: bool = False) -> dict:
    common = {"ClusterName": config.cluster_name}
    if document == contract.DOC_REFRESH_JOIN:
        return {
            **common,
            "TokenTtl": config.join_token_ttl,
            "UploadCertificates": "true" if upload_certificates else "false",
        }
    joining = {
        **common,
        "KubernetesVersion": config.kubernetes_version,
        "ControlPlaneEndpoint": config.control_plane_endpoint,
    }
    if document == contract.DOC_INIT:
        return {
            **joining,
            "PodCidr": config.pod_cidr,
            "ServiceCidr": config.service_cidr,
            "CniManifestUrl": config.cni.manifest_url,
        }
    return joining


def _timeout(document: str, config: ClusterConfig) -> int:
    timeouts = config.timeouts
    return {
        contract.DOC_INIT: timeouts.init_seconds,
        contract.DOC_REFRESH_JOIN: timeouts.refresh_seconds,
    }.get(document, timeouts.join_seconds)


def _start_step(
    node: NodeRecord, document: str, targets: tuple[str, ...], config: ClusterConfig, now: float
) -> Step:
    return _start_batch([node], document, config, now, targets=targets)


def _start_batch(
    nodes: list[NodeRecord],
    document: str,
    config: ClusterConfig,
    now: float,
    targets: tuple[str, ...] | None = None,
) -> Step:
    phase = {contract.DOC_INIT: "initializing"}.get(document, "joining")
    writes = tuple(
        bump(n, now, phase=phase, step=document, command_id=None, step_started_at=now, not_before=None)
        for n in nodes
    )
    ids = tuple(n.instance_id for n in nodes)
    send = SendCommand(
        document, targets or ids, _document_parameters(document, config), ids, _timeout(document, config)
    )
    return Step(writes=writes, actions=(send,))


def _refresh_step(
    nodes: list[NodeRecord], helper: str, *, upload_certificates: bool, config: ClusterConfig, now: float
) -> Step:
    writes = tuple(
        bump(
            n,
            now,
            phase="refreshing",
            step=contract.DOC_REFRESH_JOIN,
            command_id=None,
            step_started_at=now,
            not_before=None,
        )
        for n in nodes
    )
    send = SendCommand(
        contract.DOC_REFRESH_JOIN,
        (helper,),
        _document_parameters(contract.DOC_REFRESH_JOIN, config, upload_certificates=upload_certificates),
        tuple(n.instance_id for n in nodes),
        _timeout(contract.DOC_REFRESH_JOIN, config),
    )
    return Step(writes=writes, actions=(send,))


def _release_init_claim(view: ClusterView) -> ClusterState:
    return bump(view.cluster, phase="uninitialized", init_owner=None, init_claimed_at=None)


def _release_lease(view: ClusterView, nodes: list[NodeRecord]) -> list:
    holder = view.cluster.lease_owner
    if holder is not None and any(n.instance_id == holder for n in nodes):
        return [bump(view.cluster, lease_owner=None, lease_expires_at=None)]
    return []


def _error_code(event: CommandFinished) -> str:
    result = event.result or {}
    return str(result.get("error") or event.status)


def _fields(node: NodeRecord) -> dict:
    return {"instance_id": node.instance_id, "role": node.role, "phase": node.phase}


def _single(record, note: Note) -> Plan:
    return Plan((Step(writes=(record,), notes=(note,)),))


def _note_only(level, message: str, node: NodeRecord) -> Plan:
    return Plan((Step(notes=(Note(level, message, _fields(node)),)),))
