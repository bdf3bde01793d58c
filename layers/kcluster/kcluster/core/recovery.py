"""Whether the first control plane of a new epoch starts the cluster afresh (`init`), comes back from a
backup (`restore`, then init over the restored data), or waits for a person: a pure decision from the
state table, the control-plane group's instances and the backup bucket's catalog (core/backup_catalog).
Not wired yet: the init claim (core/launch.py) will ask it before it sends `init`.

The order of the questions:
1. Only an uninitialized cluster has a first control plane to decide for (otherwise: not-needed).
2. Believed only after it is checked against the world: when an instance the state table knows as a
   joined control plane is still InService in the group, the cluster may not be lost at all (a record
   reset by mistake); a restore or an init beside it would split the cluster: wait for a person.
3. A cluster that never had a control plane (epoch 0), no backup recorded and none in the bucket is new:
   init.
4. The newest checked backup in the bucket: restore it, unless the control loop recorded a newer good
   backup than anything checked in the bucket (deleted, or the listing is not what it was): restoring an
   older one would lose more than the loss itself did, so a person decides.
5. No checked backup of a cluster that had data: a fresh init loses every object, so only the setting
   `fresh_init_without_backup` allows it; by default the loop waits for a person.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from kcluster.core.backup_catalog import Backup, newest_checked, taken_at
from kcluster.core.models import AsgInstance, ClusterView

RecoveryAction = Literal["not-needed", "init", "restore", "wait"]


@dataclass(frozen=True)
class RecoverySettings:
    # A cluster that had data and has no usable backup: init afresh (every object lost) instead of
    # waiting for a person. Off by default.
    fresh_init_without_backup: bool = False


@dataclass(frozen=True)
class RecoveryDecision:
    action: RecoveryAction
    reason: str
    backup: Backup | None = None


def decide(
    view: ClusterView,
    group_instances: Iterable[AsgInstance],
    backups: Sequence[Backup],
    settings: RecoverySettings,
) -> RecoveryDecision:
    """`backups`: the bucket's catalog, newest first (backup_catalog.catalog)."""
    if view.cluster.phase != "uninitialized":
        return RecoveryDecision("not-needed", f"the cluster is {view.cluster.phase}: control planes join it")
    survivors = _joined_control_planes_in_service(view, group_instances)
    if survivors:
        return RecoveryDecision(
            "wait",
            f"the state table has no cluster, but joined control plane(s) {', '.join(survivors)} still run: "
            "the cluster may not be lost; a person decides",
        )
    recorded = _recorded_good_backup(view)
    chosen = newest_checked(backups)
    if view.cluster.epoch == 0 and recorded is None and not backups:
        return RecoveryDecision("init", "a new cluster: never initialized and no backup of it exists")
    if chosen is not None:
        return _restore_unless_older_than_recorded(chosen, recorded)
    return _without_backup(settings, recorded)


def _joined_control_planes_in_service(view: ClusterView, group_instances: Iterable[AsgInstance]) -> list[str]:
    in_service = {i.instance_id for i in group_instances if i.lifecycle_state == "InService"}
    return sorted(
        node.instance_id
        for node in view.nodes.values()
        if node.is_control_plane and node.phase == "joined" and node.instance_id in in_service
    )


def _recorded_good_backup(view: ClusterView) -> tuple[str, float] | None:
    """The newest good backup the control loop recorded: its key and the time its id names."""
    state = view.backup
    if state is None or not state.last_good_key:
        return None
    backup_id = state.last_good_key.rstrip("/").rpartition("/")[2]
    try:
        return state.last_good_key, taken_at(backup_id)
    except ValueError:
        return state.last_good_key, state.last_good_at or 0.0


def _restore_unless_older_than_recorded(
    chosen: Backup, recorded: tuple[str, float] | None
) -> RecoveryDecision:
    if recorded is not None and recorded[1] > chosen.taken_at:
        return RecoveryDecision(
            "wait",
            f"the control loop recorded a good backup {recorded[0]} newer than the newest checked one in the "
            f"bucket ({chosen.key}): restoring the older one loses more; a person decides",
            chosen,
        )
    return RecoveryDecision("restore", f"every control plane is lost: restore {chosen.key}", chosen)


def _without_backup(settings: RecoverySettings, recorded: tuple[str, float] | None) -> RecoveryDecision:
    had = f" (the control loop recorded {recorded[0]})" if recorded else ""
    if settings.fresh_init_without_backup:
        return RecoveryDecision(
            "init",
            f"no checked backup in the bucket{had}; fresh_init_without_backup allows a fresh init: "
            "every object of the cluster is lost",
        )
    return RecoveryDecision(
        "wait",
        f"no checked backup in the bucket{had}: a fresh init would lose every object; a person decides "
        "(or set fresh_init_without_backup)",
    )
