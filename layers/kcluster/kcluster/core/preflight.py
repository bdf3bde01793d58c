"""The rollout's preflight: what must hold before a rollout changes anything, each refusal with its
reason (after Cluster API's KubeadmControlPlane preflight and kops' validate cluster).

Each check is one named function returning a Refusal or None; ``preflight`` runs them all, so one
answer lists every reason at once. A refusal a person must act on (a target kubeadm cannot reach,
kubelets the target would leave too far behind, versions nobody recorded) says so; the others clear
up by themselves (a join finishing, a health report arriving) and are only logged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kcluster.core.models import ClusterView
from kcluster.core.phases import LEAVING_PHASES, PENDING_JOIN_PHASES
from kcluster.core.rollout_model import Target, members, running
from kcluster.core.version_skew import Components, upgrade_refusal, violations

# The last health report must be this recent: a rollout starts from what the cluster is now.
HEALTH_MAX_AGE_SECONDS = 180.0


@dataclass(frozen=True)
class Refusal:
    reason: str  # short and stable: logged, counted, and the key people are told about once
    message: str
    person_must_act: bool = False


@dataclass(frozen=True)
class PreflightInput:
    view: ClusterView
    target: Target
    now: float
    # Whether an etcd backup newer than the backup policy's limit exists (the backup records of
    # issue 15 answer it). None: the cluster takes no backups yet, so there is nothing to check.
    backup_fresh: bool | None = None


def preflight(given: PreflightInput) -> list[Refusal]:
    """Every reason not to start now; empty when the rollout may start."""
    checks: tuple[Callable[[PreflightInput], Refusal | None], ...] = (
        recent_health,
        control_planes_ready,
        etcd_healthy,
        no_membership_change_in_flight,
        no_remediation_in_flight,
        versions_recorded,
        one_minor_at_a_time,
        kubelets_stay_within_skew,
        fresh_backup,
    )
    return [refusal for check in checks if (refusal := check(given)) is not None]


def between_groups(given: PreflightInput) -> list[Refusal]:
    """What is checked again before each group's refresh (kops validates between nodes too): the
    cluster is healthy and quiet; the versions were checked when the rollout started."""
    checks = (
        recent_health,
        control_planes_ready,
        etcd_healthy,
        no_membership_change_in_flight,
        no_remediation_in_flight,
    )
    return [refusal for check in checks if (refusal := check(given)) is not None]


def recent_health(given: PreflightInput) -> Refusal | None:
    health = given.view.health
    if health is None or health.taken_at == 0.0:
        return Refusal("no-health-report", "no health report yet")
    if given.now - health.taken_at > HEALTH_MAX_AGE_SECONDS:
        return Refusal(
            "stale-health-report", f"the last health report is {given.now - health.taken_at:.0f} s old"
        )
    return None


def control_planes_ready(given: PreflightInput) -> Refusal | None:
    health = given.view.health
    joined = len([n for n in members(given.view) if n.is_control_plane])
    if health is None or not health.api_ready or health.ready_control_planes < joined:
        ready = health.ready_control_planes if health is not None and health.api_ready else 0
        return Refusal("control-plane-not-ready", f"{ready} of {joined} control planes are Ready")
    return None


def etcd_healthy(given: PreflightInput) -> Refusal | None:
    health = given.view.health
    if health is None or not health.etcd_reachable:
        return Refusal("etcd-unhealthy", "etcd did not answer the last health probe")
    joined = len([n for n in members(given.view) if n.is_control_plane])
    if health.etcd_healthy < health.etcd_members or health.etcd_members < joined:
        names = ", ".join(health.etcd_unhealthy) or "none named"
        return Refusal(
            "etcd-unhealthy",
            f"{health.etcd_healthy} of {health.etcd_members} etcd members healthy for {joined} control "
            f"planes (unhealthy: {names})",
        )
    return None


def no_membership_change_in_flight(given: PreflightInput) -> Refusal | None:
    view = given.view
    busy = sorted(
        n.instance_id for n in view.nodes.values() if n.phase in PENDING_JOIN_PHASES | LEAVING_PHASES
    )
    if view.cluster.lease_owner is not None and not view.cluster.lease_free(given.now):
        busy = sorted({*busy, view.cluster.lease_owner})
    if busy:
        return Refusal("membership-change-in-flight", f"joins or removals in flight: {', '.join(busy[:5])}")
    return None


def no_remediation_in_flight(given: PreflightInput) -> Refusal | None:
    remediating = given.view.remediation_state.remediating
    if remediating is not None:
        return Refusal("remediation-in-flight", f"instance {remediating} is being replaced by remediation")
    return None


def versions_recorded(given: PreflightInput) -> Refusal | None:
    unknown = sorted(
        n.instance_id for n in members(given.view) if n.is_control_plane and not n.kubernetes_version
    )
    if unknown:
        return Refusal(
            "version-unknown",
            f"the Kubernetes version of control planes {', '.join(unknown[:5])} is not recorded: the skew "
            "rules cannot be checked",
            person_must_act=True,
        )
    return None


def one_minor_at_a_time(given: PreflightInput) -> Refusal | None:
    apiservers = running(given.view).apiservers
    if not apiservers:
        return None
    message = upgrade_refusal(min(apiservers), given.target.kubernetes_version)
    return Refusal("version-step", message, person_must_act=True) if message else None


def kubelets_stay_within_skew(given: PreflightInput) -> Refusal | None:
    """Once every control plane runs the target, the kubelets not yet replaced must still be within
    the skew policy (at most three minors older)."""
    now_running = running(given.view)
    if not now_running.apiservers:
        return None
    after_control_planes = Components((given.target.kubernetes_version,), now_running.kubelets)
    problems = violations(after_control_planes)
    if problems:
        return Refusal("kubelet-skew", "; ".join(problems), person_must_act=True)
    return None


def fresh_backup(given: PreflightInput) -> Refusal | None:
    if given.backup_fresh is False:
        return Refusal("no-fresh-backup", "no etcd backup recent enough to start a rollout from")
    return None
