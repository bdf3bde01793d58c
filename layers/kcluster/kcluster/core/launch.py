"""The launch policy as pure functions: a launch lifecycle action -> init or join, one step at a time.

Rules (DESIGN.md section 5):
* The first control plane of an epoch claims init (a conditional write of the cluster record, so
  exactly one wins); the others wait for the cluster to be ready.
* Control planes join one at a time under the lease, each after a `refresh-join` (new token and
  certificate key) on a helper control plane; workers join in batches, in parallel.
* A failed step is retried with backoff, then the instance is abandoned (launch action ABANDON) so the
  ASG replaces it. What an init failure leaves behind decides whether its claim is released.
"""

from __future__ import annotations

from typing import assert_never

from kcluster import contract
from kcluster.config import ClusterConfig
from kcluster.core import backup, helper_control_plane
from kcluster.core.models import (
    Action,
    Batch,
    ClusterState,
    ClusterView,
    CommandFinished,
    CommandRecord,
    CompleteLifecycle,
    DeregisterApiTarget,
    LifecycleLaunch,
    Metric,
    NodeProvisioned,
    NodeRecord,
    Note,
    Plan,
    RegisterApiTarget,
    ReplaceInstance,
    SendCommand,
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


# --- events ------------------------------------------------------------------------------------


def on_launch(view: ClusterView, event: LifecycleLaunch, now: float) -> Plan:
    node = view.nodes.get(event.instance_id)
    if node is None:
        node = NodeRecord(instance_id=event.instance_id, role=event.role, created_at=now)
    elif node.lifecycle_token == event.token and node.hook_name == event.hook_name:
        return Plan()  # duplicate delivery
    elif node.phase == "gone":
        # A new launch of an instance we saw leave: it is back from a warm pool (stopped, not
        # terminated). Its user data ran at first boot and will not run again, so it is provisioned;
        # the join scripts find what is still on its disk and do only what is missing.
        node = node.relaunched(event.role, now, provisioned=event.origin == "WarmPool")
    elif node.phase not in ("launching", "waiting") or node.terminate_hook_name:
        # A launch action for a node already past it: the event is late; the record knows better.
        return Plan.note("info", "launch event for a node already in progress; ignored", fields(node))
    updated = node.launch_pending(event.asg_name, event.hook_name, event.token, now)
    return Plan.one(updated, notes=[Note("info", "node launching", fields(updated))])


def on_provisioned(view: ClusterView, event: NodeProvisioned, now: float) -> Plan:
    node = view.nodes.get(event.instance_id)
    if node is None:
        # Provisioned overtook the launch event: remember it; the launch event (or the reconciler's
        # discovery of the Pending:Wait instance) supplies the hook.
        stub = NodeRecord(instance_id=event.instance_id, role=event.role, created_at=now).mark_provisioned(
            now
        )
        return Plan.one(stub, notes=[Note("info", "node provisioned before its launch event", fields(stub))])
    if node.provisioned:
        return Plan()
    updated = node.mark_provisioned(now)
    return Plan.one(updated, notes=[Note("info", "node provisioned", fields(updated))])


def on_refresh_finished(
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
    if not succeeded(event):
        # The control plane that ran it failed, not the joining nodes: back to waiting, with backoff,
        # and the lease (if a control plane held it) released so dispatch starts over cleanly.
        error = error_code(event)
        requeued = [
            n.requeue(now, f"refresh-join {error}", backoff=FAILURE_BACKOFF_SECONDS) for n in beneficiaries
        ]
        cluster = view.cluster.after_helper_command(
            event.instance_id, False, release_lease_of=[n.instance_id for n in beneficiaries]
        )
        note = Note(
            "error",
            "refresh-join failed; joins will be retried",
            {"command_id": command.command_id, "error": error},
        )
        return Plan.one(*requeued, cluster, notes=[note], metrics=[Metric("RefreshJoinFailures")])
    trusted = view.cluster.trust_helper(event.instance_id)
    batches = [Batch.of(trusted)] if trusted else []
    for node in beneficiaries:
        if node.is_control_plane:
            batches.append(start_document([node], contract.DOC_JOIN_CONTROL_PLANE, config, now))
    workers = [n for n in beneficiaries if not n.is_control_plane]
    for batch in _in_batches(workers, config.worker_batch_size):
        batches.append(start_document(batch, contract.DOC_JOIN_WORKER, config, now))
    return Plan.of(*batches)


def on_step_finished(
    view: ClusterView, node: NodeRecord, event: CommandFinished, config: ClusterConfig, now: float
) -> Plan:
    """init or a join, run on the node itself, finished."""
    if succeeded(event):
        return _on_step_succeeded(view, node, event, now)
    return _on_step_failed(view, node, error_code(event), config, now)


def _on_step_succeeded(view: ClusterView, node: NodeRecord, event: CommandFinished, now: float) -> Plan:
    joined = node.joined(now, (event.result or {}).get("node_name", node.node_name))
    complete = CompleteLifecycle(
        node.instance_id, node.asg_name or "", node.hook_name or "", node.lifecycle_token, "CONTINUE"
    )
    succeeded_note = Note("info", f"{node.step} succeeded", fields(joined))
    if node.step == contract.DOC_INIT:
        ready = _cluster_initialized(view, node, now)
        return Plan.one(
            joined,
            *ready.writes,
            actions=[complete, *ready.actions],
            notes=[succeeded_note, *ready.notes],
            metrics=[*ready.metrics, Metric("NodesJoined")],
        )
    released = view.cluster.lease_released_by([node.instance_id]) if node.is_control_plane else None
    return Plan.one(
        joined, released, actions=[complete], notes=[succeeded_note], metrics=[Metric("NodesJoined")]
    )


def _cluster_initialized(view: ClusterView, owner: NodeRecord, now: float) -> Batch:
    """The cluster is ready; nodes still recorded as joined are of the previous epoch: joins only
    happen into a ready cluster and a new init only into none, so they joined the previous one, whose
    control planes (and etcd) are gone. Their kubelets talk to nothing; replacing the instances is the
    clean way back."""
    stranded = sorted(
        (n for n in view.nodes.values() if n.phase == "joined" and n.instance_id != owner.instance_id),
        key=lambda n: n.instance_id,
    )
    notes = [Note("info", "cluster initialized", {"epoch": view.cluster.epoch})]
    metrics = [Metric("ClusterInitialized")]
    if stranded:
        notes.append(
            Note(
                "warning",
                "nodes of the previous cluster epoch are replaced",
                {"instance_ids": [n.instance_id for n in stranded], "epoch": view.cluster.epoch},
            )
        )
        metrics.append(Metric("NodesReplaced", len(stranded)))
    return Batch.of(
        view.cluster.initialized(owner.instance_id),
        *(n.stranded(now) for n in stranded),
        actions=[
            ReplaceInstance(n.instance_id, "joined to a cluster that no longer exists") for n in stranded
        ],
        notes=notes,
        metrics=metrics,
    )


def _on_step_failed(
    view: ClusterView, node: NodeRecord, error: str, config: ClusterConfig, now: float
) -> Plan:
    retryable = error in RETRYABLE_ERRORS
    attempts = node.attempts if retryable else node.attempts + 1
    init_released = node.step == contract.DOC_INIT and error in INIT_NOT_STARTED_ERRORS
    if node.step == contract.DOC_INIT:
        cluster = view.cluster.release_init() if init_released else None
    else:
        cluster = view.cluster.lease_released_by([node.instance_id]) if node.is_control_plane else None
    failure = {**fields(node), "error": error, "attempts": attempts}
    if attempts >= config.max_attempts:
        # An abandoned instance terminates, and Auto Scaling deregisters it from the API target group.
        abandon = CompleteLifecycle(
            node.instance_id, node.asg_name or "", node.hook_name or "", node.lifecycle_token, "ABANDON"
        )
        return Plan.one(
            node.abandon(now, error, attempts),
            cluster,
            actions=[abandon],
            notes=[Note("error", f"{node.step} failed {attempts} times; abandoning the instance", failure)],
            metrics=[Metric("NodesAbandoned")],
        )
    backoff = NOT_READY_BACKOFF_SECONDS if retryable else FAILURE_BACKOFF_SECONDS * attempts
    return Plan.one(
        node.requeue(now, error, backoff=backoff, attempts=attempts),
        cluster,
        actions=_api_target_withdrawn([node], config) if init_released else [],
        notes=[Note("warning", f"{node.step} failed; will retry", failure)],
        metrics=[Metric("StepFailures")],
    )


def on_send_failed(
    view: ClusterView,
    nodes: list[NodeRecord],
    send: SendCommand,
    error: str,
    config: ClusterConfig,
    now: float,
) -> Batch:
    """SendCommand of a launch-side document was refused for `nodes` (e.g. InvalidInstanceId: the agent
    has not registered yet): back to waiting, and whatever the refused step held released."""
    cluster: ClusterState | None
    withdrawn: list[Action] = []
    if any(n.step == contract.DOC_INIT for n in nodes):
        # Refused before it ran: nothing was started, another control plane may init.
        cluster = view.cluster.release_init()
        withdrawn = _api_target_withdrawn([n for n in nodes if n.step == contract.DOC_INIT], config)
    else:
        involved = [view.nodes[i] for i in send.for_instances if i in view.nodes]
        cluster = view.cluster.lease_released_by(n.instance_id for n in involved if n.is_control_plane)
    requeued = [n.requeue(now, error, backoff=NOT_READY_BACKOFF_SECONDS) for n in nodes]
    return Batch.of(*requeued, cluster, actions=withdrawn)


# --- dispatch: start whatever can start now ------------------------------------------------------


def dispatch_joins(view: ClusterView, config: ClusterConfig, now: float) -> Plan:
    waiting = sorted(
        (n for n in view.nodes.values() if n.eligible(now)), key=lambda n: (n.created_at, n.instance_id)
    )
    if not waiting:
        return Plan()
    match view.cluster.phase:
        case "uninitialized":
            return _claim_init(view, waiting, config, now)
        case "initializing":
            return _retry_init(view, config, now)
        case "ready":
            return _start_joins(view, waiting, config, now)
        case unexpected:
            assert_never(unexpected)


def _claim_init(view: ClusterView, waiting: list[NodeRecord], config: ClusterConfig, now: float) -> Plan:
    candidates = [n for n in waiting if n.is_control_plane]
    if not candidates:
        return Plan()
    owner = min(candidates, key=lambda n: (n.attempts, n.created_at, n.instance_id))
    claimed = view.cluster.claim_init(owner.instance_id, now)
    init = start_document([owner], contract.DOC_INIT, config, now)
    note = Note("info", "init claimed", {**fields(owner), "epoch": claimed.epoch})
    return Plan.one(claimed, *init.writes, actions=init.actions, notes=[note])


def _retry_init(view: ClusterView, config: ClusterConfig, now: float) -> Plan:
    """Everyone else waits for the init; its owner, back to waiting after a failure, retries it."""
    owner = view.nodes.get(view.cluster.init_owner or "")
    if owner is None or not owner.eligible(now):
        return Plan()
    retry = start_document([owner], contract.DOC_INIT, config, now)
    note = Note("info", "init retried by its claim owner", {**fields(owner), "attempts": owner.attempts})
    return Plan.one(*retry.writes, actions=retry.actions, notes=[note])


def _start_joins(view: ClusterView, waiting: list[NodeRecord], config: ClusterConfig, now: float) -> Plan:
    helper = helper_control_plane.choose(view, leaving_ok=True)
    if helper is None:
        return Plan()
    batches = []
    control_planes = [n for n in waiting if n.is_control_plane]
    if (
        control_planes
        and view.control_plane_change_allowed(control_planes[0].instance_id, now)
        and backup.change_of_node_may_proceed(view, control_planes[0], config, now)
    ):
        joiner = control_planes[0]
        leased = view.cluster.take_lease(joiner.instance_id, now + config.timeouts.lease_seconds)
        refresh = _refresh([joiner], helper, upload_certificates=True, config=config, now=now)
        note = Note("info", "control-plane join lease taken", fields(joiner))
        batches.append(Batch.of(leased, *refresh.writes, actions=refresh.actions, notes=[note]))
    workers = [n for n in waiting if not n.is_control_plane]
    for batch in _in_batches(workers, config.worker_batch_size):
        batches.append(_refresh(batch, helper, upload_certificates=False, config=config, now=now))
    return Plan.of(*batches)


def _in_batches(workers: list[NodeRecord], size: int) -> list[list[NodeRecord]]:
    """Workers join in batches of `size`: one SendCommand each (SSM takes up to 50 targets)."""
    return [workers[start : start + size] for start in range(0, len(workers), size)]


# --- starting documents ----------------------------------------------------------------------------


def start_document(nodes: list[NodeRecord], document: str, config: ClusterConfig, now: float) -> Batch:
    """init or a join, run on the nodes themselves. init's node is first made a target of the endpoint
    it initializes behind (kubeadm's HA guide adds the first control plane to the load balancer before
    init); joins need no such step: they reach the control planes already in service, and a joined
    control plane becomes a target when Auto Scaling completes its launch action."""
    ids = tuple(n.instance_id for n in nodes)
    send = SendCommand(document, ids, _parameters(document, config), ids, _timeout(document, config))
    registered = _api_target_added(nodes, config) if document == contract.DOC_INIT else []
    return Batch.of(*(n.start_document(document, now) for n in nodes), actions=[*registered, send])


def _api_target_added(nodes: list[NodeRecord], config: ClusterConfig) -> list[Action]:
    arn = config.api_target_group_arn
    return [RegisterApiTarget(n.instance_id, arn) for n in nodes] if arn else []


def _api_target_withdrawn(nodes: list[NodeRecord], config: ClusterConfig) -> list[Action]:
    arn = config.api_target_group_arn
    return [DeregisterApiTarget(n.instance_id, arn) for n in nodes] if arn else []


def _refresh(
    nodes: list[NodeRecord], helper: str, *, upload_certificates: bool, config: ClusterConfig, now: float
) -> Batch:
    """refresh-join on the helper control plane, for the nodes about to join."""
    document = contract.DOC_REFRESH_JOIN
    parameters = {
        "ClusterName": config.cluster_name,
        "TokenTtl": config.join_token_ttl,
        "UploadCertificates": "true" if upload_certificates else "false",
    }
    ids = tuple(n.instance_id for n in nodes)
    send = SendCommand(document, (helper,), parameters, ids, config.timeouts.refresh_seconds)
    return Batch.of(*(n.start_document(document, now) for n in nodes), actions=[send])


def _parameters(document: str, config: ClusterConfig) -> dict[str, str]:
    joining = {
        "ClusterName": config.cluster_name,
        "KubernetesVersion": config.kubernetes_version,
        "ControlPlaneEndpoint": config.control_plane_endpoint,
    }
    if document != contract.DOC_INIT:
        return joining
    return {
        **joining,
        "PodCidr": config.pod_cidr,
        "ServiceCidr": config.service_cidr,
        "CniManifestUrl": config.cni.manifest_url,
    }


def _timeout(document: str, config: ClusterConfig) -> int:
    return config.timeouts.init_seconds if document == contract.DOC_INIT else config.timeouts.join_seconds


# --- reading results -------------------------------------------------------------------------------


def succeeded(event: CommandFinished) -> bool:
    """The command succeeded and its result line, if it printed one, says ok."""
    return event.status == "Success" and bool((event.result or {}).get("ok", True))


def error_code(event: CommandFinished) -> str:
    result = event.result or {}
    return str(result.get("error") or event.status)


def fields(node: NodeRecord) -> dict[str, object]:
    return {"instance_id": node.instance_id, "role": node.role, "phase": node.phase}
