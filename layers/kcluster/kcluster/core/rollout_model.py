"""The rollout's values: the target the cluster config names, the rollout record and its verbs, what
the world says of instance refreshes, and the steps the shell carries out. No decisions here: those
are in core/preflight.py and core/rollout.py.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from kcluster.config import ClusterConfig
from kcluster.core.models import ClusterView, Metric, NodeRecord, Note, Notify
from kcluster.core.phases import (
    ROLLOUT_INITIAL_PHASES,
    IllegalTransition,
    RolloutPhase,
    check_rollout_move,
)
from kcluster.core.version_skew import Components, KubeVersion

# --- the target ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupTarget:
    asg_name: str
    role: Literal["control-plane", "worker"]
    launch_template_version: int | None

    @property
    def is_control_plane(self) -> bool:
        return self.role == "control-plane"


@dataclass(frozen=True)
class Target:
    """What the cluster config says every node should run: one Kubernetes version, and per node group
    the numbered launch template version (written together by Terraform)."""

    kubernetes_version: KubeVersion
    groups: tuple[GroupTarget, ...]

    @classmethod
    def of(cls, config: ClusterConfig) -> Target:
        return cls(
            KubeVersion.parse(config.kubernetes_version),
            tuple(GroupTarget(g.asg_name, g.role, g.launch_template_version) for g in config.node_groups),
        )

    @property
    def key(self) -> str:
        """Names this target (the rollout record keeps it; `rollout.go` names it to give the go)."""
        groups = ",".join(f"{g.asg_name}@{g.launch_template_version or '-'}" for g in self.groups)
        return f"{self.kubernetes_version} {groups}"

    def group(self, asg_name: str | None) -> GroupTarget | None:
        return next((g for g in self.groups if g.asg_name == asg_name), None)

    @property
    def control_plane_group(self) -> GroupTarget:
        return next(g for g in self.groups if g.is_control_plane)

    @property
    def worker_groups(self) -> tuple[GroupTarget, ...]:
        return tuple(g for g in self.groups if not g.is_control_plane)


# --- what runs ------------------------------------------------------------------------------------


def members(view: ClusterView) -> list[NodeRecord]:
    """The nodes that are part of the cluster now: joined, in a group of ours."""
    return sorted((n for n in view.nodes.values() if n.phase == "joined"), key=lambda n: n.instance_id)


def runs_target(node: NodeRecord, target: Target) -> bool:
    """False when the node was launched from another launch template version than its group's target,
    or runs another Kubernetes version. An unrecorded Kubernetes version is judged by the template."""
    group = target.group(node.asg_name)
    if group is None:
        return True
    if (
        group.launch_template_version is not None
        and node.launch_template_version != group.launch_template_version
    ):
        return False
    return (
        node.kubernetes_version is None
        or KubeVersion.parse(node.kubernetes_version) == target.kubernetes_version
    )


def drifted(view: ClusterView, target: Target) -> dict[str, tuple[str, ...]]:
    """Per node group, the members that do not run the target (groups with none are left out)."""
    found: dict[str, list[str]] = {}
    for node in members(view):
        if not runs_target(node, target):
            found.setdefault(node.asg_name or "", []).append(node.instance_id)
    return {asg: tuple(ids) for asg, ids in found.items()}


def running(view: ClusterView) -> Components:
    """The kube-apiserver versions (control planes) and worker kubelet versions the members run, as far
    as their records say (see core/version_skew.py for why control-plane kubelets are left out)."""
    known = [n for n in members(view) if n.kubernetes_version]
    return Components.of(
        (n.kubernetes_version or "" for n in known if n.is_control_plane),
        (n.kubernetes_version or "" for n in known if not n.is_control_plane),
    )


# --- the record -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RolloutState:
    """The cluster's rollout, one at a time: toward which target, in which phase, which instance refresh
    it follows, what stopped it, and what people were already told (each reason once per rollout)."""

    name: str
    phase: RolloutPhase = "pending"
    target: str = ""  # Target.key
    kubernetes_version: str = ""
    # The oldest kube-apiserver's version when the rollout started (None before it starts).
    from_version: str | None = None
    # The cluster-level kubeadm step: needed when the Kubernetes version changes (not for a new image).
    cluster_step: bool = False
    # The instance refresh in flight: its group, its id once StartInstanceRefresh answered, when it was asked.
    refresh_asg: str | None = None
    refresh_id: str | None = None
    refresh_requested_at: float | None = None
    # The cluster-level step in flight (prepare or addons): when it was sent.
    step_sent_at: float | None = None
    paused_from: RolloutPhase | None = None
    refusals: tuple[str, ...] = ()
    notified: tuple[str, ...] = ()
    error: str | None = None
    started_at: float | None = None
    updated_at: float = 0.0
    version: int = 0

    def moved(self, now: float, **changes: Any) -> RolloutState:
        """A new version of the record; a phase change is checked against the table (core/phases.py)."""
        after = changes.get("phase", self.phase)
        if self.version == 0 and self.phase not in ROLLOUT_INITIAL_PHASES:
            raise IllegalTransition(f"rollout of {self.name}: a new record may not start {self.phase}")
        check_rollout_move(self.name, self.phase, after)
        return replace(self, version=self.version + 1, updated_at=now, **changes)

    def begin(self, target: Target, now: float) -> RolloutState:
        """A new rollout toward `target` (the record of the last one, over, is reused)."""
        fresh = RolloutState(self.name, target=target.key, kubernetes_version=str(target.kubernetes_version))
        if self.version == 0:
            return fresh.moved(now)
        return replace(fresh, phase=self.phase, version=self.version).moved(now, phase="pending")

    def refused(self, reasons: tuple[str, ...], now: float) -> RolloutState | None:
        """The preflight said no: remember why (None when the reasons are the same as last time)."""
        return None if reasons == self.refusals else self.moved(now, refusals=reasons)

    def started(
        self, phase: RolloutPhase, from_version: KubeVersion | None, cluster_step: bool, now: float
    ) -> RolloutState:
        return self.moved(
            now,
            phase=phase,
            from_version=str(from_version) if from_version else None,
            cluster_step=cluster_step,
            refusals=(),
            started_at=now,
        )

    def refresh_requested(self, asg_name: str, now: float) -> RolloutState:
        return self.moved(now, refresh_asg=asg_name, refresh_id=None, refresh_requested_at=now, refusals=())

    def refresh_started(self, refresh_id: str, now: float) -> RolloutState:
        return self.moved(now, refresh_id=refresh_id)

    def refresh_over(self, now: float, **changes: Any) -> RolloutState:
        return self.moved(now, refresh_asg=None, refresh_id=None, refresh_requested_at=None, **changes)

    def step_sent(self, now: float) -> RolloutState:
        return self.moved(now, step_sent_at=now)

    def step_done(self, phase: RolloutPhase, now: float) -> RolloutState:
        return self.moved(now, phase=phase, step_sent_at=None)

    def pause(self, now: float) -> RolloutState:
        return self.moved(now, phase="paused", paused_from=self.phase)

    def resume(self, now: float) -> RolloutState:
        return self.moved(now, phase=self.paused_from or "control_planes", paused_from=None)

    def told(self, reason: str) -> RolloutState:
        return replace(self, notified=(*self.notified, reason))


# --- what the world says of instance refreshes ----------------------------------------------------

# DescribeInstanceRefreshes' statuses, by what they mean for the rollout.
REFRESH_RUNNING = frozenset({"Pending", "InProgress", "Baking", "Cancelling", "RollbackInProgress"})
REFRESH_FAILED = frozenset({"Failed", "RollbackFailed", "RollbackSuccessful"})
REFRESH_CANCELLED = frozenset({"Cancelled"})


@dataclass(frozen=True)
class RefreshSeen:
    """The latest instance refresh of a group, as DescribeInstanceRefreshes reports it."""

    asg_name: str
    refresh_id: str
    status: str
    percentage_complete: int = 0
    status_reason: str = ""


# --- the steps the shell carries out -------------------------------------------------------------


@dataclass(frozen=True)
class StartRefresh:
    """StartInstanceRefresh of one group toward its launch template version (SkipMatching: instances
    already on it are kept; launch before terminate when max_healthy_percent is above 100)."""

    asg_name: str
    launch_template_version: int | None
    min_healthy_percent: int
    max_healthy_percent: int
    instance_warmup_seconds: int
    skip_matching: bool = True


@dataclass(frozen=True)
class CancelRefresh:
    asg_name: str
    reason: str


@dataclass(frozen=True)
class ClusterStep:
    """The cluster-level kubeadm step, on one joined control plane: "prepare" (kubeadm-config's
    ClusterConfiguration, kubelet-config, RBAC, before the first new control plane joins) or "addons"
    (kube-proxy and CoreDNS, after the last control plane runs the target)."""

    stage: Literal["prepare", "addons"]
    kubernetes_version: str


RolloutStep = StartRefresh | CancelRefresh | ClusterStep


@dataclass(frozen=True)
class RolloutDecision:
    """What one decision changes: the record to write (None: unchanged), the steps for the shell, and
    what it logs and tells people."""

    record: RolloutState | None = None
    steps: tuple[RolloutStep, ...] = ()
    notes: tuple[Note, ...] = ()
    notify: tuple[Notify, ...] = ()
    metrics: tuple[Metric, ...] = ()
