"""The level-driven half: what the reconciler derives from the world each tick. Pure, like workflow.

Events make kcluster fast; this makes it correct when an event is lost, a function crashed between
two calls, or an instance was already waiting before the functions were deployed.
"""

from __future__ import annotations

from dataclasses import dataclass

from kcluster.config import ClusterConfig
from kcluster.core.models import (
    IN_FLIGHT_PHASES,
    LEAVING_PHASES,
    SETTLED_PHASES,
    WAITING_PHASES,
    ClusterView,
    CompleteLifecycle,
    LifecycleLaunch,
    LifecycleTerminate,
    Note,
    Plan,
    RecordHeartbeat,
    Step,
    bump,
)

# A step marked in flight whose SendCommand never got recorded (the function died in between)
# is started again after this long.
UNSENT_STEP_SECONDS = 120.0
# Ask SSM directly about a command still in flight this long after it was sent (its event may be lost).
STATUS_CHECK_AFTER_SECONDS = 180.0
# At most this many direct status checks per tick, oldest first, so a tick stays bounded in time
# however many events were lost; the next tick takes the rest.
MAX_STATUS_CHECKS_PER_TICK = 100
# A node still "launching" this long after its launch event: its Provisioned event may be lost.
PROVISIONED_GRACE_SECONDS = 300.0


@dataclass(frozen=True)
class AsgInstance:
    instance_id: str
    asg_name: str
    lifecycle_state: str


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
    steps = []
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
        updated = bump(node, now, last_heartbeat_at=now)
        heartbeat = RecordHeartbeat(node.instance_id, node.asg_name or "", hook, token)
        steps.append(Step(writes=(updated,), actions=(heartbeat,)))
    return Plan(tuple(steps))


def unsent_steps(view: ClusterView, now: float) -> Plan:
    """In-flight nodes whose command id was never recorded: put them back to waiting."""
    steps = []
    for node in view.nodes.values():
        if node.phase not in IN_FLIGHT_PHASES | {"draining"} or node.command_id is not None:
            continue
        if now - (node.step_started_at or now) < UNSENT_STEP_SECONDS:
            continue
        back = "leaving" if node.phase == "draining" else "waiting"
        writes: list = [bump(node, now, phase=back, last_error="step never sent")]
        cluster = view.cluster
        # An init owner keeps its claim: the send may have happened, and init may be running. It is
        # back to waiting, and dispatch sends init to it again (the script is idempotent).
        if cluster.lease_owner == node.instance_id:
            writes.append(bump(cluster, lease_owner=None, lease_expires_at=None))
        steps.append(
            Step(
                writes=tuple(writes),
                notes=(
                    Note(
                        "warning",
                        "step was never sent; re-driving",
                        {"instance_id": node.instance_id, "step": node.step},
                    ),
                ),
            )
        )
    return Plan(tuple(steps))


def commands_to_check(view: ClusterView, now: float) -> list[tuple[str, str]]:
    """(command id, instance id) pairs whose status event is overdue: ask SSM directly."""
    overdue: dict[tuple[str, str], None] = {}  # ordered and without duplicates
    in_flight = sorted(view.nodes.values(), key=lambda n: (n.step_started_at or 0, n.instance_id))
    for node in in_flight:
        if node.phase not in IN_FLIGHT_PHASES | {"draining"} or node.command_id is None:
            continue
        command = view.commands.get(node.command_id)
        if now - (node.step_started_at or now) < STATUS_CHECK_AFTER_SECONDS:
            continue
        # A join runs on the node itself; refresh-join and drain-remove run on a helper control plane.
        runs_on_node = command is None or node.instance_id in command.targets
        for target in (node.instance_id,) if runs_on_node else command.targets:
            overdue[(node.command_id, target)] = None
    return list(overdue)[:MAX_STATUS_CHECKS_PER_TICK]


def unannounced_provisioning(view: ClusterView, now: float) -> list[str]:
    """Launching nodes whose Provisioned event is overdue; the shell checks their SSM agent."""
    return [
        node.instance_id
        for node in view.nodes.values()
        if node.phase in WAITING_PHASES
        and not node.provisioned
        and node.hook_name is not None
        and now - (node.lifecycle_started_at or node.created_at) >= PROVISIONED_GRACE_SECONDS
    ]


def expired_lease(view: ClusterView, now: float) -> Plan:
    cluster = view.cluster
    if cluster.lease_owner is None or (cluster.lease_expires_at or 0) > now:
        return Plan()
    holder = view.nodes.get(cluster.lease_owner)
    if holder is not None and holder.phase in IN_FLIGHT_PHASES | {"draining"}:
        return Plan()  # still working; the step's own timeout will release it
    released = bump(cluster, lease_owner=None, lease_expires_at=None)
    return Plan(
        (
            Step(
                writes=(released,),
                notes=(
                    Note("warning", "control-plane lease expired; released", {"holder": cluster.lease_owner}),
                ),
            ),
        )
    )


def unfinished_lifecycle(
    view: ClusterView, instances: list[AsgInstance], config: ClusterConfig
) -> tuple[Plan, list[LifecycleTerminate]]:
    """Lifecycle actions Auto Scaling still waits on although our records are past them: the function
    died (or was throttled) between writing the record and completing the action, or the terminate
    event never arrived. Completing by instance id is idempotent; a terminate we never saw is decided
    like any other."""
    actions: list = []
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
            result = "CONTINUE" if node.phase == "joined" else "ABANDON"
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
    return Plan((Step(actions=tuple(actions), notes=notes),) if actions else ()), terminates
