"""Scale-in core: terminate actions, drain-remove, the lease, quorum refusals, the last control plane."""

from __future__ import annotations

from dataclasses import replace

from kcluster import contract
from kcluster.core.models import CancelCommand, CompleteLifecycle, LifecycleTerminate, SendCommand

from .conftest import CP_ASG, WORKER_ASG, Harness


def terminate(h: Harness, instance_id: str, role: str = "worker", token: str | None = None):
    asg = CP_ASG if role == "control-plane" else WORKER_ASG
    return h.event(
        LifecycleTerminate(
            instance_id, asg, role, "kcluster-terminate", token or f"term-{instance_id}", "EC2"
        )
    )


def joined_cluster(h: Harness, control_planes: int = 1, workers: int = 0) -> list[str]:
    """GIVEN a ready cluster with the given nodes joined."""
    ids = [f"i-{n:08x}" for n in range(1, control_planes + workers + 1)]
    h.launch(ids[0], "control-plane")
    (init,) = h.sends(h.dispatch())
    h.finish(h.send(init), ids[0])
    for iid in ids[1:control_planes]:
        h.launch(iid, "control-plane")
        (refresh,) = h.sends(h.dispatch())
        (join,) = h.sends(h.finish(h.send(refresh), ids[0], result={"ok": True}))
        h.finish(h.send(join), iid)
    for iid in ids[control_planes:]:
        h.launch(iid, "worker")
        (refresh,) = h.sends(h.dispatch())
        (join,) = h.sends(h.finish(h.send(refresh), ids[0], result={"ok": True}))
        h.finish(h.send(join), iid)
    assert all(h.phase(i) == "joined" for i in ids)
    return ids


def join_in_flight(h: Harness, helper: str, joiner: str) -> str:
    """GIVEN a control plane `joiner` whose join-control-plane runs (through `helper`); its command id."""
    h.launch(joiner, "control-plane")
    (refresh,) = h.sends(h.dispatch())
    (join,) = h.sends(h.finish(h.send(refresh), helper, result={"ok": True}))
    return h.send(join)


def completes(actions) -> list[tuple[str, str, str]]:
    return [(a.instance_id, a.hook_name, a.result) for a in actions if isinstance(a, CompleteLifecycle)]


def test_instance_that_never_joined_is_completed_at_once(harness):
    harness.launch("i-00000009", "worker", provisioned=False)
    stored = harness.view.nodes["i-00000009"].version
    actions = terminate(harness, "i-00000009")
    assert completes(actions) == [("i-00000009", "kcluster-terminate", "CONTINUE")]
    assert harness.phase("i-00000009") == "gone"
    assert harness.view.nodes["i-00000009"].version == stored + 1  # one decision, one new version


def test_unknown_instance_is_completed_at_once_and_duplicates_change_nothing(harness):
    assert completes(terminate(harness, "i-0000000f")) == [("i-0000000f", "kcluster-terminate", "CONTINUE")]
    assert terminate(harness, "i-0000000f") == []
    assert terminate(harness, "i-0000000f", token="another-token") == []  # already gone


def test_worker_is_drained_on_a_healthy_control_plane_then_continued(harness):
    cp, worker = joined_cluster(harness, control_planes=1, workers=1)
    stored = harness.view.nodes[worker].version
    terminate(harness, worker)
    assert harness.phase(worker) == "leaving"
    assert harness.view.nodes[worker].version == stored + 1
    (drain,) = harness.sends(harness.dispatch())
    assert drain.document == contract.DOC_DRAIN_REMOVE
    assert drain.targets == (cp,)
    assert drain.parameters == {
        "ClusterName": "demo",
        "InstanceId": worker,
        "RemoveEtcdMember": "false",
        "DrainTimeout": f"{harness.config.timeouts.drain_seconds}s",
    }
    actions = harness.finish(
        harness.send(drain),
        cp,
        result={
            "ok": True,
            "drained": True,
            "node_deleted": True,
            "etcd_member_removed": False,
            "node_name": "ip-w",
        },
    )
    assert completes(actions) == [(worker, "kcluster-terminate", "CONTINUE")]
    assert harness.phase(worker) == "gone"


def test_control_planes_leave_one_at_a_time_and_never_drain_themselves(harness):
    first, second, third = joined_cluster(harness, control_planes=3)
    terminate(harness, second, "control-plane")
    terminate(harness, third, "control-plane")
    (drain,) = harness.sends(harness.dispatch())
    assert drain.parameters["RemoveEtcdMember"] == "true"
    assert drain.targets == (first,)
    leaving = drain.parameters["InstanceId"]
    assert harness.view.cluster.lease_owner == leaving
    assert harness.sends(harness.dispatch()) == []  # the other waits for the lease
    harness.finish(harness.send(drain), first, result={"ok": True, "etcd_member_removed": True})
    (next_drain,) = harness.sends(harness.dispatch())
    assert next_drain.parameters["InstanceId"] != leaving
    assert next_drain.targets == (first,)


def test_quorum_risk_holds_the_instance_then_lets_it_go_with_an_alert(harness):
    first, second, _ = joined_cluster(harness, control_planes=3)
    terminate(harness, second, "control-plane")
    refusal = {"ok": False, "error": "quorum-risk", "message": "1 of 3 members healthy"}
    (drain,) = harness.sends(harness.dispatch())
    actions = harness.finish(harness.send(drain), first, "Failed", refusal)
    assert completes(actions) == []  # held: heartbeats keep the terminate action alive
    assert harness.phase(second) == "leaving"
    assert harness.view.cluster.lease_owner is None
    harness.now += harness.config.timeouts.quorum_wait_seconds
    (drain,) = harness.sends(harness.dispatch())
    actions = harness.finish(harness.send(drain), first, "Failed", refusal)
    assert completes(actions) == [(second, "kcluster-terminate", "CONTINUE")]
    assert harness.phase(second) == "gone"


def test_failed_drain_retries_then_continues_anyway(harness):
    cp, worker = joined_cluster(harness, control_planes=1, workers=1)
    terminate(harness, worker)
    results = []
    for _ in range(harness.config.max_attempts):
        harness.now += 1_000
        (drain,) = harness.sends(harness.dispatch())
        results.append(
            harness.finish(harness.send(drain), cp, "Failed", {"ok": False, "error": "kubectl-failed"})
        )
    assert [completes(r) for r in results] == [[], [], [(worker, "kcluster-terminate", "CONTINUE")]]
    assert harness.view.nodes[worker].last_error == "kubectl-failed"


def test_last_control_plane_leaving_marks_the_cluster_uninitialized(harness):
    (cp,) = joined_cluster(harness, control_planes=1)
    terminate(harness, cp, "control-plane")
    actions = harness.dispatch()
    assert completes(actions) == [(cp, "kcluster-terminate", "CONTINUE")]
    assert harness.view.cluster.phase == "uninitialized"
    # the next control plane initializes a new cluster
    harness.launch("i-000000aa", "control-plane")
    (init,) = harness.sends(harness.dispatch())
    assert init.document == contract.DOC_INIT and harness.view.cluster.epoch == 2


def test_the_only_joined_control_plane_waits_for_a_control_plane_join_in_flight(harness):
    # Regression (chaos seed 22): a control plane whose join was in flight was not counted, so the
    # leaving one was declared the last, the cluster re-initialized, and the joiner's member orphaned.
    (first,) = joined_cluster(harness, control_planes=1)
    join_id = join_in_flight(harness, first, "i-000000bb")
    # WHEN the only joined control plane is terminated while the other one's join runs
    terminate(harness, first, "control-plane")
    # THEN nothing is decided for it yet: no completion, the cluster stays ready
    assert harness.dispatch() == []
    assert harness.phase(first) == "leaving" and harness.view.cluster.phase == "ready"
    # WHEN the join succeeds, the new control plane removes the leaving one under the lease
    harness.finish(join_id, "i-000000bb")
    (drain,) = harness.sends(harness.dispatch())
    assert drain.targets == ("i-000000bb",)
    assert drain.parameters["InstanceId"] == first and drain.parameters["RemoveEtcdMember"] == "true"


def test_terminate_during_init_completes_at_once_without_a_cancel_and_releases_the_claim(harness):
    harness.launch("i-00000001", "control-plane")
    harness.launch("i-00000002", "control-plane")
    (init,) = harness.sends(harness.dispatch())
    owner = init.targets[0]
    command_id = harness.send(init)
    actions = terminate(harness, owner, "control-plane")
    # the init runs on the instance that is let go at once: it goes with it, nothing to cancel (and a
    # CancelCommand that fails must not stand before completing the lifecycle action)
    assert not [a for a in actions if isinstance(a, CancelCommand)]
    assert completes(actions) == [(owner, "kcluster-terminate", "CONTINUE")]
    assert harness.view.cluster.phase == "uninitialized"
    (retry,) = harness.sends(harness.dispatch())
    assert retry.document == contract.DOC_INIT and retry.targets != (owner,)
    # the cancelled init's late status event changes nothing
    assert harness.finish(command_id, owner, "Cancelled", {"ok": False}) == []


def test_terminate_during_a_control_plane_join_cancels_it_and_cleans_up(harness):
    (first,) = joined_cluster(harness, control_planes=1)
    join_id = join_in_flight(harness, first, "i-000000bb")
    actions = terminate(harness, "i-000000bb", "control-plane")
    assert CancelCommand(join_id, "i-000000bb") in actions
    # its member may exist: it is removed like any leaving control plane, under the lease it holds
    (drain,) = [a for a in harness.dispatch() if isinstance(a, SendCommand)]
    assert drain.parameters == {**drain.parameters, "InstanceId": "i-000000bb", "RemoveEtcdMember": "true"}


def test_worker_into_a_warm_pool_is_drained_and_rejoins_when_it_comes_back(harness):
    from kcluster.core.models import LifecycleLaunch

    cp, worker = joined_cluster(harness, control_planes=1, workers=1)
    harness.event(
        LifecycleTerminate(worker, WORKER_ASG, "worker", "kcluster-terminate", "to-pool", "WarmPool")
    )
    (drain,) = harness.sends(harness.dispatch())
    harness.finish(harness.send(drain), cp, result={"ok": True, "node_deleted": True})
    assert harness.phase(worker) == "gone"
    # back from the pool: a new launch action, no Provisioned event (user data does not run again)
    harness.event(LifecycleLaunch(worker, WORKER_ASG, "worker", "kcluster-launch", "from-pool", "WarmPool"))
    assert harness.phase(worker) == "waiting"
    (refresh,) = harness.sends(harness.dispatch())
    assert refresh.for_instances == (worker,)


def test_late_duplicate_launch_of_a_gone_node_changes_nothing(harness):
    from kcluster.core.models import LifecycleLaunch

    harness.launch("i-00000009", "worker", provisioned=False)
    terminate(harness, "i-00000009")
    late = LifecycleLaunch("i-00000009", WORKER_ASG, "worker", "kcluster-launch", "token-i-00000009")
    assert harness.event(late) == []
    assert harness.phase("i-00000009") == "gone"


def test_vanished_joined_instance_is_cleaned_up_without_a_lifecycle_action(harness):
    from kcluster.core import scale_in

    cp, worker = joined_cluster(harness, control_planes=1, workers=1)
    assert scale_in.vanished(harness.view, {cp}, harness.now).empty  # too young to call vanished
    harness.now += scale_in.VANISHED_AFTER_SECONDS
    harness.apply(scale_in.vanished(harness.view, {cp}, harness.now))
    assert harness.phase(worker) == "leaving"
    (drain,) = harness.sends(harness.dispatch())
    assert drain.parameters["InstanceId"] == worker
    actions = harness.finish(harness.send(drain), cp, result={"ok": True, "node_deleted": True})
    assert completes(actions) == []  # nothing to complete: the instance is gone already
    assert harness.phase(worker) == "gone"


def test_vanished_init_owner_releases_the_claim(harness):
    from kcluster.core import scale_in

    harness.launch("i-00000001", "control-plane")
    harness.launch("i-00000002", "control-plane")
    (init,) = harness.sends(harness.dispatch())
    harness.send(init)
    owner = init.targets[0]
    other = "i-00000002" if owner == "i-00000001" else "i-00000001"
    harness.now += scale_in.VANISHED_AFTER_SECONDS
    harness.apply(scale_in.vanished(harness.view, {other}, harness.now))
    assert harness.phase(owner) == "gone"
    assert harness.view.cluster.phase == "uninitialized"


def test_a_failing_helper_is_avoided_for_the_next_command(harness):
    first, second = joined_cluster(harness, control_planes=2)
    harness.launch("i-000000cc", "worker")
    (refresh,) = harness.sends(harness.dispatch())
    helper = refresh.targets[0]
    harness.finish(harness.send(refresh), helper, "Failed", {"ok": False, "error": "control-plane-unhealthy"})
    assert harness.view.cluster.suspect_helpers == (helper,)
    harness.now += 1_000
    (again,) = harness.sends(harness.dispatch())
    other = second if helper == first else first
    assert again.targets == (other,)
    harness.finish(harness.send(again), other, result={"ok": True})
    assert harness.view.cluster.suspect_helpers == (helper,)  # only a success of its own clears it


def test_a_terminate_event_arriving_after_the_reconciler_found_the_action_only_adds_its_token(harness):
    # Regression: the reconciler saw the worker in Terminating:Wait before the event came (no token),
    # started the drain; the event then completed the action at once, mid-drain.
    cp, worker = joined_cluster(harness, control_planes=1, workers=1)
    harness.event(LifecycleTerminate(worker, WORKER_ASG, "worker", "kcluster-terminate", None))
    assert harness.view.nodes[worker].terminate_token is None
    (drain,) = harness.sends(harness.dispatch())
    harness.send(drain)
    # WHEN the terminate event itself arrives, mid-drain
    actions = terminate(harness, worker, token="term-real")
    # THEN the drain goes on, and the action is completed with the event's token once it is done
    assert actions == [] and harness.phase(worker) == "draining"
    assert harness.view.nodes[worker].terminate_token == "term-real"
    assert terminate(harness, worker, token="term-real") == []
    done = harness.finish(
        harness.view.nodes[worker].command_id, cp, result={"ok": True, "node_deleted": True}
    )
    assert [(a.instance_id, a.token) for a in done if isinstance(a, CompleteLifecycle)] == [
        (worker, "term-real")
    ]


def test_nodes_left_joined_to_a_cluster_that_was_reinitialized_are_replaced(harness):
    # Regression (chaos seed 11): the only initialized control plane left, a new cluster was
    # initialized, and a worker of the old one stayed InService, joined to nothing.
    cp, worker = joined_cluster(harness, control_planes=1, workers=1)
    terminate(harness, cp, "control-plane")
    harness.dispatch()  # the last control plane: completed, the cluster uninitialized
    harness.launch("i-000000aa", "control-plane")
    (init,) = harness.sends(harness.dispatch())
    # WHEN the new cluster initializes
    actions = harness.finish(harness.send(init), "i-000000aa")
    # THEN the old cluster's worker is marked for replacement, and nothing else
    assert [(a.instance_id, type(a).__name__) for a in actions if not isinstance(a, CompleteLifecycle)] == [
        (worker, "ReplaceInstance")
    ]
    assert harness.phase(worker) == "replacing"
    # its terminate action is completed at once: its Node is in no cluster that still exists
    assert completes(terminate(harness, worker)) == [(worker, "kcluster-terminate", "CONTINUE")]
    assert harness.sends(harness.dispatch()) == []


def test_a_replacement_the_group_did_not_act_on_is_requested_again(harness):
    from kcluster.core import reconcile
    from kcluster.core.models import AsgInstance, ReplaceInstance

    cp, worker = joined_cluster(harness, control_planes=1, workers=1)
    node = harness.view.nodes[worker]
    harness.view = harness.view.with_records(
        [replace(node, phase="replacing", replace_requested_at=harness.now)]
    )
    in_service = [AsgInstance(worker, WORKER_ASG, "InService"), AsgInstance(cp, CP_ASG, "InService")]
    assert reconcile.stalled_replacements(harness.view, in_service, harness.now + 60).empty
    later = harness.now + reconcile.REPLACE_RETRY_SECONDS
    actions = harness.apply(reconcile.stalled_replacements(harness.view, in_service, later))
    assert [a.instance_id for a in actions if isinstance(a, ReplaceInstance)] == [worker]
    terminating = [AsgInstance(worker, WORKER_ASG, "Terminating:Wait")]
    assert reconcile.stalled_replacements(harness.view, terminating, later + 600).empty


def test_a_control_plane_whose_join_failed_retries_through_the_leaving_one_before_it_goes(harness):
    # Regression (chaos seed 55): a join reported failed had added its etcd member all the same; the
    # only other control plane, terminated by hand, was then taken for the last one and etcd lost quorum.
    (first,) = joined_cluster(harness, control_planes=1)
    join_id = join_in_flight(harness, first, "i-000000bb")
    terminate(harness, first, "control-plane")
    harness.finish(join_id, "i-000000bb", "Failed", {"ok": False, "error": "kubeadm-failed"})
    # THEN the leaving control plane is held, and the joiner's retry refreshes the join material on it
    harness.now += 60
    (retry_refresh,) = harness.sends(harness.dispatch())
    assert (retry_refresh.document, retry_refresh.targets) == (contract.DOC_REFRESH_JOIN, (first,))
    assert harness.phase(first) == "leaving" and harness.view.cluster.phase == "ready"
    (retry,) = harness.sends(harness.finish(harness.send(retry_refresh), first, result={"ok": True}))
    harness.finish(harness.send(retry), "i-000000bb")  # the join script finds itself joined already
    (drain,) = harness.sends(harness.dispatch())
    assert drain.targets == ("i-000000bb",) and drain.parameters["InstanceId"] == first


def test_a_control_plane_waiting_to_retry_a_join_that_ran_is_drained_not_let_go(harness):
    # Found by chaos seed 34: a join-control-plane that failed after kubeadm ran may have added an etcd
    # member; its instance, terminated while waiting to retry, was completed at once and the member
    # stayed behind (two members of three healthy, then quorum lost when the next one left).
    # GIVEN a control plane whose join failed after running, waiting to retry
    (first,) = joined_cluster(harness, control_planes=1)
    command = join_in_flight(harness, first, "i-00000077")
    harness.finish(command, "i-00000077", status="Failed", result={"ok": False, "error": "kubeadm-failed"})
    assert harness.phase("i-00000077") == "waiting"
    # WHEN it is terminated
    actions = terminate(harness, "i-00000077", role="control-plane")
    # THEN it leaves through drain-remove (its member removed), not completed at once
    assert completes(actions) == []
    assert harness.phase("i-00000077") in ("leaving", "draining")
