"""How long things take in the twin: seeded draws from ranges close to what AWS and kubeadm show.

Every draw comes from the one seeded `random.Random` the twin owns, so a seed replays exactly.
Fault injection and tests pin a value with `overrides` (by draw name) or `command_overrides`
(by document key) instead of patching code.
"""

from __future__ import annotations

import random
from collections.abc import Callable

# Seconds, (low, high), drawn uniformly. Ranges are what real clusters show, rounded.
RANGES: dict[str, tuple[float, float]] = {
    # EC2 boot until the SSM agent has registered and pings Online.
    "agent_registration": (20.0, 60.0),
    # User data (containerd, pinned kubeadm/kubelet/kubectl) finished, counted from boot.
    "provisioning": (60.0, 180.0),
    # EventBridge PutEvents until the target (queue or function) receives the event.
    "event_delivery": (0.2, 2.0),
    # Auto Scaling emits a lifecycle action event this long after the transition.
    "lifecycle_event": (0.5, 3.0),
    # SendCommand until the agent starts the invocation (InProgress).
    "command_delivery": (0.5, 2.0),
    # SendCommand until GetCommandInvocation can see the invocation (eventual consistency).
    "invocation_visible": (0.8, 1.2),
    # Auto Scaling health check noticing an Unhealthy or vanished instance.
    "health_check": (5.0, 30.0),
    # Lambda's SQS poller picking up a message that is already in the queue.
    "sqs_poll": (0.05, 0.5),
}

# Seconds a document's script runs, by document key.
COMMAND_RANGES: dict[str, tuple[float, float]] = {
    "init": (60.0, 150.0),
    "join-control-plane": (40.0, 90.0),
    "join-worker": (20.0, 60.0),
    "refresh-join": (2.0, 8.0),
    "drain-remove": (10.0, 60.0),
    "health": (1.0, 4.0),
    # an etcd snapshot of a small cluster, checked, and its upload with the PKI
    "backup": (3.0, 20.0),
}
DEFAULT_COMMAND_RANGE = (5.0, 30.0)


class LatencyModel:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        # Pinned values: a number, or a callable returning one, by draw name / document key.
        self.overrides: dict[str, float | Callable[[], float]] = {}
        self.command_overrides: dict[str, float | Callable[[], float]] = {}

    def draw(self, name: str) -> float:
        if name in self.overrides:
            return _value(self.overrides[name])
        low, high = RANGES[name]
        return self.rng.uniform(low, high)

    def agent_registration_seconds(self) -> float:
        return self.draw("agent_registration")

    def provisioning_seconds(self) -> float:
        return self.draw("provisioning")

    def event_delivery_seconds(self) -> float:
        return self.draw("event_delivery")

    def lifecycle_event_seconds(self) -> float:
        return self.draw("lifecycle_event")

    def command_delivery_seconds(self) -> float:
        return self.draw("command_delivery")

    def invocation_visible_seconds(self) -> float:
        return self.draw("invocation_visible")

    def health_check_seconds(self) -> float:
        return self.draw("health_check")

    def sqs_poll_seconds(self) -> float:
        return self.draw("sqs_poll")

    def command_seconds(self, document_key: str) -> float:
        if document_key in self.command_overrides:
            return _value(self.command_overrides[document_key])
        low, high = COMMAND_RANGES.get(document_key, DEFAULT_COMMAND_RANGE)
        return self.rng.uniform(low, high)


def _value(pinned: float | Callable[[], float]) -> float:
    return float(pinned()) if callable(pinned) else float(pinned)
