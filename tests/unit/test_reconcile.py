"""The reconciler's derivations: discovery, heartbeats, re-drive of unsent steps, overdue commands."""

from __future__ import annotations

from kcluster.core import reconcile
from kcluster.core.models import RecordHeartbeat
from kcluster.core.reconcile import AsgInstance

from .conftest import WORKER_ASG


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
    busy = bump(harness.view.nodes["i-0000000b"], harness.now, phase="joining", command_id="c" * 36)
    held = bump(harness.view.cluster, lease_owner="i-0000000b", lease_expires_at=harness.now)
    harness.view = harness.view.with_records([busy, held])
    assert reconcile.expired_lease(harness.view, harness.now + 1).empty
