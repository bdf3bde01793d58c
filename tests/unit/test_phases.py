"""The node and cluster state machines (core/phases.py): the table itself, and that records enforce it."""

from __future__ import annotations

from collections import deque

import pytest

from kcluster import contract
from kcluster.core.models import PHASE_OF_DOCUMENT, BackupState, ClusterState, NodeRecord, bump
from kcluster.core.phases import (
    ALL_BACKUP_PHASES,
    ALL_CLUSTER_PHASES,
    ALL_NODE_PHASES,
    BACKUP_TRANSITIONS,
    CLUSTER_TRANSITIONS,
    COMMAND_PHASES,
    JOIN_COMMAND_PHASES,
    LEAVING_PHASES,
    NODE_INITIAL_PHASES,
    NODE_TRANSITIONS,
    NOT_STARTED_PHASES,
    PENDING_JOIN_PHASES,
    SETTLED_PHASES,
    IllegalTransition,
)


def reachable(table, start):
    seen, queue = set(start), deque(start)
    while queue:
        for after in table[queue.popleft()]:
            if after not in seen:
                seen.add(after)
                queue.append(after)
    return seen


def test_the_node_table_names_every_phase_and_only_phases():
    assert set(NODE_TRANSITIONS) == ALL_NODE_PHASES
    assert set().union(*NODE_TRANSITIONS.values()) <= ALL_NODE_PHASES
    assert all(phase not in after for phase, after in NODE_TRANSITIONS.items())  # staying is implicit


def test_every_node_phase_is_reachable_from_a_new_record_and_every_one_can_end_gone():
    assert reachable(NODE_TRANSITIONS, NODE_INITIAL_PHASES) == ALL_NODE_PHASES
    for phase in ALL_NODE_PHASES - {"gone"}:
        assert "gone" in reachable(NODE_TRANSITIONS, {phase}), phase


def test_a_terminate_action_can_arrive_in_every_phase_of_a_launch():
    # leaving or gone directly, whatever the launch was doing: a terminate hook does not wait.
    for phase in ALL_NODE_PHASES - {"gone"}:
        assert NODE_TRANSITIONS[phase] & {"leaving", "gone"}, phase


def test_a_node_on_its_way_out_never_goes_back_to_joining():
    # ... short of its instance leaving and coming back (a warm pool), which starts it afresh
    one_life = {**NODE_TRANSITIONS, "gone": frozenset()}
    for phase in LEAVING_PHASES:
        assert reachable(one_life, {phase}) & (JOIN_COMMAND_PHASES | {"joined"}) == set()


def test_the_named_sets_partition_what_they_say():
    assert {"launching", "waiting"} == NOT_STARTED_PHASES
    assert JOIN_COMMAND_PHASES | {"draining"} == COMMAND_PHASES
    assert PENDING_JOIN_PHASES == NOT_STARTED_PHASES | JOIN_COMMAND_PHASES
    assert not SETTLED_PHASES & (PENDING_JOIN_PHASES | LEAVING_PHASES)
    assert SETTLED_PHASES | PENDING_JOIN_PHASES | LEAVING_PHASES == ALL_NODE_PHASES
    # each document's phase is a command phase; every command phase has a document
    assert set(PHASE_OF_DOCUMENT.values()) == COMMAND_PHASES
    assert set(PHASE_OF_DOCUMENT) == set(contract.DOCUMENT_KEYS) - {contract.DOC_HEALTH, contract.DOC_BACKUP}


def test_the_cluster_table_names_every_phase_and_each_is_reachable():
    assert set(CLUSTER_TRANSITIONS) == ALL_CLUSTER_PHASES
    assert reachable(CLUSTER_TRANSITIONS, {"uninitialized"}) == ALL_CLUSTER_PHASES
    # init is claimed only from uninitialized: exactly one init per epoch
    assert [p for p, after in CLUSTER_TRANSITIONS.items() if "initializing" in after] == ["uninitialized"]


def test_an_illegal_node_move_fails_loudly():
    joined = NodeRecord("i-00000001", "worker", phase="joined", version=3)
    with pytest.raises(IllegalTransition, match="joined -> initializing"):
        joined.start_document(contract.DOC_INIT, 1.0)
    with pytest.raises(IllegalTransition, match="joined -> waiting"):
        bump(joined, 1.0, phase="waiting")
    with pytest.raises(IllegalTransition, match="new record"):
        bump(NodeRecord("i-00000002", "worker", phase="joined"), 1.0)


def test_an_illegal_cluster_move_fails_loudly():
    ready = ClusterState("demo", phase="ready", epoch=1, version=4)
    with pytest.raises(IllegalTransition, match="ready -> initializing"):
        ready.claim_init("i-00000001", 1.0)


def test_the_verbs_move_to_the_phases_they_name():
    node = NodeRecord("i-00000001", "control-plane")
    node = node.launch_pending("asg", "hook", "token", 1.0).mark_provisioned(2.0)
    assert node.phase == "waiting"
    refreshing = node.start_document(contract.DOC_REFRESH_JOIN, 3.0)
    joining = refreshing.start_document(contract.DOC_JOIN_CONTROL_PLANE, 4.0).command_sent("c" * 36, 4.0)
    assert (refreshing.phase, joining.phase, joining.command_id) == ("refreshing", "joining", "c" * 36)
    retry = joining.requeue(5.0, "kubeadm-failed", backoff=20.0, attempts=1)
    assert (retry.phase, retry.not_before, retry.command_id, retry.attempts) == ("waiting", 25.0, None, 1)
    assert joining.joined(6.0, "ip-1").phase == "joined"
    assert joining.abandon(6.0, "kubeadm-failed", 3).phase == "abandoned"
    leaving = joining.joined(6.0, "ip-1").leave(7.0)
    draining = leaving.start_document(contract.DOC_DRAIN_REMOVE, 8.0)
    assert draining.phase == "draining"
    assert draining.requeue(9.0, "quorum-risk", backoff=60.0).phase == "leaving"  # its own queue
    assert draining.gone(10.0).phase == "gone"
    back = draining.gone(10.0).relaunched("control-plane", 11.0, provisioned=True)
    assert (back.phase, back.provisioned) == ("launching", True)


def test_the_cluster_verbs_claim_release_and_lease():
    cluster = ClusterState("demo")
    claimed = cluster.claim_init("i-00000001", 1.0)
    assert (claimed.phase, claimed.epoch, claimed.init_owner) == ("initializing", 1, "i-00000001")
    assert claimed.released_by_leaving("i-00000001").phase == "uninitialized"
    assert claimed.released_by_leaving("i-00000002") is None
    ready = claimed.initialized("i-00000001")
    leased = ready.take_lease("i-00000002", 100.0)
    assert leased.lease_released_by(["i-00000003"]) is None
    assert leased.lease_released_by(["i-00000002"]).lease_owner is None
    suspect = leased.suspect_helper("i-00000001")
    assert suspect.suspect_helpers == ("i-00000001",)
    assert suspect.suspect_helper("i-00000001") is None  # nothing changes, nothing is written
    assert suspect.trust_helper("i-00000001").suspect_helpers == ()
    gone = suspect.last_control_plane_gone()
    assert (gone.phase, gone.lease_owner, gone.init_owner) == ("uninitialized", None, None)


def test_the_backup_table_names_every_phase_and_a_backup_always_ends_idle():
    assert set(BACKUP_TRANSITIONS) == ALL_BACKUP_PHASES
    assert reachable(BACKUP_TRANSITIONS, {"idle"}) == ALL_BACKUP_PHASES
    assert BACKUP_TRANSITIONS["taking"] == {"idle"}


def test_the_backup_verbs_move_to_the_phases_they_name_and_no_other():
    state = BackupState("demo")
    taking = state.taking("20260101T000000Z", "daily", "schedule", "i-0000000a", 10.0)
    assert taking.phase == "taking"
    good = taking.command_recorded("c" * 36).succeeded("daily/20260101T000000Z/", 4096, 17)
    assert (good.phase, good.last_good_at, good.last_daily_day, good.command_id) == (
        "idle",
        10.0,
        "20260101",
        None,
    )
    failed = taking.failed("etcd-unhealthy", 11.0)
    assert (failed.phase, failed.consecutive_failures, failed.last_good_at) == ("idle", 1, None)
