"""Lambda's concurrency rules in the twin (twin/aws/lambda_scaling.py): SQS batches scale up with a
lasting backlog within the mapping's MaximumConcurrency; a scheduled function that runs longer than its
period overlaps itself unless its reserved concurrency forbids it."""

from __future__ import annotations

import itertools
import json

import boto3
import pytest

from twin.aws.lambda_scaling import (
    INITIAL_SQS_BATCHES,
    MAX_SQS_BATCHES,
    SQS_BATCHES_ADDED_PER_MINUTE,
    SqsPollerScaling,
)

from .conftest import ServerlessTwin

T0 = 1_000_000.0


def _batches(scaling: SqsPollerScaling, now: float, backlog: bool = True, **bounds) -> int:
    bounds = {"maximum_concurrency": None, "reserved_concurrency": None} | bounds
    return scaling.batches("m", now, backlog=backlog, **bounds)


def test_five_batches_then_300_more_a_minute_while_the_backlog_lasts_up_to_1000():
    scaling = SqsPollerScaling()
    assert _batches(scaling, T0) == INITIAL_SQS_BATCHES == 5
    assert _batches(scaling, T0 + 59) == 5
    assert _batches(scaling, T0 + 60) == 5 + SQS_BATCHES_ADDED_PER_MINUTE
    assert _batches(scaling, T0 + 120) == 605
    assert _batches(scaling, T0 + 600) == MAX_SQS_BATCHES == 1000
    # the queue drained: back to five, and a new backlog starts over
    assert _batches(scaling, T0 + 601, backlog=False) == 5
    assert _batches(scaling, T0 + 660) == 5


def test_maximum_concurrency_and_reserved_concurrency_bound_the_batches():
    scaling = SqsPollerScaling()
    _batches(scaling, T0)
    assert _batches(scaling, T0 + 300, maximum_concurrency=5) == 5
    assert _batches(scaling, T0 + 300, maximum_concurrency=20) == 20
    assert _batches(scaling, T0 + 300, maximum_concurrency=50, reserved_concurrency=8) == 8
    assert _batches(scaling, T0, backlog=False, maximum_concurrency=2) == 2


def _enqueue(twin: ServerlessTwin, count: int) -> None:
    url = twin.stack.physical_id("EventsQueue")
    sqs = boto3.client("sqs")
    for start in range(0, count, 10):
        entries = []
        for n in range(start, min(count, start + 10)):
            detail = {"cluster": "alpha", "instance-id": f"i-{n}", "role": "worker"}
            event = {"source": "kcluster.node", "detail-type": "Node Provisioned", "detail": detail}
            entries.append({"Id": str(n), "MessageBody": json.dumps(event)})
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


def test_a_poll_hands_over_more_batches_once_the_backlog_has_lasted(twin: ServerlessTwin):
    (mapping,) = twin.stack.event_source_mappings  # BatchSize 3
    _enqueue(twin, 60)
    # WHEN the backlog is new THEN five batches go out
    assert twin.functions.poll() == 5 * 3
    # WHEN it has lasted a minute THEN up to 305 may: all twenty still needed
    twin.functions.scaling.backlog_since[mapping.uuid] -= 60
    assert twin.functions.poll() == 45


def test_the_mapping_s_maximum_concurrency_holds_under_a_lasting_backlog(twin: ServerlessTwin):
    (mapping,) = twin.stack.event_source_mappings
    mapping.maximum_concurrency = 2
    _enqueue(twin, 60)
    assert twin.functions.poll() == 2 * 3
    twin.functions.scaling.backlog_since[mapping.uuid] -= 600
    assert twin.functions.poll() == 2 * 3


@pytest.mark.parametrize("reserved", [None, 1])
def test_a_tick_longer_than_its_period_overlaps_the_next_unless_reserved_concurrency_forbids(
    twin: ServerlessTwin, reserved
):
    # GIVEN the ticker (every minute) takes 150 s a run
    twin.functions.functions["TickerFunction"].reserved_concurrency = reserved
    twin.functions.slots.hold("TickerFunction", 150.0)
    twin.bus.schedule_rules()
    twin.scheduler.run_for(10 * 60 + 1)
    runs = [r for r in twin.functions.invocations if r.function == "TickerFunction"]
    slots = twin.functions.slots
    if reserved is None:
        # THEN each run starts while the two before it still run
        assert len(runs) == 10
        assert [o.running for o in slots.overlaps] == [1, 2, 2, 2, 2, 2, 2, 2, 2]
        assert slots.throttles == []
    else:
        # THEN never two at once: ticks arriving meanwhile are throttled and run later, or are dropped
        # once older than the event age the function keeps (the fixture's: AWS's default six hours)
        assert slots.overlaps == []
        assert slots.throttles, "the ticks that found the reconciler busy were throttled"
        starts = [r.started_at for r in runs]
        assert all(later - earlier >= 150.0 for earlier, later in itertools.pairwise(starts))
