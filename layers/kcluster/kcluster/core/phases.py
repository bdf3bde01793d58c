"""The node and cluster state machines, written down once: the phases and which may follow which.

Every change of a record's phase goes through ``check_node_move`` / ``check_cluster_move`` (the
records' verbs and ``models.bump`` call them), so a move the table does not list fails loudly with
IllegalTransition wherever it is attempted: in a Lambda, in the twin, in every test. A record may
always stay in its phase (a heartbeat, a token adopted, a command id recorded).
"""

from __future__ import annotations

from typing import Literal, get_args

ClusterPhase = Literal["uninitialized", "initializing", "ready"]

# Phases of a node, launch side first. A node that is "waiting" has nothing in flight and is picked
# up by dispatch; the command phases each have at most one SSM command outstanding.
NodePhase = Literal[
    "launching",  # lifecycle action pending, user data still provisioning
    "waiting",  # provisioned; waits for the init claim, the join lease or its batch
    "initializing",  # `init` in flight (this node holds the init claim)
    "refreshing",  # `refresh-join` in flight on a helper control plane, for this node
    "joining",  # `join-control-plane` / `join-worker` in flight
    "joined",  # joined; launch lifecycle action completed CONTINUE
    "abandoned",  # gave up; launch lifecycle action completed ABANDON
    "replacing",  # InService but of no use (e.g. joined to a cluster that is gone): marked Unhealthy
    "leaving",  # terminate lifecycle action pending; waits for a helper control plane or the lease
    "draining",  # `drain-remove` in flight on a helper control plane
    "gone",  # terminate lifecycle action completed; the record is kept until its TTL
]

# Launching or waiting: no command has been sent for the node's join yet.
NOT_STARTED_PHASES: frozenset[NodePhase] = frozenset({"launching", "waiting"})
# A launch-side command (init, refresh-join, a join) is in flight for the node.
JOIN_COMMAND_PHASES: frozenset[NodePhase] = frozenset({"initializing", "refreshing", "joining"})
# Not joined yet and not given up on: what the PendingJoins metric counts.
PENDING_JOIN_PHASES: frozenset[NodePhase] = NOT_STARTED_PHASES | JOIN_COMMAND_PHASES
# Some command of ours is in flight for the node (a join-side one, or its drain-remove).
COMMAND_PHASES: frozenset[NodePhase] = JOIN_COMMAND_PHASES | {"draining"}
# The terminate lifecycle action is pending and the node is being taken out of the cluster.
LEAVING_PHASES: frozenset[NodePhase] = frozenset({"leaving", "draining"})
# Nothing more to do for the node's launch (and, for "gone", its termination).
SETTLED_PHASES: frozenset[NodePhase] = frozenset({"joined", "abandoned", "replacing", "gone"})

# Which phase may follow which. "leaving" and "gone" follow almost anything: a terminate action (or
# the instance vanishing) can arrive at any moment of a launch.
NODE_TRANSITIONS: dict[NodePhase, frozenset[NodePhase]] = {
    "launching": frozenset({"waiting", "leaving", "gone"}),
    "waiting": frozenset({"initializing", "refreshing", "leaving", "gone"}),
    "initializing": frozenset({"joined", "waiting", "abandoned", "leaving", "gone"}),
    "refreshing": frozenset({"joining", "waiting", "leaving", "gone"}),
    "joining": frozenset({"joined", "waiting", "abandoned", "leaving", "gone"}),
    "joined": frozenset({"replacing", "leaving", "gone"}),
    "abandoned": frozenset({"leaving", "gone"}),
    "replacing": frozenset({"leaving", "gone"}),
    "leaving": frozenset({"draining", "gone"}),
    "draining": frozenset({"leaving", "gone"}),
    # An instance we saw leave launches again: it is back from a warm pool.
    "gone": frozenset({"launching", "waiting"}),
}
# A new node record starts here: at its launch event, its Provisioned event (which may overtake the
# launch event), or a terminate action of an instance we never saw launch.
NODE_INITIAL_PHASES: frozenset[NodePhase] = frozenset({"launching"})

CLUSTER_TRANSITIONS: dict[ClusterPhase, frozenset[ClusterPhase]] = {
    "uninitialized": frozenset({"initializing"}),
    # init succeeded; or the claim is released (init refused before it ran, its owner left)
    "initializing": frozenset({"ready", "uninitialized"}),
    # the last control plane left: the next one initializes a new cluster (a new epoch)
    "ready": frozenset({"uninitialized"}),
}


class IllegalTransition(RuntimeError):
    """A record was asked to move to a phase that may not follow its own."""


def check_node_move(instance_id: str, before: NodePhase, after: NodePhase) -> None:
    if after != before and after not in NODE_TRANSITIONS[before]:
        raise IllegalTransition(f"node {instance_id}: {before} -> {after} is not an allowed transition")


def check_cluster_move(name: str, before: ClusterPhase, after: ClusterPhase) -> None:
    if after != before and after not in CLUSTER_TRANSITIONS[before]:
        raise IllegalTransition(f"cluster {name}: {before} -> {after} is not an allowed transition")


ALL_NODE_PHASES: frozenset[NodePhase] = frozenset(get_args(NodePhase))
ALL_CLUSTER_PHASES: frozenset[ClusterPhase] = frozenset(get_args(ClusterPhase))

# The etcd backup record (core/backup.py): idle between backups, taking while one `backup` command is
# out on a control plane. A backup that fails or is given up on goes back to idle; the next is decided
# afresh.
BackupPhase = Literal["idle", "taking"]

BACKUP_TRANSITIONS: dict[BackupPhase, frozenset[BackupPhase]] = {
    "idle": frozenset({"taking"}),
    # the command reported (success or failure), or its answer was given up on
    "taking": frozenset({"idle"}),
}


def check_backup_move(name: str, before: BackupPhase, after: BackupPhase) -> None:
    if after != before and after not in BACKUP_TRANSITIONS[before]:
        raise IllegalTransition(f"backup of {name}: {before} -> {after} is not an allowed transition")


ALL_BACKUP_PHASES: frozenset[BackupPhase] = frozenset(get_args(BackupPhase))


# --- the rollout (core/rollout.py): one record per cluster, one rollout at a time ---------------

RolloutPhase = Literal[
    "pending",  # what runs differs from the target; the preflight has not passed yet
    "waiting_for_go",  # the preflight passed; a setting says a person gives the go
    "preparing",  # the cluster-level kubeadm step, before the first new control plane joins
    "control_planes",  # the control-plane group is being replaced, one at a time
    "addons",  # kube-proxy and CoreDNS, after the last control plane is at the target
    "workers",  # the worker groups are being replaced, one group at a time
    "paused",  # a setting holds the rollout where it was (``paused_from``)
    "succeeded",  # every node runs the target
    "failed",  # an instance refresh failed: people are told, nothing more is started
    "cancelled",  # a refresh was cancelled, or the target changed under the rollout
]
# The phases in which a rollout changes the cluster.
ROLLOUT_ACTIVE_PHASES: frozenset[RolloutPhase] = frozenset(
    {"preparing", "control_planes", "addons", "workers"}
)
# A rollout over: a new target starts a new one (back to pending).
ROLLOUT_FINISHED_PHASES: frozenset[RolloutPhase] = frozenset({"succeeded", "failed", "cancelled"})
ROLLOUT_INITIAL_PHASES: frozenset[RolloutPhase] = frozenset({"pending"})

_ROLLOUT_ENDINGS: frozenset[RolloutPhase] = frozenset({"paused", "failed", "cancelled"})
ROLLOUT_TRANSITIONS: dict[RolloutPhase, frozenset[RolloutPhase]] = {
    # the first active phase is the cluster step (the Kubernetes version changes), the control planes
    # (a new image for them) or the workers (a new worker image only); or nothing is left to do
    "pending": frozenset(
        {"waiting_for_go", "preparing", "control_planes", "workers", "succeeded", "cancelled"}
    ),
    "waiting_for_go": frozenset(
        {"pending", "preparing", "control_planes", "workers", "succeeded", "cancelled"}
    ),
    "preparing": frozenset({"control_planes", *_ROLLOUT_ENDINGS}),
    "control_planes": frozenset({"addons", "workers", "succeeded", *_ROLLOUT_ENDINGS}),
    "addons": frozenset({"workers", "succeeded", *_ROLLOUT_ENDINGS}),
    "workers": frozenset({"succeeded", *_ROLLOUT_ENDINGS}),
    # resumed where it was held; or given up while held
    # (a refresh already running when the rollout was paused runs on, and may fail)
    "paused": frozenset({"preparing", "control_planes", "addons", "workers", "failed", "cancelled"}),
    "succeeded": frozenset({"pending"}),
    "failed": frozenset({"pending"}),
    "cancelled": frozenset({"pending"}),
}


def check_rollout_move(name: str, before: RolloutPhase, after: RolloutPhase) -> None:
    if after != before and after not in ROLLOUT_TRANSITIONS[before]:
        raise IllegalTransition(f"rollout of {name}: {before} -> {after} is not an allowed transition")


ALL_ROLLOUT_PHASES: frozenset[RolloutPhase] = frozenset(get_args(RolloutPhase))
