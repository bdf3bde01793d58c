"""The etcd backup core (core/backup.py): when a backup is due, where it runs, what its answer means."""

from __future__ import annotations

import pytest

from kcluster import contract
from kcluster.core import backup, workflow
from kcluster.core.models import BackupReported, HealthSnapshot, Metric, SendCommand

from .conftest import Harness, make_config
from .test_launch_workflow import start_cluster
from .test_scale_in import terminate

BUCKET = "kc-demo-backup-20261202000000000000000002"
DOCUMENTS = {
    key: f"kcluster-demo-{key.replace('_', '-')}"
    for key in (
        "init",
        "join_control_plane",
        "join_worker",
        "refresh_join",
        "drain_remove",
        "health",
        "backup",
    )
}
# 2026-01-01T00:00:00Z
MIDNIGHT = 1_767_225_600.0


@pytest.fixture
def h() -> Harness:
    harness = Harness(make_config(documents=DOCUMENTS, backup_bucket=BUCKET))
    harness.now = MIDNIGHT + 3600
    return harness


def result(**overrides) -> dict:
    """A `backup` result line as terraform/documents/backup.sh prints it."""
    line = {
        "ok": True,
        "step": "backup",
        "changed": True,
        "bucket": BUCKET,
        "key": "daily/20260101T010000Z/",
        "size": 4_128_800,
        "revision": 1234,
        "hash": 3_141_592_653,
        "total_keys": 900,
        "sha256": "ab" * 32,
    }
    return line | overrides


def take(h: Harness) -> tuple[SendCommand, str]:
    (send,) = h.sends(h.apply(backup.take(h.view, h.config, h.now)))
    return send, h.send(send)


def report(h: Harness, command_id: str, on: str = "i-0000000a", status: str = "Success", line=None):
    plan = workflow.on_event(
        h.view, BackupReported(command_id, on, status, result() if line is None else line), h.config, h.now
    )
    h.apply(plan)
    return {m.name: m for batch in plan.batches for m in batch.metrics if isinstance(m, Metric)}


def backed_up(h: Harness) -> None:
    """A good backup, asked for now and answered 30 seconds later."""
    send, command_id = take(h)
    h.now += 30
    report(h, command_id, on=send.targets[0])


def joined_control_planes(h: Harness, count: int) -> list[str]:
    """GIVEN a ready cluster of `count` control planes, each joined after the backup it waits for."""
    ids = [f"i-{n:08x}" for n in range(1, count + 1)]
    start_cluster(h, ids[0])
    for joiner in ids[1:]:
        h.launch(joiner, "control-plane")
        backed_up(h)
        (refresh,) = h.sends(h.dispatch())
        (join,) = h.sends(h.finish(h.send(refresh), ids[0], result={"ok": True}))
        h.finish(h.send(join), joiner)
    return ids


def refreshes_for(actions) -> list[tuple[str, ...]]:
    return [
        a.for_instances
        for a in actions
        if isinstance(a, SendCommand) and a.document == contract.DOC_REFRESH_JOIN
    ]


def test_no_backup_before_the_cluster_is_ready_or_when_backups_are_not_configured(h):
    assert backup.take(h.view, h.config, h.now).empty
    start_cluster(h)
    off = make_config()  # no backup document, no bucket
    assert backup.take(h.view, off, h.now).empty


def test_the_first_backup_goes_at_once_to_a_control_plane_and_the_first_of_the_day_is_daily(h):
    start_cluster(h)
    send, command_id = take(h)
    assert (send.document, send.targets, send.for_instances) == (contract.DOC_BACKUP, ("i-0000000a",), ())
    assert send.parameters == {"ClusterName": "demo", "BackupId": "20260101T010000Z", "Tier": "daily"}
    assert send.timeout_seconds == backup.BACKUP_TIMEOUT_SECONDS
    state = h.view.backup
    assert (state.phase, state.command_id, state.reason) == ("taking", command_id, backup.REASON_SCHEDULE)
    assert command_id not in h.view.commands  # like the health probe: no command record
    cluster_version = h.view.cluster.version
    # one at a time
    assert h.sends(h.apply(backup.take(h.view, h.config, h.now + 60))) == []
    assert h.view.cluster.version == cluster_version  # never contends for the cluster record


def test_a_good_answer_is_the_newest_good_backup_and_the_next_waits_for_the_interval(h):
    start_cluster(h)
    asked_at = h.now
    _, command_id = take(h)
    h.now += 40
    metrics = report(h, command_id)
    state = h.view.backup
    assert (state.phase, state.last_good_at, state.last_good_key) == (
        "idle",
        asked_at,
        "daily/20260101T010000Z/",
    )
    assert (state.last_good_size, state.last_good_revision, state.last_daily_day) == (
        4_128_800,
        1234,
        "20260101",
    )
    assert metrics["BackupSucceeded"].value == 1
    assert (metrics["BackupAgeSeconds"].value, metrics["BackupAgeSeconds"].unit) == (40.0, "Seconds")
    assert (metrics["BackupSizeBytes"].value, metrics["BackupSizeBytes"].unit) == (4_128_800, "Bytes")
    # not due before the interval; then due, and the second of the day is frequent
    interval = h.config.backup.interval_seconds
    assert backup.take(h.view, h.config, asked_at + interval - 1).empty
    h.now = asked_at + interval
    send, _ = take(h)
    assert send.parameters["Tier"] == "frequent"


def test_the_age_is_published_every_tick_from_the_newest_good_backup_or_from_when_watching_began(h):
    start_cluster(h)
    watching = h.now
    _, command_id = take(h)
    h.now += 600
    (age,) = backup.metrics(h.view, h.config, h.now).batches[0].metrics
    assert age.value == 600.0  # none yet: counted from when the loop started watching
    report(h, command_id, status="Failed", line=result(ok=False, error="etcd-unhealthy"))
    h.now = watching + 1800
    age, *_ = backup.metrics(h.view, h.config, h.now).batches[0].metrics
    assert (age.name, age.value) == ("BackupAgeSeconds", 1800.0)


def test_a_failed_backup_suspects_its_control_plane_and_is_retried_after_a_pause(h):
    first, second = joined_control_planes(h, 2)
    h.now += h.config.backup.interval_seconds  # the backup taken for the join is due again
    send, command_id = take(h)
    assert send.targets == (first,)  # the oldest joined control plane
    metrics = report(h, command_id, on=first, status="Failed", line=result(ok=False, error="etcd-unhealthy"))
    state = h.view.backup
    assert (state.phase, state.last_error, state.consecutive_failures) == ("idle", "etcd-unhealthy", 1)
    assert metrics["BackupFailures"].value == 1
    assert h.view.cluster.suspect_helpers == (first,)
    assert backup.take(h.view, h.config, h.now + 10).empty  # retry_seconds not over
    h.now += h.config.backup.retry_seconds
    send, _ = take(h)
    assert send.targets == (second,)  # a trusted one


def test_an_answer_that_names_no_usable_backup_is_a_failure(h):
    start_cluster(h)
    _, command_id = take(h)
    report(h, command_id, line=result(size=0))
    assert (h.view.backup.last_good_at, h.view.backup.consecutive_failures) == (None, 1)


def test_a_late_or_duplicate_answer_changes_nothing(h):
    start_cluster(h)
    _, command_id = take(h)
    report(h, command_id)
    before = h.view
    assert workflow.on_event(
        h.view, BackupReported(command_id, "i-0000000a", "Success", result()), h.config, h.now
    ).empty
    assert h.view == before


def test_a_lost_answer_is_asked_for_then_given_up_on(h):
    start_cluster(h)
    sent_at = h.now
    _, command_id = take(h)
    assert backup.to_check(h.view, sent_at + 10) is None
    assert backup.to_check(h.view, sent_at + backup.BACKUP_TIMEOUT_SECONDS) == (command_id, "i-0000000a")
    h.now = sent_at + backup.BACKUP_LOST_AFTER_SECONDS
    plan = backup.take(h.view, h.config, h.now)
    h.apply(plan)
    assert (h.view.backup.phase, h.view.backup.last_error) == ("idle", "no-answer")


def test_a_refused_send_ends_the_attempt(h):
    start_cluster(h)
    (send,) = h.sends(h.apply(backup.take(h.view, h.config, h.now)))
    h.apply(workflow.on_send_failed(h.view, send, "InvalidInstanceId", h.config, h.now))
    assert (h.view.backup.phase, h.view.backup.last_error) == ("idle", "InvalidInstanceId")


def test_a_control_plane_whose_etcd_member_is_unhealthy_is_not_chosen(h):
    first, second = joined_control_planes(h, 2)
    sick = h.view.nodes[first].node_name
    h.view = h.view.with_records([HealthSnapshot(taken_at=h.now, etcd_unhealthy=(sick,), version=1)])
    assert backup.choose_control_plane(h.view) == second


def test_a_pending_control_plane_join_makes_a_backup_due_and_waits_for_it_at_most_a_while(h):
    start_cluster(h)
    _, command_id = take(h)
    report(h, command_id)
    # a control plane launches later: the newest good backup predates the change
    h.now += 120
    h.launch("i-0000000c", "control-plane")
    since = backup.pending_membership_change(h.view)
    assert since == h.now
    assert not backup.membership_change_may_proceed(h.view, h.config, since, h.now)
    assert backup.due(h.view.backup, h.view, h.config, h.now) == backup.REASON_MEMBERSHIP
    _, command_id = take(h)
    h.now += 30
    report(h, command_id)
    assert backup.membership_change_may_proceed(h.view, h.config, since, h.now)
    # without a good backup the change goes ahead after membership_wait_seconds all the same
    fresh = Harness(h.config)
    fresh.now = h.now
    start_cluster(fresh)
    assert backup.membership_change_may_proceed(
        fresh.view, fresh.config, fresh.now, fresh.now + fresh.config.backup.membership_wait_seconds
    )
    assert not backup.membership_change_may_proceed(fresh.view, fresh.config, fresh.now, fresh.now + 1)


def test_a_control_plane_join_waits_for_its_backup_and_workers_do_not(h):
    # GIVEN a ready cluster backed up a while ago, then a control plane and a worker launch
    start_cluster(h)
    backed_up(h)
    h.now += 120
    h.launch("i-0000000c", "control-plane")
    h.launch("i-0000000d", "worker")
    # WHEN dispatch runs before the control plane's backup
    actions = h.dispatch()
    # THEN the worker joins, the control plane waits (no lease taken) and its backup is due
    assert refreshes_for(actions) == [("i-0000000d",)]
    assert (h.phase("i-0000000c"), h.view.cluster.lease_owner) == ("waiting", None)
    assert backup.due(h.view.backup, h.view, h.config, h.now) == backup.REASON_MEMBERSHIP
    # AND once that backup is good, the join takes the lease
    backed_up(h)
    assert refreshes_for(h.dispatch()) == [("i-0000000c",)]
    assert h.view.cluster.lease_owner == "i-0000000c"


def test_a_control_plane_join_goes_ahead_without_its_backup_after_the_wait(h):
    # GIVEN a ready cluster whose every backup fails (etcd refuses the snapshot)
    start_cluster(h)
    h.launch("i-0000000c", "control-plane")
    launched_at = h.now
    send, command_id = take(h)
    report(h, command_id, on=send.targets[0], status="Failed", line=result(ok=False, error="etcd-unhealthy"))
    # WHEN dispatch runs just before and at the end of membership_wait_seconds
    h.now = launched_at + h.config.backup.membership_wait_seconds - 1
    assert refreshes_for(h.dispatch()) == []
    h.now = launched_at + h.config.backup.membership_wait_seconds
    # THEN the join waits no longer: a backup never stops the cluster healing
    assert refreshes_for(h.dispatch()) == [("i-0000000c",)]


def test_a_control_plane_removal_waits_for_its_backup_at_most_a_while(h):
    # GIVEN three joined control planes, one of which is terminated
    first, second, third = joined_control_planes(h, 3)
    h.now += 60
    terminate(h, third, "control-plane")
    # WHEN dispatch runs before its backup: no drain, no lease
    assert h.sends(h.dispatch()) == []
    assert h.view.cluster.lease_owner is None
    # THEN the backup taken for it lets the removal go ahead
    backed_up(h)
    (drain,) = h.sends(h.dispatch())
    assert (drain.document, drain.parameters["InstanceId"]) == (contract.DOC_DRAIN_REMOVE, third)
    # AND a second removal whose backup never comes goes ahead after membership_wait_seconds
    h.finish(h.send(drain), first, result={"ok": True, "etcd_member_removed": True})
    h.now += 60
    leaving_at = h.now
    terminate(h, second, "control-plane")
    assert h.sends(h.dispatch()) == []
    h.now = leaving_at + h.config.backup.membership_wait_seconds
    (drain,) = h.sends(h.dispatch())
    assert drain.parameters["InstanceId"] == second
