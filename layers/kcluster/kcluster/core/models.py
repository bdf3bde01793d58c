"""Values the workflow core reads and returns. Plain frozen dataclasses: no AWS, no I/O.

Every stored record carries a ``version``; the shell writes a record only if the stored version is
still the one the decision was based on, so two functions deciding at once cannot both win.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

ClusterPhase = Literal["uninitialized", "initializing", "ready"]

# Launch phases of a node, in order. A node that is "waiting" has nothing in flight and is picked up
# by dispatch; the in-flight phases each have at most one SSM command outstanding.
NodePhase = Literal[
    "launching",  # lifecycle action pending, user data still provisioning
    "waiting",  # provisioned; waits for the init claim, the join lease or its batch
    "initializing",  # `init` in flight (this node holds the init claim)
    "refreshing",  # `refresh-join` in flight on a healthy control plane, for this node
    "joining",  # `join-control-plane` / `join-worker` in flight
    "joined",  # joined; launch lifecycle action completed CONTINUE
    "abandoned",  # gave up; launch lifecycle action completed ABANDON
    "replacing",  # InService but of no use (e.g. joined to a cluster that is gone): marked Unhealthy
    "leaving",  # terminate lifecycle action pending; waits for a helper control plane or the lease
    "draining",  # `drain-remove` in flight on a healthy control plane
    "gone",  # terminate lifecycle action completed; the record is kept until its TTL
]
WAITING_PHASES = frozenset({"launching", "waiting"})
IN_FLIGHT_PHASES = frozenset({"initializing", "refreshing", "joining"})
SETTLED_PHASES = frozenset({"joined", "abandoned", "replacing", "gone"})
LEAVING_PHASES = frozenset({"leaving", "draining"})

CommandStatus = Literal["Success", "Failed", "TimedOut", "Cancelled", "Undeliverable", "Terminated"]
TERMINAL_STATUSES = frozenset({"Success", "Failed", "TimedOut", "Cancelled", "Undeliverable", "Terminated"})


@dataclass(frozen=True)
class ClusterState:
    name: str
    phase: ClusterPhase = "uninitialized"
    epoch: int = 0
    init_owner: str | None = None
    init_claimed_at: float | None = None
    # The control-plane join/removal lease: at most one control-plane membership change at a time.
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    # Control planes whose last helper command failed; others are preferred (core/helpers.py).
    suspect_helpers: tuple[str, ...] = ()
    # Remediation (core/remediation.py): our remediation alarms now in ALARM; the instance being
    # replaced and since when; when the remediations of the last hour started; when people were last
    # told, per reason (so a standing condition pages once, not every minute).
    alarms_in_alarm: tuple[str, ...] = ()
    remediating: str | None = None
    remediating_since: float | None = None
    remediations: tuple[float, ...] = ()
    notified_at: dict = field(default_factory=dict)
    version: int = 0

    def lease_free(self, now: float) -> bool:
        return self.lease_owner is None or (self.lease_expires_at or 0) <= now


@dataclass(frozen=True)
class NodeRecord:
    instance_id: str
    role: str
    asg_name: str | None = None
    phase: NodePhase = "launching"
    provisioned: bool = False
    hook_name: str | None = None
    lifecycle_token: str | None = None
    lifecycle_started_at: float | None = None
    last_heartbeat_at: float | None = None
    step: str | None = None  # document key of the step in flight or last run
    command_id: str | None = None
    step_started_at: float | None = None
    attempts: int = 0
    not_before: float | None = None  # do not dispatch before this time (backoff)
    node_name: str | None = None
    last_error: str | None = None
    # The terminate lifecycle action, when one is pending (it may arrive while the launch is not done).
    terminate_hook_name: str | None = None
    terminate_token: str | None = None
    terminate_started_at: float | None = None
    # When the instance was last marked Unhealthy for replacement (remediation, or phase "replacing").
    replace_requested_at: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    version: int = 0

    @property
    def is_control_plane(self) -> bool:
        return self.role == "control-plane"

    def eligible(self, now: float) -> bool:
        return self.phase == "waiting" and (self.not_before is None or self.not_before <= now)


@dataclass(frozen=True)
class NodeHealth:
    """One Node as the health probe saw it."""

    instance_id: str
    name: str
    control_plane: bool
    ready: bool
    # When the Ready condition last changed (epoch seconds), if the API said.
    since: float | None = None


@dataclass(frozen=True)
class HealthSnapshot:
    """The latest answer of the `health` document (run on a control plane): counts of every Node, the
    NotReady ones by name, etcd membership and member health."""

    taken_at: float = 0.0
    taken_on: str = ""  # the control plane it ran on
    api_ready: bool = False
    ready_nodes: int = 0
    not_ready_nodes: int = 0
    ready_control_planes: int = 0
    not_ready: tuple[NodeHealth, ...] = ()
    # Set when the probe listed only part of the NotReady Nodes (its output is bounded).
    truncated: bool = False
    etcd_reachable: bool = False
    etcd_members: int = 0
    etcd_healthy: int = 0
    # Names of the etcd members that did not answer (a member's name is its Node's name).
    etcd_unhealthy: tuple[str, ...] = ()
    # The next probe, while in flight: the `health` command, where and when it was sent. Kept here, not
    # on the cluster record, so a probe never contends with joins and removals for that record.
    probe_command_id: str | None = None
    probe_target: str | None = None
    probe_sent_at: float | None = None
    version: int = 0

    @property
    def total_nodes(self) -> int:
        return self.ready_nodes + self.not_ready_nodes


@dataclass(frozen=True)
class CommandRecord:
    """What one SSM command we sent is for; status events name only the command and the instance."""

    command_id: str
    document: str  # document key (contract.DOC_*)
    targets: tuple[str, ...]  # instances the command runs on
    for_instances: tuple[str, ...]  # nodes whose progress depends on it
    sent_at: float
    version: int = 0


@dataclass(frozen=True)
class ClusterView:
    """Everything stored for one cluster, as loaded at the start of a decision."""

    cluster: ClusterState
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    commands: dict[str, CommandRecord] = field(default_factory=dict)
    health: HealthSnapshot | None = None

    def with_records(self, records: list[Record]) -> ClusterView:
        cluster, nodes, commands, health = self.cluster, dict(self.nodes), dict(self.commands), self.health
        for record in records:
            if isinstance(record, ClusterState):
                cluster = record
            elif isinstance(record, NodeRecord):
                nodes[record.instance_id] = record
            elif isinstance(record, HealthSnapshot):
                health = record
            else:
                commands[record.command_id] = record
        return ClusterView(cluster, nodes, commands, health)

    def joined_control_planes(self) -> list[NodeRecord]:
        return sorted(
            (n for n in self.nodes.values() if n.is_control_plane and n.phase == "joined"),
            key=lambda n: (n.created_at, n.instance_id),
        )


Record = ClusterState | NodeRecord | CommandRecord | HealthSnapshot


def bump(record: Record, now: float | None = None, **changes: object) -> Record:
    """A new version of a record; ``now`` stamps nodes' updated_at."""
    if isinstance(record, NodeRecord) and now is not None:
        changes.setdefault("updated_at", now)
    return replace(record, version=record.version + 1, **changes)


# --- events the core understands -------------------------------------------------------------


@dataclass(frozen=True)
class LifecycleLaunch:
    instance_id: str
    asg_name: str
    role: str
    hook_name: str
    token: str | None  # None when discovered by the reconciler (complete by instance id)
    origin: str | None = None  # "EC2", or "WarmPool" for an instance coming back from a warm pool


@dataclass(frozen=True)
class LifecycleTerminate:
    instance_id: str
    asg_name: str
    role: str
    hook_name: str
    token: str | None
    # Where the instance goes: "EC2" (terminated) or "WarmPool" (stopped, may come back); None if absent.
    destination: str | None = None


@dataclass(frozen=True)
class NodeProvisioned:
    instance_id: str
    role: str


@dataclass(frozen=True)
class CommandFinished:
    command_id: str
    instance_id: str
    status: str
    result: dict | None = None  # the script's JSON result line, when it printed one


@dataclass(frozen=True)
class HealthReported:
    """The `health` command finished (its status event, or the reconciler asking SSM)."""

    command_id: str
    instance_id: str
    status: str
    result: dict | None = None


@dataclass(frozen=True)
class AlarmChanged:
    """One of our alarms changed state (CloudWatch's durable EventBridge event)."""

    alarm_name: str
    state: str  # "ALARM" | "OK" | "INSUFFICIENT_DATA"
    previous_state: str
    reason: str = ""


Event = LifecycleLaunch | LifecycleTerminate | NodeProvisioned | CommandFinished | HealthReported


# --- actions the shell executes -----------------------------------------------------------------


@dataclass(frozen=True)
class SendCommand:
    document: str  # document key
    targets: tuple[str, ...]
    parameters: dict[str, str]
    for_instances: tuple[str, ...]
    timeout_seconds: int


@dataclass(frozen=True)
class CompleteLifecycle:
    instance_id: str
    asg_name: str
    hook_name: str
    token: str | None
    result: Literal["CONTINUE", "ABANDON"]


@dataclass(frozen=True)
class CancelCommand:
    command_id: str
    instance_id: str


@dataclass(frozen=True)
class ReplaceInstance:
    """SetInstanceHealth Unhealthy: the ASG terminates the instance (through the terminate hook) and
    launches a replacement (through the launch hook)."""

    instance_id: str
    reason: str


@dataclass(frozen=True)
class RecordHeartbeat:
    instance_id: str
    asg_name: str
    hook_name: str
    token: str | None


@dataclass(frozen=True)
class Notify:
    """A message to the people on call (the alerts topic): only where a person must act."""

    subject: str
    message: str


Action = SendCommand | CompleteLifecycle | RecordHeartbeat | CancelCommand | ReplaceInstance | Notify


@dataclass(frozen=True)
class Note:
    """A log line the shell writes (level, message, structured fields)."""

    level: Literal["info", "warning", "error"]
    message: str
    fields: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    """A CloudWatch metric the shell publishes (EMF); the cluster's name is always a dimension."""

    name: str
    value: float
    unit: Literal["Count", "Seconds"] = "Count"
    # Dimensions besides the cluster's (e.g. InstanceId for a per-node metric).
    dimensions: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Step:
    """Records to write together (each only if unchanged since loaded), then actions to run.
    A metric is a Metric or, for a count, just (name, value)."""

    writes: tuple[Record, ...] = ()
    actions: tuple[Action, ...] = ()
    notes: tuple[Note, ...] = ()
    metrics: tuple[Metric | tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...] = ()
    # Set when the event cannot be decided yet (it names a command whose record is not written yet):
    # the shell lets the queue deliver it again later instead of dropping it.
    deferred: str | None = None

    def __add__(self, other: Plan) -> Plan:
        return Plan(self.steps + other.steps, self.deferred or other.deferred)

    @property
    def empty(self) -> bool:
        return not any(step.writes or step.actions or step.notes for step in self.steps)
