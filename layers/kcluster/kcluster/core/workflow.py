"""Event routing: every event the core understands, and every outcome of a SendCommand, to the policy
that decides it. Pure: (stored view, event or outcome, config, now) -> Plan.

Nothing here touches AWS. The shell (kcluster.service) loads the view, calls one of these, writes each
Batch's records with conditional writes and only then runs the Batch's actions, feeding their outcomes
back through ``on_command_sent`` / ``on_send_failed``.

Why it is shaped like this:
* Every transition is idempotent: a duplicate, late or reordered event finds the record already past
  the state it expects and yields an empty plan.
* Exclusive things (the init claim, the control-plane lease) are fields of the one cluster record;
  two deciders racing for them both write it, and the versioned write lets exactly one win.
* Nothing waits: a step that cannot run yet leaves the node ``waiting`` (with ``not_before`` for
  backoff) and dispatch, run after every event batch and every reconciler tick, picks it up.

The policies: core/launch.py (init and joins), core/scale_in.py (drain and remove), core/health.py
(the health probe), core/backup.py (etcd backups).
"""

from __future__ import annotations

from typing import assert_never

from kcluster import contract
from kcluster.config import ClusterConfig
from kcluster.core import backup, health, launch, scale_in
from kcluster.core.models import (
    BackupReported,
    Batch,
    ClusterView,
    CommandFinished,
    CommandRecord,
    Event,
    HealthReported,
    LifecycleLaunch,
    LifecycleTerminate,
    NodeProvisioned,
    Note,
    Plan,
    SendCommand,
)
from kcluster.core.phases import COMMAND_PHASES, JOIN_COMMAND_PHASES


def on_event(view: ClusterView, event: Event, config: ClusterConfig, now: float) -> Plan:
    match event:
        case LifecycleLaunch():
            return launch.on_launch(view, event, now)
        case LifecycleTerminate():
            return scale_in.on_terminate(view, event, config, now)
        case NodeProvisioned():
            return launch.on_provisioned(view, event, now)
        case HealthReported():
            return health.on_report(view, event, now)
        case BackupReported():
            return backup.on_report(view, event, now)
        case CommandFinished():
            return _on_command_finished(view, event, config, now)
        case _:
            assert_never(event)


def _on_command_finished(
    view: ClusterView, event: CommandFinished, config: ClusterConfig, now: float
) -> Plan:
    command = view.commands.get(event.command_id)
    if command is None:
        # Either not ours, or the event overtook the write that records the command id.
        return Plan(deferred=f"command {event.command_id} not recorded (yet)")
    if command.document == contract.DOC_REFRESH_JOIN:
        return launch.on_refresh_finished(view, command, event, config, now)
    if command.document == contract.DOC_DRAIN_REMOVE:
        # Runs on a helper control plane, for the leaving node.
        leaving = view.nodes.get(command.for_instances[0])
        if leaving is None or leaving.command_id != command.command_id or leaving.phase != "draining":
            return Plan()
        return scale_in.on_drain_finished(view, leaving, event, config, now)
    node = view.nodes.get(event.instance_id)
    if node is None or node.command_id != event.command_id or node.phase not in JOIN_COMMAND_PHASES:
        return Plan()  # late or duplicate: the node has moved on
    return launch.on_step_finished(view, node, event, config, now)


# --- outcomes of actions ---------------------------------------------------------------------


def on_command_sent(view: ClusterView, send: SendCommand, command_id: str, now: float) -> Plan:
    """Record the command id on the nodes it is for, and what the command is for."""
    if send.document == contract.DOC_HEALTH:
        return health.on_sent(view, command_id)
    if send.document == contract.DOC_BACKUP:
        return backup.on_sent(view, command_id)
    record = CommandRecord.sent(command_id, send.document, send.targets, send.for_instances, now)
    nodes = [
        node.command_sent(command_id, now)
        for iid in send.for_instances
        if (node := view.nodes.get(iid)) is not None
        and node.phase in COMMAND_PHASES
        and node.command_id is None
    ]
    return Plan.one(record, *nodes)


def on_send_failed(
    view: ClusterView, send: SendCommand, error_code: str, config: ClusterConfig, now: float
) -> Plan:
    """SendCommand was refused (e.g. InvalidInstanceId: the agent has not registered yet)."""
    if send.document == contract.DOC_BACKUP:
        return backup.on_send_failed(view, error_code, now)
    waiting_on_it = [
        node
        for iid in send.for_instances
        if (node := view.nodes.get(iid)) is not None
        and node.phase in COMMAND_PHASES
        and node.command_id is None
    ]
    leaving = [n for n in waiting_on_it if n.phase == "draining"]
    joining = [n for n in waiting_on_it if n.phase != "draining"]
    joins_refused = launch.on_send_failed(view, joining, send, error_code, config, now)
    refused = Batch.of(*scale_in.on_send_failed(leaving, error_code, now).writes, *joins_refused.writes)
    if not refused.writes:
        return Plan()
    note = Note(
        "warning",
        f"SendCommand {send.document} refused; will retry",
        {"error": error_code, "targets": list(send.targets)},
    )
    return Plan.one(*refused.writes, actions=joins_refused.actions, notes=[note])


# --- dispatch: start whatever can start now ------------------------------------------------------


def dispatch(view: ClusterView, config: ClusterConfig, now: float) -> Plan:
    # Leaving nodes first: a control-plane removal takes the lease before a join can.
    leaving, view = scale_in.dispatch_leaving(view, config, now)
    return leaving + launch.dispatch_joins(view, config, now)
