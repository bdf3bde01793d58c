"""The Lambda runtime: environment and context, SQS batches with partial failures and redrive, schedules."""

from __future__ import annotations

import json

import boto3
import pytest
from boto3.dynamodb.conditions import Key

from .conftest import ServerlessTwin


def _node_event(instance_id: str, **flags) -> dict:
    detail = {"cluster": "alpha", "instance-id": instance_id, "role": "worker", **flags}
    return {"Source": "kcluster.node", "DetailType": "Node Provisioned", "Detail": json.dumps(detail)}


def _seen(twin: ServerlessTwin, instance_id: str) -> list[dict]:
    table = boto3.resource("dynamodb").Table(twin.stack.physical_id("StateTable"))
    return table.query(KeyConditionExpression=Key("pk").eq(f"SEEN#{instance_id}"))["Items"]


def _count(twin: ServerlessTwin, logical_id: str) -> int:
    url = twin.stack.physical_id(logical_id)
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_environment_and_resolved_refs_reach_the_handler(twin: ServerlessTwin):
    outside = {key: value for key, value in __import__("os").environ.items()}
    result = twin.functions.invoke("EchoFunction", {"source": "test"})
    stack = twin.stack
    assert result["environment"] == {
        "TABLE_NAME": stack.physical_id("StateTable"),
        "TABLE_ARN": f"arn:aws:dynamodb:us-east-1:123456789012:table/{stack.physical_id('StateTable')}",
        "CLUSTER_NAME": "alpha",
        "ALARM_TOPIC_ARN": stack.physical_id("AlarmTopic"),
        "JOINED": "alpha:b",
        "LOG_LEVEL": "DEBUG",  # !If on a condition from the Environment parameter (Globals)
        "QUEUE_URL": None,  # the worker's own variable, not the echo's
        "AWS_LAMBDA_FUNCTION_NAME": "fx-echo",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    assert result["function_name"] == "fx-echo"
    assert result["invoked_function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:fx-echo"
    assert result["memory_limit_in_mb"] == 256
    assert result["remaining_ms"] == 30_000  # virtual time stands still during an invocation
    assert dict(__import__("os").environ) == outside  # the function's environment does not leak out
    lines = [line for line in twin.functions.logs if line.request_id == result["request_id"]]
    assert [line.text for line in lines] == ["echo invoked by test"]
    assert "echo invoked by test" in twin.recorder.log_lines


def test_handler_errors_propagate_from_sync_invoke_and_are_logged(twin: ServerlessTwin):
    with pytest.raises(RuntimeError, match="asked to fail"):
        twin.functions.invoke("EchoFunction", {"source": "test", "detail": {"explode": True}})
    error_line = json.loads(twin.functions.logs[-1].text)
    assert (error_line["errorType"], error_line["errorMessage"]) == ("RuntimeError", "echo was asked to fail")
    assert twin.functions.invocations[-1].ok is False


def test_sqs_mapping_delivers_batches_of_batch_size_and_deletes_them(twin: ServerlessTwin):
    twin.bus.put_events([_node_event(f"i-{n}") for n in range(7)])
    twin.scheduler.run_for(10)
    seen = {n: _seen(twin, f"i-{n}") for n in range(7)}
    assert all(len(items) == 1 for items in seen.values()), seen
    # Batch size 3: seven messages go out as batches of at most three.
    batch_sizes = sorted(int(items[0]["batch_size"]) for items in seen.values())
    assert max(batch_sizes) <= 3
    assert sum(1 for size in batch_sizes if size == 3) >= 3
    assert _count(twin, "EventsQueue") == 0
    sqs_invocations = [r for r in twin.functions.invocations if r.kind == "sqs"]
    assert all(r.function == "WorkerFunction" and r.ok for r in sqs_invocations)


def test_only_the_reported_failure_returns_and_lands_in_the_dlq_after_max_receive_count(twin: ServerlessTwin):
    twin.bus.put_events([_node_event("i-good"), _node_event("i-bad", fail=True), _node_event("i-fine")])
    twin.scheduler.run_for(10)
    assert len(_seen(twin, "i-good")) == 1
    assert len(_seen(twin, "i-fine")) == 1
    assert _count(twin, "EventsQueue") == 1  # the failed one is in flight until its visibility timeout
    worker_runs = lambda: [r for r in twin.functions.invocations if r.kind == "sqs"]  # noqa: E731
    runs_after_first = len(worker_runs())

    twin.scheduler.run_for(45)  # still invisible: VisibilityTimeout 60 s from its receive at 0.25-2.5 s
    assert len(worker_runs()) == runs_after_first
    twin.scheduler.run_for(10)  # visible again: only the failed message comes back
    assert len(worker_runs()) == runs_after_first + 1

    # maxReceiveCount 3: after the third failed receive the next receive moves it to the DLQ.
    twin.scheduler.run_for(3 * 65)
    assert len(worker_runs()) == runs_after_first + 2
    assert _count(twin, "EventsQueue") == 0
    sqs = boto3.client("sqs")
    (dead,) = sqs.receive_message(QueueUrl=twin.stack.physical_id("EventsDLQ"), AttributeNames=["All"])[
        "Messages"
    ]
    assert json.loads(dead["Body"])["detail"]["instance-id"] == "i-bad"
    assert dead["Attributes"]["ApproximateReceiveCount"] == "4"  # three by Lambda, one by this test
    assert _seen(twin, "i-bad") == []
    assert len(_seen(twin, "i-good")) == 1  # successes were deleted, never redelivered


def test_a_raised_exception_fails_the_whole_batch(twin: ServerlessTwin):
    twin.bus.put_events([_node_event("i-one"), _node_event("i-two", explode=True)])
    twin.scheduler.run_for(10)
    # i-one may have been written before the explosion, but no message was deleted.
    assert _count(twin, "EventsQueue") == 2
    twin.scheduler.run_for(65)
    runs = [r for r in twin.functions.invocations if r.kind == "sqs"]
    assert len(runs) == 2
    assert all(not r.ok for r in runs)


def test_schedule_invokes_every_virtual_minute_and_emf_metrics_reach_cloudwatch(twin: ServerlessTwin):
    twin.bus.schedule_rules()
    twin.scheduler.run_for(5 * 60 + 1)
    table = boto3.resource("dynamodb").Table(twin.stack.physical_id("StateTable"))
    ticks = table.get_item(Key={"pk": "TICKS", "sk": "TICKS"})["Item"]
    assert int(ticks["runs"]) == 5
    assert ticks["last_time"] == "2026-01-01T00:05:00Z"
    assert len(twin.functions.metrics) == 5
    metrics = boto3.client("cloudwatch").list_metrics(Namespace="Fixture")["Metrics"]
    assert [(m["MetricName"], m["Dimensions"]) for m in metrics] == [
        ("Ticks", [{"Name": "service", "Value": "ticker"}])
    ]


def test_powertools_logger_lines_are_captured_per_invocation(twin: ServerlessTwin, tmp_path):
    # A function whose module-level Powertools Logger bound sys.stdout at import (cold start).
    code = tmp_path / "logging_fn"
    code.mkdir()
    (code / "app.py").write_text(
        "from aws_lambda_powertools import Logger\n"
        "logger = Logger(service='twin-serverless-test')\n"
        "@logger.inject_lambda_context\n"
        "def lambda_handler(event, context):\n"
        "    logger.info('handled', extra={'n': event['n']})\n"
        "    return event['n']\n"
    )
    spec = twin.stack.functions["EchoFunction"]
    twin.functions.functions["LoggingFunction"] = type(spec)(
        **{**spec.__dict__, "logical_id": "LoggingFunction", "name": "fx-logging", "code_path": code}
    )
    results = twin.functions.invoke_many([("LoggingFunction", {"n": 1}), ("LoggingFunction", {"n": 2})])
    assert sorted(results) == [1, 2]
    captured = [json.loads(line.text) for line in twin.functions.logs if line.function == "LoggingFunction"]
    assert sorted(entry["n"] for entry in captured) == [1, 2]
    assert {entry["service"] for entry in captured} == {"twin-serverless-test"}
    assert {entry["function_name"] for entry in captured} == {"fx-logging"}
    invocation_ids = {r.request_id for r in twin.functions.invocations if r.function == "LoggingFunction"}
    assert {entry["function_request_id"] for entry in captured} == invocation_ids
