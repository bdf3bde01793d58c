"""The virtual clock and scheduler: process time, moto and SQS all follow virtual time."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import boto3
from moto import mock_aws

from twin.clock import Scheduler, VirtualClock
from twin.latency import COMMAND_RANGES, LatencyModel
from twin.recorder import Recorder
from twin.recorder import install as install_recorder

START = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


def test_process_time_and_moto_timestamps_follow_the_clock():
    with mock_aws():
        clock = VirtualClock()
        try:
            assert time.time() == START == clock.now()
            clock.advance(3600)
            assert time.time() == START + 3600
            assert datetime.now(UTC) == datetime(2026, 1, 1, 1, tzinfo=UTC)
            ssm = boto3.client("ssm", region_name="us-east-1")
            ssm.put_parameter(Name="/t", Value="v", Type="String")
            assert ssm.get_parameter(Name="/t")["Parameter"]["LastModifiedDate"].timestamp() == START + 3600
        finally:
            clock.close()
    assert time.time() != START + 3600  # real time again once closed


def test_sqs_visibility_timeout_follows_virtual_time():
    with mock_aws():
        clock = VirtualClock()
        try:
            sqs = boto3.client("sqs", region_name="us-east-1")
            url = sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
            sqs.send_message(QueueUrl=url, MessageBody="hello")
            assert len(sqs.receive_message(QueueUrl=url)["Messages"]) == 1
            clock.advance(29)
            assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []
            clock.advance(2)
            assert [m["Body"] for m in sqs.receive_message(QueueUrl=url)["Messages"]] == ["hello"]
        finally:
            clock.close()


def test_scheduler_runs_in_due_order_ties_by_insertion_and_moves_the_clock():
    clock = VirtualClock()
    try:
        scheduler = Scheduler(clock)
        ran: list[tuple[str, float]] = []
        scheduler.after(10, "b", lambda: ran.append(("b", time.time())))
        scheduler.after(5, "a", lambda: ran.append(("a", time.time())))
        scheduler.after(10, "c", lambda: ran.append(("c", time.time())))
        cancelled = scheduler.after(7, "x", lambda: ran.append(("x", time.time())))
        assert scheduler.cancel(cancelled) and not scheduler.cancel(cancelled)
        assert scheduler.pending() == 3
        assert [label for _, label in scheduler.upcoming()] == ["a", "b", "c"]
        while scheduler.run_next():
            pass
        assert ran == [("a", START + 5), ("b", START + 10), ("c", START + 10)]
        assert scheduler.pending() == 0
    finally:
        clock.close()


def test_run_until_stops_at_the_predicate_or_the_limit():
    clock = VirtualClock()
    try:
        scheduler = Scheduler(clock)
        counter = {"n": 0}

        def tick() -> None:
            counter["n"] += 1
            scheduler.after(60, "tick", tick)

        scheduler.after(60, "tick", tick)
        assert scheduler.run_until(lambda: counter["n"] == 3, 1000)
        assert clock.now() == START + 180
        assert not scheduler.run_until(lambda: counter["n"] == 100, 90)
        assert clock.now() == START + 270 and counter["n"] == 4
        idle = Scheduler(clock)
        assert not idle.run_until(lambda: False, 30)
        assert clock.now() == START + 300  # nothing pending: time still passes up to the limit
    finally:
        clock.close()


def test_latency_draws_are_seeded_ranged_and_pinnable():
    first, second = LatencyModel(random.Random(3)), LatencyModel(random.Random(3))
    draws = [first.command_seconds("init") for _ in range(20)]
    assert draws == [second.command_seconds("init") for _ in range(20)]
    low, high = COMMAND_RANGES["init"]
    assert all(low <= d <= high for d in draws)
    assert all(20 <= first.agent_registration_seconds() <= 60 for _ in range(20))
    first.command_overrides["init"] = 999
    first.overrides["event_delivery"] = lambda: 0.25
    assert first.command_seconds("init") == 999 and first.event_delivery_seconds() == 0.25


def test_recorder_counts_api_calls_only_while_recording():
    with mock_aws():
        recorder = Recorder()
        undo = install_recorder(recorder)
        try:
            sqs = boto3.client("sqs", region_name="us-east-1")
            sqs.list_queues()
            recorder.recording = True
            sqs.list_queues()
            sqs.create_queue(QueueName="q")
            assert recorder.api_calls == {"sqs:ListQueues": 1, "sqs:CreateQueue": 1}
        finally:
            undo()
    recorder.record_event({"detail": {"token": "abc.def"}})
    recorder.record_command("c1", "doc", {"P": ["value"]})
    assert {"abc.def", "value"} <= set(recorder.texts())
