"""The reconciler's derivations: discovery, heartbeats, re-drive of unsent steps, overdue commands."""

from __future__ import annotations

from kcluster import contract
from kcluster.core import reconcile
from kcluster.core.models import AsgInstance, FoundCommand, LifecycleTerminate, RecordHeartbeat

from .conftest import WORKER_ASG
from .test_launch_workflow import start_cluster


def test_waiting_instances_without_records_are_discovered(harness):
    harness.launch("i-00000001", "worker")
    instances = [
        AsgInstance("i-00000001", WORKER_ASG, "Pending:Wait"),  # known
        AsgInstance("i-00000002", WORKER_ASG, "Pending:Wait"),  # unknown: launch event lost
        AsgInstance("i-00000003", WORKER_ASG, "InService"),  # not waiting
        AsgInstance("i-00000004", "someone-elses-asg", "Pending:Wait"),  # not ours
    ]
    (found,) = reconcile.discover_launches(harness.view, instances, harness.config)
    assert (found.instance_id, found.role, found.hook_name, found.token) == (
        "i-00000002",
        "worker",
        "kcluster-launch",
        None,
    )


def test_heartbeats_only_for_unsettled_nodes_and_only_when_due(harness):
    harness.launch("i-00000001", "control-plane")
    harness.launch("i-00000002", "worker")
    interval = harness.config.timeouts.heartbeat_interval_seconds
    assert reconcile.heartbeats(harness.view, harness.config, harness.now + interval - 1).empty
    harness.now += interval
    actions = harness.apply(reconcile.heartbeats(harness.view, harness.config, harness.now))
    assert sorted(a.instance_id for a in actions if isinstance(a, RecordHeartbeat)) == [
        "i-00000001",
        "i-00000002",
    ]
    # a joined node gets none
    (init,) = harness.sends(harness.dispatch())
    harness.finish(harness.send(init), "i-00000001")
    harness.now += interval
    actions = harness.apply(reconcile.heartbeats(harness.view, harness.config, harness.now))
    assert [a.instance_id for a in actions] == ["i-00000002"]


def test_a_step_that_was_never_sent_is_redriven(harness):
    harness.launch("i-00000001", "control-plane")
    harness.dispatch()  # claim written, then the function died before SendCommand
    assert reconcile.unsent_steps(harness.view, harness.now + 60).empty
    harness.now += reconcile.UNSENT_STEP_SECONDS
    harness.apply(reconcile.unsent_steps(harness.view, harness.now))
    assert harness.phase("i-00000001") == "waiting"
    # the send may have happened: the owner keeps the claim and gets init again
    assert (harness.view.cluster.phase, harness.view.cluster.init_owner) == ("initializing", "i-00000001")
    (init,) = harness.sends(harness.dispatch())
    assert (init.document, init.targets) == ("init", ("i-00000001",))


def test_overdue_commands_are_checked(harness):
    harness.launch("i-00000001", "control-plane")
    (init,) = harness.sends(harness.dispatch())
    command_id = harness.send(init)
    assert reconcile.commands_to_check(harness.view, harness.now + 10) == []
    later = harness.now + reconcile.STATUS_CHECK_AFTER_SECONDS
    assert reconcile.commands_to_check(harness.view, later) == [(command_id, "i-00000001")]


def test_overdue_provisioning_is_noticed(harness):
    harness.launch("i-00000001", "worker", provisioned=False)
    assert reconcile.unannounced_provisioning(harness.view, harness.now) == []
    later = harness.now + reconcile.PROVISIONED_GRACE_SECONDS
    assert reconcile.unannounced_provisioning(harness.view, later) == ["i-00000001"]


def test_expired_lease_of_an_idle_holder_is_released(harness):
    from kcluster.core.models import bump

    harness.launch("i-0000000b", "control-plane")
    held = bump(harness.view.cluster, lease_owner="i-0000000b", lease_expires_at=harness.now + 100)
    harness.view = harness.view.with_records([held])
    assert reconcile.expired_lease(harness.view, harness.now + 99).empty
    harness.apply(reconcile.expired_lease(harness.view, harness.now + 100))
    assert harness.view.cluster.lease_owner is None


def test_expired_lease_of_a_holder_still_working_is_kept(harness):
    from kcluster.core.models import bump

    harness.launch("i-0000000b", "control-plane")
    waiting = harness.view.nodes["i-0000000b"]
    busy = waiting.start_document(contract.DOC_REFRESH_JOIN, harness.now).start_document(
        contract.DOC_JOIN_CONTROL_PLANE, harness.now
    )
    busy = busy.command_sent("c" * 36, harness.now)
    held = bump(harness.view.cluster, lease_owner="i-0000000b", lease_expires_at=harness.now)
    harness.view = harness.view.with_records([busy, held])
    assert reconcile.expired_lease(harness.view, harness.now + 1).empty


def test_a_step_sent_but_never_recorded_is_followed_not_redriven(harness):
    # Regression (chaos seed 55): the reconciler died between SendCommand and recording its id; the
    # join was taken for unsent, its lease released, and its control plane for not yet joined.
    start_cluster(harness)
    harness.launch("i-0000000b", "control-plane")
    (refresh,) = harness.sends(harness.dispatch())
    (_join,) = harness.sends(harness.finish(harness.send(refresh), "i-0000000a", result={"ok": True}))
    # (join-control-plane written as in flight; SendCommand happened; its id was never recorded)
    harness.now += reconcile.UNSENT_STEP_SECONDS
    (candidate,) = reconcile.unsent_candidates(harness.view, harness.now)
    assert (candidate.instance_id, candidate.document, candidate.look_on) == (
        "i-0000000b",
        contract.DOC_JOIN_CONTROL_PLANE,
        ("i-0000000b",),
    )
    listed = [FoundCommand("cmd-join", ("i-0000000b",), {"ClusterName": "demo"})]
    command = reconcile.sent_for(candidate, listed)
    harness.apply(reconcile.unsent_steps(harness.view, harness.now, {"i-0000000b": command}))
    # THEN the node follows that command: still joining, lease kept, and its result is understood
    node = harness.view.nodes["i-0000000b"]
    assert (node.phase, node.command_id) == ("joining", "cmd-join")
    assert harness.view.cluster.lease_owner == "i-0000000b"
    harness.finish("cmd-join", "i-0000000b")
    assert harness.phase("i-0000000b") == "joined" and harness.view.cluster.lease_owner is None


def test_drain_remove_is_looked_for_on_the_control_planes_by_its_instance_parameter(harness):
    start_cluster(harness)
    harness.launch("i-0000000c", "worker")
    (refresh,) = harness.sends(harness.dispatch())
    (join,) = harness.sends(harness.finish(harness.send(refresh), "i-0000000a", result={"ok": True}))
    harness.finish(harness.send(join), "i-0000000c")
    harness.event(LifecycleTerminate("i-0000000c", WORKER_ASG, "worker", "kcluster-terminate", "t"))
    harness.dispatch()  # drain-remove written as in flight, its id never recorded
    harness.now += reconcile.UNSENT_STEP_SECONDS
    (candidate,) = reconcile.unsent_candidates(harness.view, harness.now)
    assert candidate.look_on == ("i-0000000a",)
    other = FoundCommand("cmd-other", ("i-0000000a",), {"InstanceId": "i-000000ff"})
    ours = FoundCommand("cmd-ours", ("i-0000000a",), {"InstanceId": "i-0000000c"})
    assert reconcile.sent_for(candidate, [other, ours]) == ours
    assert reconcile.sent_for(candidate, [other]) is None
