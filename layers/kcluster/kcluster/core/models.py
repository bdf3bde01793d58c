"""Values the workflow core reads and returns. Plain frozen dataclasses: no AWS, no I/O.

Every stored record carries a ``version``; the shell writes a record only if the stored version is
still the one the decision was based on, so two functions deciding at once cannot both win. Records
change through their verbs (``node.requeue(...)``, ``cluster.take_lease(...)``): each verb is one
named transition, and every phase change is checked against the table in core/phases.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

from kcluster import contract
from kcluster.core.phases import (
    JOIN_COMMAND_PHASES,
    LEAVING_PHASES,
    NODE_INITIAL_PHASES,
    BackupPhase,
    ClusterPhase,
    IllegalTransition,
    NodePhase,
    check_backup_move,
    check_cluster_move,
    check_node_move,
)

CommandStatus = Literal["Success", "Failed", "TimedOut", "Cancelled", "Undeliverable", "Terminated"]
TERMINAL_STATUSES = frozenset({"Success", "Failed", "TimedOut", "Cancelled", "Undeliverable", "Terminated"})

# The phase a node is in while each document runs for it.
PHASE_OF_DOCUMENT: dict[str, NodePhase] = {
    contract.DOC_INIT: "initializing",
    contract.DOC_REFRESH_JOIN: "refreshing",
    contract.DOC_JOIN_CONTROL_PLANE: "joining",
    contract.DOC_JOIN_WORKER: "joining",
    contract.DOC_DRAIN_REMOVE: "draining",
}


# --- the stored records ------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterState:
    """The cluster record: what joins and removals contend for (the init claim, the lease)."""

    name: str
    phase: ClusterPhase = "uninitialized"
    epoch: int = 0
    init_owner: str | None = None
    init_claimed_at: float | None = None
    # The control-plane join/removal lease: at most one control-plane membership change at a time.
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    # Control planes whose last helper command failed; others are preferred (core/helper_control_plane.py).
    suspect_helpers: tuple[str, ...] = ()
    version: int = 0

    def lease_free(self, now: float) -> bool:
        return self.lease_owner is None or (self.lease_expires_at or 0) <= now

    # -- the init claim

    def claim_init(self, owner: str, now: float) -> ClusterState:
        """The first control plane of a new epoch runs init; exactly one write of this wins."""
        return bump(self, phase="initializing", epoch=self.epoch + 1, init_owner=owner, init_claimed_at=now)

    def initialized(self, owner: str) -> ClusterState:
        return bump(self, phase="ready", init_owner=owner)

    def release_init(self) -> ClusterState:
        """Another control plane may init: nothing of this claim's init is running anywhere."""
        return bump(self, phase="uninitialized", init_owner=None, init_claimed_at=None)

    def last_control_plane_gone(self) -> ClusterState:
        """Nothing is left of the cluster: the next control plane initializes a new one (a new epoch)."""
        return bump(
            self,
            phase="uninitialized",
            init_owner=None,
            init_claimed_at=None,
            lease_owner=None,
            lease_expires_at=None,
        )

    # -- the control-plane lease

    def take_lease(self, owner: str, until: float) -> ClusterState:
        return bump(self, lease_owner=owner, lease_expires_at=until)

    def release_lease(self) -> ClusterState:
        return bump(self, lease_owner=None, lease_expires_at=None)

    def lease_released_by(self, instance_ids: Iterable[str]) -> ClusterState | None:
        """The lease released if one of `instance_ids` holds it; None when none does."""
        if self.lease_owner is not None and self.lease_owner in set(instance_ids):
            return self.release_lease()
        return None

    def released_by_leaving(self, instance_id: str) -> ClusterState | None:
        """What a leaving instance that never joined held, released: the claim of an init it did not
        finish (whatever it started goes with its instance), or else the lease; None if neither."""
        if self.phase == "initializing" and self.init_owner == instance_id:
            return self.release_init()
        if self.lease_owner == instance_id:
            return self.release_lease()
        return None

    # -- helper control planes

    def after_helper_command(
        self, helper: str, ok: bool, *, release_lease_of: Iterable[str] = ()
    ) -> ClusterState | None:
        """After a command on a helper control plane: trust the helper again (ok) or suspect it, and
        release the lease if one of `release_lease_of` held it. None when nothing changes."""
        changes: dict[str, Any] = {}
        if self.lease_owner is not None and self.lease_owner in set(release_lease_of):
            changes.update(lease_owner=None, lease_expires_at=None)
        suspects = set(self.suspect_helpers)
        if ok:
            suspects.discard(helper)
        else:
            suspects.add(helper)
        if tuple(sorted(suspects)) != self.suspect_helpers:
            changes["suspect_helpers"] = tuple(sorted(suspects))
        return bump(self, **changes) if changes else None

    def trust_helper(self, helper: str) -> ClusterState | None:
        return self.after_helper_command(helper, True)

    def suspect_helper(self, helper: str) -> ClusterState | None:
        return self.after_helper_command(helper, False)


@dataclass(frozen=True)
class RemediationState:
    """Remediation (core/remediation.py), on an item of its own so that remediation writes never
    contend with joins and removals for the cluster record: our remediation alarms now in ALARM; the
    instance being replaced and since when; when the remediations of the last hour started; when people
    were last told, per reason (so a standing condition pages once, not every minute)."""

    name: str
    alarms_in_alarm: tuple[str, ...] = ()
    remediating: str | None = None
    remediating_since: float | None = None
    remediations: tuple[float, ...] = ()
    notified_at: dict[str, float] = field(default_factory=dict)
    version: int = 0

    def alarms_standing(self, alarms: tuple[str, ...]) -> RemediationState:
        # When none stands any more, the next episode is told afresh.
        if not alarms:
            return bump(self, alarms_in_alarm=alarms, notified_at={})
        return bump(self, alarms_in_alarm=alarms)

    def started(self, instance_id: str, now: float, recent: tuple[float, ...]) -> RemediationState:
        return bump(self, remediating=instance_id, remediating_since=now, remediations=(*recent, now))

    def ended(self) -> RemediationState:
        return bump(self, remediating=None)

    def notified(self, reason: str, now: float) -> RemediationState:
        return bump(self, notified_at={**self.notified_at, reason: now})


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
    step: str | None = None  # document key of the SSM document in flight or last run for this node
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
    # What the instance was launched with (core/rollout.py compares them with the target): the numbered
    # launch template version Auto Scaling reports for it, and the Kubernetes version that version installs.
    launch_template_version: int | None = None
    kubernetes_version: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    version: int = 0

    @property
    def is_control_plane(self) -> bool:
        return self.role == "control-plane"

    def eligible(self, now: float) -> bool:
        return self.phase == "waiting" and (self.not_before is None or self.not_before <= now)

    # -- launch

    def launch_pending(self, asg_name: str, hook_name: str, token: str | None, now: float) -> NodeRecord:
        """Its launch lifecycle action is pending: waiting if its user data already reported."""
        return bump(
            self,
            now,
            asg_name=asg_name,
            hook_name=hook_name,
            lifecycle_token=token,
            lifecycle_started_at=self.lifecycle_started_at or now,
            last_heartbeat_at=self.last_heartbeat_at or now,
            phase="waiting" if self.provisioned else "launching",
        )

    def relaunched(self, role: str, now: float, *, provisioned: bool) -> NodeRecord:
        """A fresh record (same version, for the conditional write) for an instance we saw leave."""
        check_node_move(self.instance_id, self.phase, "launching")
        fresh = NodeRecord(instance_id=self.instance_id, role=role, created_at=now)
        return replace(fresh, version=self.version, provisioned=provisioned)

    def mark_provisioned(self, now: float) -> NodeRecord:
        phase: NodePhase = "waiting" if self.phase == "launching" and self.hook_name else self.phase
        return bump(self, now, provisioned=True, phase=phase)

    # -- documents

    def start_document(self, document: str, now: float) -> NodeRecord:
        """The node's next SSM document starts (sent right after this is written)."""
        return bump(
            self,
            now,
            phase=PHASE_OF_DOCUMENT[document],
            step=document,
            command_id=None,
            step_started_at=now,
            not_before=None,
        )

    def command_sent(self, command_id: str, now: float) -> NodeRecord:
        return bump(self, now, command_id=command_id)

    def requeue(
        self, now: float, error: str, *, backoff: float | None = None, attempts: int | None = None
    ) -> NodeRecord:
        """Back to its queue (waiting, or leaving for a node on its way out) to be dispatched again,
        not before `backoff` seconds from now when given."""
        changes: dict[str, Any] = {"command_id": None, "last_error": error}
        if backoff is not None:
            changes["not_before"] = now + backoff
        if attempts is not None:
            changes["attempts"] = attempts
        queue: NodePhase = "leaving" if self.phase in LEAVING_PHASES else "waiting"
        return bump(self, now, phase=queue, **changes)

    def abandon(self, now: float, error: str, attempts: int) -> NodeRecord:
        return bump(self, now, phase="abandoned", command_id=None, attempts=attempts, last_error=error)

    def joined(self, now: float, node_name: str | None) -> NodeRecord:
        return bump(
            self, now, phase="joined", command_id=None, node_name=node_name, last_error=None, not_before=None
        )

    # -- replacement

    def stranded(self, now: float) -> NodeRecord:
        """Of no use any more (joined to a cluster that is gone): its instance is replaced."""
        return bump(self, now, phase="replacing", replace_requested_at=now)

    def replacement_requested(self, now: float) -> NodeRecord:
        return bump(self, now, replace_requested_at=now)

    def heartbeat(self, now: float) -> NodeRecord:
        return bump(self, now, last_heartbeat_at=now)

    def launched_from(
        self, launch_template_version: int, kubernetes_version: str | None, now: float
    ) -> NodeRecord:
        return bump(
            self, now, launch_template_version=launch_template_version, kubernetes_version=kubernetes_version
        )

    # -- termination

    def leave(self, now: float, **terminate: Any) -> NodeRecord:
        """To be drained and removed before its instance goes (`terminate`: the terminate action)."""
        return bump(self, now, **terminate, phase="leaving", command_id=None, not_before=None, attempts=0)

    def adopt_terminate_token(self, token: str, now: float) -> NodeRecord:
        return bump(self, now, terminate_token=token)

    def gone(self, now: float, **changes: Any) -> NodeRecord:
        """Its terminate action is completed (or there is none): the record stays until its TTL."""
        return bump(self, now, **changes, phase="gone", command_id=None)


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

    def probe_sent(self, target: str, now: float) -> HealthSnapshot:
        """A probe goes to `target` (its command id is recorded once SendCommand answers)."""
        return bump(self, probe_command_id=None, probe_target=target, probe_sent_at=now)

    def probe_recorded(self, command_id: str) -> HealthSnapshot:
        return bump(self, probe_command_id=command_id)

    def probe_failed(self) -> HealthSnapshot:
        return bump(self, probe_command_id=None, probe_target=None, probe_sent_at=None)


@dataclass(frozen=True)
class CommandRecord:
    """What one SSM command we sent is for; status events name only the command and the instance."""

    command_id: str
    document: str  # document key (contract.DOC_*)
    targets: tuple[str, ...]  # instances the command runs on
    for_instances: tuple[str, ...]  # nodes whose progress depends on it
    sent_at: float
    version: int = 0

    @classmethod
    def sent(
        cls,
        command_id: str,
        document: str,
        targets: tuple[str, ...],
        for_instances: tuple[str, ...],
        at: float,
    ) -> CommandRecord:
        """The record of a command just sent (or found sent): written once, never changed."""
        return bump(cls(command_id, document, targets, for_instances, sent_at=at))


@dataclass(frozen=True)
class BackupState:
    """etcd backups (core/backup.py), on an item of their own so a backup never contends with joins
    and removals for the cluster record: the backup in flight (its id, tier, where and when it was sent,
    its command id once SendCommand answered) and the newest good one (when the control loop asked for
    it, its key, size and revision). Only metadata: a snapshot's or a key's bytes never come here."""

    name: str
    phase: BackupPhase = "idle"
    backup_id: str | None = None
    tier: str | None = None
    reason: str | None = None
    target: str | None = None
    command_id: str | None = None
    sent_at: float | None = None
    last_good_at: float | None = None
    last_good_key: str | None = None
    last_good_size: int | None = None
    last_good_revision: int | None = None
    # UTC day (YYYYMMDD) of the newest good daily backup: the first good backup of a day is kept a year.
    last_daily_day: str | None = None
    last_failed_at: float | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    # When the backup pass first saw the cluster ready with backups configured: the age of "no backup
    # yet" counts from here.
    watching_since: float | None = None
    version: int = 0

    def watching(self, now: float) -> BackupState:
        return bump(self, watching_since=now)

    def taking(self, backup_id: str, tier: str, reason: str, target: str, now: float) -> BackupState:
        """A backup goes to `target` (its command id is recorded once SendCommand answers)."""
        return bump(
            self,
            phase="taking",
            backup_id=backup_id,
            tier=tier,
            reason=reason,
            target=target,
            command_id=None,
            sent_at=now,
            watching_since=self.watching_since if self.watching_since is not None else now,
        )

    def command_recorded(self, command_id: str) -> BackupState:
        return bump(self, command_id=command_id)

    def succeeded(self, key: str, size: int, revision: int) -> BackupState:
        """Good: the newest good backup is the one asked for at sent_at (what it holds is etcd then)."""
        daily = self.last_daily_day
        if self.tier == "daily" and self.backup_id:
            daily = self.backup_id[:8]
        return bump(
            self,
            phase="idle",
            command_id=None,
            last_good_at=self.sent_at,
            last_good_key=key,
            last_good_size=size,
            last_good_revision=revision,
            last_daily_day=daily,
            last_error=None,
            consecutive_failures=0,
        )

    def failed(self, error: str, now: float) -> BackupState:
        return bump(
            self,
            phase="idle",
            command_id=None,
            last_failed_at=now,
            last_error=error,
            consecutive_failures=self.consecutive_failures + 1,
        )


Record = ClusterState | RemediationState | NodeRecord | CommandRecord | HealthSnapshot | BackupState


RecordT = TypeVar(
    "RecordT", ClusterState, RemediationState, NodeRecord, CommandRecord, HealthSnapshot, BackupState
)


def bump(record: RecordT, now: float | None = None, **changes: Any) -> RecordT:
    """A new version of a record; ``now`` stamps nodes' updated_at. A phase change is checked against
    the transition table (core/phases.py); a new node record must start in an initial phase."""
    if isinstance(record, NodeRecord):
        if now is not None:
            changes.setdefault("updated_at", now)
        after = changes.get("phase", record.phase)
        if record.version == 0 and record.phase not in NODE_INITIAL_PHASES:
            raise IllegalTransition(f"node {record.instance_id}: a new record may not start {record.phase}")
        check_node_move(record.instance_id, record.phase, after)
    elif isinstance(record, ClusterState) and "phase" in changes:
        check_cluster_move(record.name, record.phase, changes["phase"])
    elif isinstance(record, BackupState) and "phase" in changes:
        check_backup_move(record.name, record.phase, changes["phase"])
    return replace(record, version=record.version + 1, **changes)


@dataclass(frozen=True)
class ClusterView:
    """Everything stored for one cluster, as loaded at the start of a decision, and the questions
    decisions ask of it (after Cluster API's ControlPlane helpers)."""

    cluster: ClusterState
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    commands: dict[str, CommandRecord] = field(default_factory=dict)
    health: HealthSnapshot | None = None
    remediation: RemediationState | None = None
    backup: BackupState | None = None

    def with_records(self, records: Iterable[Record]) -> ClusterView:
        cluster, nodes, commands = self.cluster, dict(self.nodes), dict(self.commands)
        health, remediation, backup = self.health, self.remediation, self.backup
        for record in records:
            match record:
                case ClusterState():
                    cluster = record
                case NodeRecord():
                    nodes[record.instance_id] = record
                case HealthSnapshot():
                    health = record
                case RemediationState():
                    remediation = record
                case CommandRecord():
                    commands[record.command_id] = record
                case BackupState():
                    backup = record
        return ClusterView(cluster, nodes, commands, health, remediation, backup)

    @property
    def backup_state(self) -> BackupState:
        return self.backup or BackupState(self.cluster.name)

    @property
    def remediation_state(self) -> RemediationState:
        return self.remediation or RemediationState(self.cluster.name)

    def joined_control_planes(self) -> list[NodeRecord]:
        return sorted(
            (n for n in self.nodes.values() if n.is_control_plane and n.phase == "joined"),
            key=lambda n: (n.created_at, n.instance_id),
        )

    def has_joining_control_plane(self, exclude: str) -> bool:
        """A control plane joining now, or waiting to retry a join that failed (a join reported failed
        may have added its etcd member all the same)."""
        return any(
            n.is_control_plane
            and n.instance_id != exclude
            and (
                n.phase in JOIN_COMMAND_PHASES
                or (n.phase == "waiting" and n.step == contract.DOC_JOIN_CONTROL_PLANE)
            )
            for n in self.nodes.values()
        )

    def control_plane_change_allowed(self, instance_id: str, now: float) -> bool:
        """The preflight gate of every control-plane membership change (a join or a removal): one at a
        time, under the lease, which must be free or already this instance's."""
        return self.cluster.lease_free(now) or self.cluster.lease_owner == instance_id

    def control_plane_change_in_flight(self) -> str | None:
        """The instance whose control-plane join or removal holds the lease, if any (expired or not)."""
        return self.cluster.lease_owner


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
    result: dict[str, Any] | None = None  # the script's JSON result line, when it printed one


@dataclass(frozen=True)
class HealthReported:
    """The `health` command finished (its status event, or the reconciler asking SSM)."""

    command_id: str
    instance_id: str
    status: str
    result: dict[str, Any] | None = None


@dataclass(frozen=True)
class AlarmChanged:
    """One of our alarms changed state (CloudWatch's durable EventBridge event)."""

    alarm_name: str
    state: str  # "ALARM" | "OK" | "INSUFFICIENT_DATA"
    previous_state: str
    reason: str = ""


@dataclass(frozen=True)
class BackupReported:
    """The `backup` command finished (its status event, or the reconciler asking SSM)."""

    command_id: str
    instance_id: str
    status: str
    result: dict[str, Any] | None = None


Event = (
    LifecycleLaunch | LifecycleTerminate | NodeProvisioned | CommandFinished | HealthReported | BackupReported
)


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


@dataclass(frozen=True)
class RegisterApiTarget:
    """RegisterTargets of a control plane with the API target group, before `kubeadm init` runs on it.

    kubeadm's kubeconfigs point at the control-plane endpoint (the NLB), and Auto Scaling registers an
    instance with its group's target groups only once the launch lifecycle action completes, which is
    after init: without this, every API call init makes through the endpoint times out."""

    instance_id: str
    target_group_arn: str


@dataclass(frozen=True)
class DeregisterApiTarget:
    """DeregisterTargets of a control plane we registered ourselves that will not run the control plane
    after all (its init claim was released while the instance stays). An instance that leaves is
    deregistered by Auto Scaling itself, which deregisters every instance of a group with attached
    target groups when it terminates, whoever registered it."""

    instance_id: str
    target_group_arn: str


Action = (
    SendCommand
    | CompleteLifecycle
    | RecordHeartbeat
    | CancelCommand
    | ReplaceInstance
    | Notify
    | RegisterApiTarget
    | DeregisterApiTarget
)


@dataclass(frozen=True)
class Note:
    """A log line the shell writes (level, message, structured fields)."""

    level: Literal["info", "warning", "error"]
    message: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    """A CloudWatch metric the shell publishes (EMF); the cluster's name is always a dimension."""

    name: str
    value: float = 1
    unit: Literal["Count", "Seconds", "Bytes"] = "Count"
    # Dimensions besides the cluster's (e.g. InstanceId for a per-node metric).
    dimensions: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Batch:
    """Records to write together (each only if unchanged since loaded), then actions to run."""

    writes: tuple[Record, ...] = ()
    actions: tuple[Action, ...] = ()
    notes: tuple[Note, ...] = ()
    metrics: tuple[Metric, ...] = ()

    @classmethod
    def of(
        cls,
        *writes: Record | None,
        actions: Iterable[Action] = (),
        notes: Iterable[Note] = (),
        metrics: Iterable[Metric] = (),
    ) -> Batch:
        """A batch of the records given (None, for "nothing changes", is left out)."""
        return cls(tuple(w for w in writes if w is not None), tuple(actions), tuple(notes), tuple(metrics))


@dataclass(frozen=True)
class Plan:
    batches: tuple[Batch, ...] = ()
    # Set when the event cannot be decided yet (it names a command whose record is not written yet):
    # the shell lets the queue deliver it again later instead of dropping it.
    deferred: str | None = None

    @classmethod
    def of(cls, *batches: Batch) -> Plan:
        return cls(batches)

    @classmethod
    def one(
        cls,
        *writes: Record | None,
        actions: Iterable[Action] = (),
        notes: Iterable[Note] = (),
        metrics: Iterable[Metric] = (),
    ) -> Plan:
        """A plan of one batch (see Batch.of)."""
        return cls((Batch.of(*writes, actions=actions, notes=notes, metrics=metrics),))

    @classmethod
    def note(cls, level: Literal["info", "warning", "error"], message: str, fields: dict[str, Any]) -> Plan:
        """Nothing to do but say why."""
        return cls.one(notes=(Note(level, message, fields),))

    def __add__(self, other: Plan) -> Plan:
        return Plan(self.batches + other.batches, self.deferred or other.deferred)

    @property
    def empty(self) -> bool:
        return not any(batch.writes or batch.actions or batch.notes for batch in self.batches)


# --- what the shell reads from the world for the core -------------------------------------------


@dataclass(frozen=True)
class AsgInstance:
    instance_id: str
    asg_name: str
    lifecycle_state: str
    # The numbered launch template version the instance was launched from (None: not from a template).
    launch_template_version: int | None = None


@dataclass(frozen=True)
class FoundCommand:
    """A command SSM lists (ListCommands): enough to tell which step it was sent for."""

    command_id: str
    instance_ids: tuple[str, ...]
    parameters: dict[str, str]
