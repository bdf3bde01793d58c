"""Whether an event is believed: its claim checked against what Auto Scaling says. Pure.

Anyone who may put events on the bus (every node may put ``kcluster.node`` events) or send to the
queue could otherwise make kcluster record a control plane that does not exist or drain a joined node.
So an event about an instance is believed only when Auto Scaling lists that instance in one of the
cluster's groups, in the lifecycle state the event implies; the role always comes from the group,
never from the event. The shell looks the instances up (DescribeAutoScalingInstances, batched) and
hands the result here; what is not believed is dropped with a warning (the reconciler, which reads the
world itself, makes a wrongly dropped event harmless).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypeGuard, assert_never

from kcluster.config import ClusterConfig
from kcluster.core.models import AsgInstance, Event, LifecycleLaunch, LifecycleTerminate, NodeProvisioned

# A launch action is pending only while the instance waits on the launch hook.
LAUNCH_STATES = frozenset({"Pending:Wait"})
# A terminate action is pending (or just completed) while the instance is terminating.
TERMINATE_STATES = frozenset({"Terminating", "Terminating:Wait", "Terminating:Proceed"})
# An instance going back to a warm pool on scale-in waits in these instead.
WARM_POOL_RETURN_STATES = frozenset({"Warmed:Pending:Wait", "Warmed:Pending:Proceed"})
# Instances Auto Scaling has let go are not nodes any more, whatever a node says.
GONE_STATES = frozenset({"Terminated", "Detached", "Detaching", "Warmed:Terminated"})


@dataclass(frozen=True)
class Disbelieved:
    """The event's claim does not match the world; the reason is fit for a log line."""

    instance_id: str
    reason: str


# The events that make a claim about an instance.
ClaimEvent = LifecycleLaunch | LifecycleTerminate | NodeProvisioned


def needs_check(event: Event) -> TypeGuard[ClaimEvent]:
    """Events whose claim about an instance must be checked against Auto Scaling before acting."""
    return isinstance(event, LifecycleLaunch | LifecycleTerminate | NodeProvisioned)


def verdict(event: Event, seen: AsgInstance | None, config: ClusterConfig) -> Event | Disbelieved:
    """The event to act on (its role taken from the group), or why it is not believed.

    `seen` is what Auto Scaling lists for the event's instance (None when it lists nothing)."""
    if not needs_check(event):
        return event
    instance_id = event.instance_id
    if seen is None:
        return Disbelieved(instance_id, "Auto Scaling lists no such instance")
    role = config.role_of(seen.asg_name)
    if role is None:
        return Disbelieved(instance_id, f"instance is in group {seen.asg_name!r}, not one of the cluster's")
    return _checked_state(event, seen, role)


def _checked_state(event: ClaimEvent, seen: AsgInstance, role: str) -> Event | Disbelieved:
    """The event if the instance is in the lifecycle state the event implies."""
    instance_id = event.instance_id
    match event:
        case NodeProvisioned():
            if seen.lifecycle_state in GONE_STATES:
                return Disbelieved(instance_id, f"instance is {seen.lifecycle_state}")
            return replace(event, role=role)
        case LifecycleLaunch() | LifecycleTerminate() if event.asg_name != seen.asg_name:
            return Disbelieved(
                instance_id, f"event names group {event.asg_name!r}, instance is in {seen.asg_name!r}"
            )
        case LifecycleLaunch():
            if seen.lifecycle_state not in LAUNCH_STATES:
                return Disbelieved(instance_id, f"launch event but the instance is {seen.lifecycle_state}")
            return replace(event, role=role)
        case LifecycleTerminate():
            returning = WARM_POOL_RETURN_STATES if event.destination == "WarmPool" else frozenset()
            if seen.lifecycle_state not in TERMINATE_STATES | returning:
                return Disbelieved(instance_id, f"terminate event but the instance is {seen.lifecycle_state}")
            return replace(event, role=role)
        case _:
            assert_never(event)
