"""The sample events under events/ are real-shaped: they parse, and broken variants are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_lambda_powertools import Logger

from kcluster.core.phases import IllegalTransition
from kcluster.events import (
    CommandStatusEvent,
    EventRejected,
    LaunchLifecycleEvent,
    NodeProvisionedEvent,
    ReactorBatchProcessor,
    TerminateLifecycleEvent,
    parse_alarm_event,
    parse_event,
)

EVENTS = Path(__file__).resolve().parents[2] / "events"


def queue_body(name: str) -> dict:
    return json.loads(json.loads((EVENTS / name).read_text())["Records"][0]["body"])


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("reactor-launch-lifecycle.json", LaunchLifecycleEvent),
        ("reactor-node-provisioned.json", NodeProvisionedEvent),
        ("reactor-command-status.json", CommandStatusEvent),
    ],
)
def test_sample_events_parse(name, model):
    assert isinstance(parse_event(queue_body(name)), model)


def test_terminate_without_origin_and_destination_parses():
    body = queue_body("reactor-launch-lifecycle.json")
    body["detail-type"] = "EC2 Instance-terminate Lifecycle Action"
    body["detail"]["LifecycleTransition"] = "autoscaling:EC2_INSTANCE_TERMINATING"
    del body["detail"]["Origin"], body["detail"]["Destination"]
    event = parse_event(json.dumps(body))
    assert isinstance(event, TerminateLifecycleEvent)
    assert event.detail.Origin is None and event.detail.Destination is None


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.update(source="aws.ec2"),
        lambda b: b["detail"].update(EC2InstanceId="i-$(reboot)"),
        lambda b: b["detail"].update(LifecycleTransition="autoscaling:EC2_INSTANCE_REBOOTING"),
        lambda b: b["detail"].pop("LifecycleHookName"),
        lambda b: b.update({"detail-type": "EC2 Spot Instance Interruption Warning"}),
    ],
    ids=["wrong-source", "bad-instance-id", "bad-transition", "missing-hook", "unknown-detail-type"],
)
def test_events_that_do_not_fit_are_rejected_with_a_reason(mutate):
    body = queue_body("reactor-launch-lifecycle.json")
    mutate(body)
    with pytest.raises(EventRejected) as rejected:
        parse_event(json.dumps(body))
    assert str(rejected.value)


def test_scheduled_event_is_not_a_reactor_event():
    with pytest.raises(EventRejected, match="unknown detail-type"):
        parse_event((EVENTS / "reconciler-schedule.json").read_text())


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("remediator-alarm-single-metric.json", "single-metric"),
        ("remediator-alarm-metric-math.json", "metric-math"),
        ("remediator-alarm-composite.json", "composite"),
    ],
)
def test_every_alarm_shape_parses(name, shape):
    event = parse_alarm_event(json.loads((EVENTS / name).read_text()))
    assert event.detail.shape == shape
    assert event.detail.alarmName.startswith("kcluster-demo-remediate-")
    assert (event.detail.state.value, event.detail.previousState.value) == ("ALARM", "OK")


@pytest.mark.parametrize(
    "change",
    [
        lambda e: e.update({"source": "aws.events"}),
        lambda e: e["detail"]["state"].update({"value": "BROKEN"}),
        lambda e: e["detail"].pop("alarmName"),
        lambda e: e["detail"].pop("previousState"),
    ],
    ids=["wrong-source", "unknown-state", "no-alarm-name", "no-previous-state"],
)
def test_alarm_events_that_do_not_fit_are_refused(change):
    event = json.loads((EVENTS / "remediator-alarm-single-metric.json").read_text())
    change(event)
    with pytest.raises(EventRejected, match="not a CloudWatch alarm state change"):
        parse_alarm_event(event)


def test_the_batch_processor_parses_each_record_once_and_refuses_alone_what_does_not_fit(caplog):
    records = json.loads((EVENTS / "reactor-launch-lifecycle.json").read_text())["Records"]
    good = records[0]
    bad = {**good, "messageId": "bad-one", "body": json.dumps({"detail-type": "Something Else"})}
    broken = {**good, "messageId": "broken-one"}
    processor = ReactorBatchProcessor(Logger(service="test"))
    handled = []

    def handle(record):
        handled.append(record)
        if record.messageId == "broken-one":
            raise IllegalTransition("node i-1: joined -> waiting is not an allowed transition")

    with processor(records=[good, bad, broken], handler=handle):
        parsed = processor.validate()
        processor.process()
    assert [type(record.body) for record in parsed] == [LaunchLifecycleEvent, LaunchLifecycleEvent]
    assert [id(r) for r in handled] == [id(r) for r in parsed]  # the parsed records, not parsed again
    assert processor.response() == {
        "batchItemFailures": [{"itemIdentifier": "bad-one"}, {"itemIdentifier": "broken-one"}]
    }
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert "event refused" in errors and "illegal transition; event not decided" in errors
