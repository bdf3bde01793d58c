"""The level-driven half: what the reconciler derives from the world each tick. Pure, like workflow.

Events make kcluster fast; this makes it correct when an event is lost, a function crashed between
two calls, or an instance was already waiting before the functions were deployed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kcluster import contract
from kcluster.config import ClusterConfig
from kcluster.core.models import (
    AsgInstance,
    Batch,
    ClusterView,
    CommandRecord,
    CompleteLifecycle,
    FoundCommand,
    LifecycleLaunch,
    LifecycleTerminate,
    Note,
    Plan,
    RecordHeartbeat,
    ReplaceInstance,
)
from kcluster.core.phases import COMMAND_PHASES, LEAVING_PHASES, NOT_STARTED_PHASES, SETTLED_PHASES

# A step marked in flight whose SendCommand never got recorded (the function died in between)
# is started again after this long.
UNSENT_STEP_SECONDS = 120.0
# Ask SSM directly about a command still in flight this long after it was sent (its event may be lost).
STATUS_CHECK_AFTER_SECONDS = 180.0
# At most this many direct status checks per tick, oldest first, so a tick stays bounded in time
# however many events were lost; the next tick takes the rest.
MAX_STATUS_CHECKS_PER_TICK = 100
# An instance marked Unhealthy that is still InService this long after is marked again.
REPLACE_RETRY_SECONDS = 120.0
# A node still "launching" this long after its launch event: its Provisioned event may be lost.
PROVISIONED_GRACE_SECONDS = 300.0


def discover_launches(
    view: ClusterView, instances: list[AsgInstance], config: ClusterConfig
) -> list[LifecycleLaunch]:
    """Instances waiting in Pending:Wait that we hold no record of (launch event lost, or launched
    before kcluster was deployed). Completed later by instance id, since we have no token."""
    launches = []
    for instance in instances:
        role = config.role_of(instance.asg_name)
        if role is None or instance.lifecycle_state != "Pending:Wait":
            continue
        node = view.nodes.get(instance.instance_id)
        if node is None or node.hook_name is None:
            launches.append(
                LifecycleLaunch(
                    instance.instance_id, instance.asg_name, role, config.lifecycle_hooks.launch, token=None
                )
            )
    return launches


def heartbeats(view: ClusterView, config: ClusterConfig, now: float) -> Plan:
    """Keep alive the lifecycle action of every node we are still working on: the launch action while
    it joins, the terminate action while it leaves. Settled nodes get none, so no heartbeat outlives
    the work (the orphaned heartbeat loops NTH users hit)."""
    interval = config.timeouts.heartbeat_interval_seconds
    batches = []
    for node in view.nodes.values():
        if node.phase in LEAVING_PHASES and node.terminate_hook_name:
            hook, token = node.terminate_hook_name, node.terminate_token
        elif node.hook_name is not None and node.phase not in SETTLED_PHASES | LEAVING_PHASES:
            hook, token = node.hook_name, node.lifecycle_token
        else:
            continue
        last = node.last_heartbeat_at or node.lifecycle_started_at or node.created_at
        if now - last < interval:
            continue
        heartbeat = RecordHeartbeat(node.instance_id, node.asg_name or "", hook, token)
        batches.append(Batch.of(node.heartbeat(now), actions=[heartbeat]))
    return Plan.of(*batches)


def stalled_replacements(view: ClusterView, instances: list[AsgInstance], now: float) -> Plan:
    """Instances marked for replacement that are still InService (the call was lost with a crashed
    invocation, or throttled): mark them again. SetInstanceHealth is idempotent."""
    in_service = {i.instance_id for i in instances if i.lifecycle_state == "InService"}
    batches = []
    for node in view.nodes.values():
        if node.replace_requested_at is None or node.instance_id not in in_service:
            continue
        if now - (node.replace_requested_at or 0.0) < REPLACE_RETRY_SECONDS:
            continue
        again = ReplaceInstance(node.instance_id, "still in service after being marked unhealthy")
        batches.append(Batch.of(node.replacement_requested(now), actions=[again]))
    return Plan.of(*batches)


@dataclass(frozen=True)
class UnsentStep:
    """A node in flight whose command id was never recorded: the function died between writing the step
    and recording SendCommand's answer, before or after SendCommand itself."""

    instance_id: str
    document: str
    started_at: float
    # Where to look for the command in SSM: the node itself (init, joins) or, for drain-remove, the
    # joined control planes that may have run it. Empty: not worth a look (refresh-join is cheap and
    # harmless to run again, and its command names no node).
    look_on: tuple[str, ...]


def unsent_candidates(view: ClusterView, now: float) -> list[UnsentStep]:
    found = []
    for node in sorted(view.nodes.values(), key=lambda n: n.instance_id):
        if node.phase not in COMMAND_PHASES or node.command_id is not None:
            continue
        if now - (node.step_started_at or now) < UNSENT_STEP_SECONDS:
            continue
        if node.step == contract.DOC_REFRESH_JOIN:
            look_on: tuple[str, ...] = ()
        elif node.step == contract.DOC_DRAIN_REMOVE:
            look_on = tuple(
                n.instance_id for n in view.joined_control_planes() if n.instance_id != node.instance_id
            )
        else:
            look_on = (node.instance_id,)
        found.append(UnsentStep(node.instance_id, node.step or "", node.step_started_at or now, look_on))
    return found


def sent_for(step: UnsentStep, commands: list[FoundCommand]) -> FoundCommand | None:
    """The command (newest first in `commands`) that was sent for `step`, if any: drain-remove names the
    leaving node in its InstanceId parameter; the other steps run on the node itself."""
    for command in commands:
        if step.document == contract.DOC_DRAIN_REMOVE:
            if command.parameters.get("InstanceId") == step.instance_id:
                return command
        elif step.instance_id in command.instance_ids:
            return command
    return None


def unsent_steps(view: ClusterView, now: float, sent: dict[str, FoundCommand] | None = None) -> Plan:
    """Re-drive steps whose command was never sent; adopt the command of those that were (`sent`: node
    -> the command SSM lists for its step), so a step that ran is never taken for one that did not."""
    candidates = [c for c in unsent_candidates(view, now) if c.instance_id in view.nodes]
    batches = []
    adopted: dict[str, list[UnsentStep]] = {}
    for candidate in candidates:
        command = (sent or {}).get(candidate.instance_id)
        if command is not None:
            adopted.setdefault(command.command_id, []).append(candidate)
            continue
        node = view.nodes[candidate.instance_id]
        # An init owner keeps its claim: dispatch sends init to it again (the script is idempotent).
        note = Note(
            "warning", "step was never sent; re-driving", {"instance_id": node.instance_id, "step": node.step}
        )
        batches.append(
            Batch.of(
                node.requeue(now, "step never sent"),
                view.cluster.lease_released_by([node.instance_id]),
                notes=[note],
            )
        )
    for command_id, found in adopted.items():
        command = (sent or {})[found[0].instance_id]
        record = CommandRecord.sent(
            command_id,
            found[0].document,
            command.instance_ids,
            tuple(c.instance_id for c in found),
            min(c.started_at for c in found),
        )
        nodes = [view.nodes[c.instance_id].command_sent(command_id, now) for c in found]
        note = Note(
            "warning",
            "step was sent but never recorded; following its command",
            {"command_id": command_id, "instance_ids": [c.instance_id for c in found]},
        )
        batches.append(Batch.of(record, *nodes, notes=[note]))
    return Plan.of(*batches)


def commands_to_check(view: ClusterView, now: float) -> list[tuple[str, str]]:
    """(command id, instance id) pairs whose status event is overdue: ask SSM directly."""
    overdue: dict[tuple[str, str], None] = {}  # ordered and without duplicates
    in_flight = sorted(view.nodes.values(), key=lambda n: (n.step_started_at or 0, n.instance_id))
    for node in in_flight:
        if node.phase not in COMMAND_PHASES or node.command_id is None:
            continue
        command = view.commands.get(node.command_id)
        if now - (node.step_started_at or now) < STATUS_CHECK_AFTER_SECONDS:
            continue
        # A join runs on the node itself; refresh-join and drain-remove run on a helper control plane.
        runs_on = command.targets if command is not None and node.instance_id not in command.targets else ()
        for target in runs_on or (node.instance_id,):
            overdue[(node.command_id, target)] = None
    return list(overdue)[:MAX_STATUS_CHECKS_PER_TICK]


def unannounced_provisioning(view: ClusterView, now: float) -> list[str]:
    """Launching nodes whose Provisioned event is overdue; the shell checks their SSM agent."""
    return [
        node.instance_id
        for node in view.nodes.values()
        if node.phase in NOT_STARTED_PHASES
        and not node.provisioned
        and node.hook_name is not None
        and now - (node.lifecycle_started_at or node.created_at) >= PROVISIONED_GRACE_SECONDS
    ]


def expired_lease(view: ClusterView, now: float) -> Plan:
    cluster = view.cluster
    if cluster.lease_owner is None or (cluster.lease_expires_at or 0) > now:
        return Plan()
    holder = view.nodes.get(cluster.lease_owner)
    if holder is not None and holder.phase in COMMAND_PHASES:
        return Plan()  # still working; the step's own timeout will release it
    note = Note("warning", "control-plane lease expired; released", {"holder": cluster.lease_owner})
    return Plan.one(cluster.release_lease(), notes=[note])


def unfinished_lifecycle(
    view: ClusterView, instances: list[AsgInstance], config: ClusterConfig
) -> tuple[Plan, list[LifecycleTerminate]]:
    """Lifecycle actions Auto Scaling still waits on although our records are past them: the function
    died (or was throttled) between writing the record and completing the action, or the terminate
    event never arrived. Completing by instance id is idempotent; a terminate we never saw is decided
    like any other."""
    actions: list[CompleteLifecycle] = []
    terminates: list[LifecycleTerminate] = []
    hooks = config.lifecycle_hooks
    for instance in instances:
        role = config.role_of(instance.asg_name)
        node = view.nodes.get(instance.instance_id)
        if role is None:
            continue
        if (
            instance.lifecycle_state == "Pending:Wait"
            and node is not None
            and node.phase in ("joined", "abandoned")
        ):
            result: Literal["CONTINUE", "ABANDON"] = "CONTINUE" if node.phase == "joined" else "ABANDON"
            actions.append(
                CompleteLifecycle(instance.instance_id, instance.asg_name, hooks.launch, None, result)
            )
        elif instance.lifecycle_state == "Terminating:Wait":
            if node is not None and node.phase == "gone":
                actions.append(
                    CompleteLifecycle(
                        instance.instance_id, instance.asg_name, hooks.terminate, None, "CONTINUE"
                    )
                )
            elif node is None or node.terminate_hook_name is None:
                terminates.append(
                    LifecycleTerminate(instance.instance_id, instance.asg_name, role, hooks.terminate, None)
                )
    notes = tuple(
        Note(
            "warning",
            "completing a lifecycle action our records are already past",
            {"instance_id": a.instance_id},
        )
        for a in actions
    )
    return (Plan.one(actions=actions, notes=notes) if actions else Plan()), terminates
