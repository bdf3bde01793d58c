"""The first control plane of a new epoch: init, restore (which backup) or wait for a person
(kcluster.core.recovery). Pure: the state table, the group's instances and the bucket's catalog."""

from __future__ import annotations

import dataclasses

import pytest

from kcluster import contract
from kcluster.core.backup_catalog import catalog
from kcluster.core.models import AsgInstance, BackupState, ClusterState, ClusterView, NodeRecord
from kcluster.core.recovery import RecoverySettings, decide

GROUP = "kcluster-demo-control-plane"
WAIT = RecoverySettings()
ALLOW_FRESH = RecoverySettings(fresh_init_without_backup=True)


def backups(*ids: str, whole: bool = True) -> list:
    parts = ("etcd.db", "pki.tar", "manifest.json") if whole else ("etcd.db",)
    return catalog({"Key": f"frequent/{i}/{part}", "Size": 4128} for i in ids for part in parts)


def lost_cluster(epoch: int = 1, last_good: str | None = None, nodes: dict | None = None) -> ClusterView:
    """GIVEN every control plane gone: the cluster record fell back to uninitialized."""
    record = BackupState(name="demo", last_good_key=last_good) if last_good else None
    return ClusterView(
        ClusterState(name="demo", phase="uninitialized", epoch=epoch), nodes or {}, backup=record
    )


def new_control_plane() -> list[AsgInstance]:
    return [AsgInstance("i-0000000000000000a", GROUP, "Pending:Wait")]


def test_a_new_cluster_inits() -> None:
    decision = decide(lost_cluster(epoch=0), new_control_plane(), [], WAIT)
    assert (decision.action, decision.backup) == ("init", None)


def test_a_lost_cluster_restores_its_newest_checked_backup() -> None:
    # GIVEN the newest backup's upload stopped half way (no manifest): only whole, checked ones count
    found = [*backups("20260101T003000Z", whole=False), *backups("20260101T000000Z", "20260101T001500Z")]
    found.sort(key=lambda b: b.taken_at, reverse=True)

    decision = decide(lost_cluster(last_good="frequent/20260101T001500Z/"), new_control_plane(), found, WAIT)

    assert decision.action == "restore"
    assert decision.backup is not None and decision.backup.key == "frequent/20260101T001500Z/"


def test_backups_in_the_bucket_of_a_cluster_whose_state_table_is_new_are_restored() -> None:
    # a stack deployed again over a kept bucket: epoch 0 in a fresh table, but the cluster existed
    decision = decide(lost_cluster(epoch=0), new_control_plane(), backups("20260101T000000Z"), WAIT)
    assert decision.action == "restore"


def test_a_newer_recorded_backup_missing_from_the_bucket_waits_for_a_person() -> None:
    view = lost_cluster(last_good="frequent/20260101T001500Z/")
    decision = decide(view, new_control_plane(), backups("20260101T000000Z"), WAIT)
    assert decision.action == "wait"
    assert "frequent/20260101T001500Z/" in decision.reason and "frequent/20260101T000000Z/" in decision.reason


@pytest.mark.parametrize(("settings", "action"), [(WAIT, "wait"), (ALLOW_FRESH, "init")])
def test_without_a_checked_backup_only_the_setting_allows_a_fresh_init(settings, action) -> None:
    for found in ([], backups("20260101T000000Z", whole=False)):
        decision = decide(
            lost_cluster(last_good="frequent/20260101T000000Z/"), new_control_plane(), found, settings
        )
        assert (decision.action, decision.backup) == (action, None), found
        assert "every object" in decision.reason


def test_a_joined_control_plane_still_in_service_means_the_cluster_may_not_be_lost() -> None:
    # GIVEN the record says uninitialized, but a control plane it knows as joined is InService
    survivor = NodeRecord("i-0000000000000000b", contract.ROLE_CONTROL_PLANE, asg_name=GROUP, phase="joined")
    view = lost_cluster(nodes={survivor.instance_id: survivor})
    instances = [*new_control_plane(), AsgInstance(survivor.instance_id, GROUP, "InService")]

    decision = decide(view, instances, backups("20260101T000000Z"), ALLOW_FRESH)

    assert decision.action == "wait" and survivor.instance_id in decision.reason
    # AND once the group no longer has it in service, the backup is restored
    leaving = [*new_control_plane(), AsgInstance(survivor.instance_id, GROUP, "Terminating:Wait")]
    assert decide(view, leaving, backups("20260101T000000Z"), WAIT).action == "restore"


@pytest.mark.parametrize("phase", ["initializing", "ready"])
def test_a_cluster_that_is_there_needs_no_recovery(phase) -> None:
    view = lost_cluster()
    view = dataclasses.replace(view, cluster=dataclasses.replace(view.cluster, phase=phase))
    assert decide(view, new_control_plane(), backups("20260101T000000Z"), WAIT).action == "not-needed"
