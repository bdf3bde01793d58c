"""CloudWatch alarm evaluation as the twin emulates it on top of moto (twin/aws/alarms.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto.cloudwatch.models import cloudwatch_backends
from moto.events.models import EventPattern

from twin.account import ACCOUNT_ID as ACCOUNT
from twin.account import REGION
from twin.aws import alarms
from twin.aws.cfn import RuleSpec, Stack
from twin.aws.eventbus import EventBus, EventBusContext
from twin.ticker import Ticker

NAMESPACE = "Twin/Test"
METRIC = "Errors"
DIMENSIONS = [{"Name": "Service", "Value": "api"}]
DETAIL_TYPE = "CloudWatch Alarm State Change"
RULE_PATTERN = {
    "source": ["aws.cloudwatch"],
    "detail-type": [DETAIL_TYPE],
    "detail": {"alarmName": [{"prefix": "kcluster-"}], "state": {"value": ["ALARM", "OK"]}},
}


@pytest.fixture
def cw(twin: SimpleNamespace) -> Iterator[SimpleNamespace]:
    """The light twin of conftest plus the real EventBus, the ticker and the alarm evaluator."""
    twin.bus = EventBus(EventBusContext(twin.scheduler, twin.rng, twin.recorder, twin.latency))
    twin.ticker = Ticker(twin.clock, twin.scheduler)
    undo_ticker = twin.ticker.install()
    undo_alarms = alarms.install()
    twin.alarms = alarms.AlarmEvaluator(
        alarms.AlarmContext(twin.clock, twin.scheduler, twin.recorder, seed=7, bus=twin.bus)
    )
    twin.ticker.add(twin.alarms)
    twin.start = twin.clock.now()  # 2026-01-01T00:00:00Z, a whole minute
    try:
        yield twin
    finally:
        undo_alarms()
        undo_ticker()


def cloudwatch() -> Any:
    return boto3.client("cloudwatch", region_name=REGION)


def put_alarm(name: str, **overrides: Any) -> None:
    request: dict[str, Any] = {
        "AlarmName": name,
        "Namespace": NAMESPACE,
        "MetricName": METRIC,
        "Dimensions": DIMENSIONS,
        "Statistic": "Sum",
        "Period": 60,
        "EvaluationPeriods": 3,
        "DatapointsToAlarm": 2,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
    }
    request.update(overrides)
    cloudwatch().put_metric_alarm(**request)


def put_value(value: float, at: float, dimensions: list[dict[str, str]] | None = None) -> None:
    cloudwatch().put_metric_data(
        Namespace=NAMESPACE,
        MetricData=[
            {
                "MetricName": METRIC,
                "Value": value,
                "Dimensions": DIMENSIONS if dimensions is None else dimensions,
                "Timestamp": datetime.fromtimestamp(at, tz=UTC),
            }
        ],
    )


def described(name: str) -> dict[str, Any]:
    return cloudwatch().describe_alarms(AlarmNames=[name])["MetricAlarms"][0]


def state(name: str) -> str:
    return described(name)["StateValue"]


def run_to(world: SimpleNamespace, offset: float) -> None:
    """Run the world until `offset` seconds after its start."""
    world.scheduler.run_for(world.start + offset - world.clock.now())


def changes(world: SimpleNamespace, name: str) -> list[tuple[float, str, str]]:
    return [(t.at - world.start, t.old, t.new) for t in world.alarms.transitions if t.alarm == name]


# ---- DescribeAlarms ------------------------------------------------------------------------------


def test_describe_alarms_applies_the_names_and_the_state_together(cw):
    # GIVEN two alarms of which only one has gone to ALARM
    put_alarm("kcluster-firing", EvaluationPeriods=1, DatapointsToAlarm=1)
    put_alarm("kcluster-quiet", EvaluationPeriods=1, DatapointsToAlarm=1, Threshold=100.0)
    put_value(5.0, cw.start + 10)
    run_to(cw, 60)
    # WHEN both are asked for by name, in ALARM only (moto 5.2.1 alone answers both, whatever the state)
    answer = cloudwatch().describe_alarms(
        AlarmNames=["kcluster-firing", "kcluster-quiet"], StateValue="ALARM"
    )
    # THEN only the firing one is described; a name prefix combines with the state the same way
    assert [a["AlarmName"] for a in answer["MetricAlarms"]] == ["kcluster-firing"]
    by_prefix = cloudwatch().describe_alarms(AlarmNamePrefix="kcluster-", StateValue="OK")
    assert [a["AlarmName"] for a in by_prefix["MetricAlarms"]] == ["kcluster-quiet"]


# ---- state changes ------------------------------------------------------------------------------


def test_alarm_starts_insufficient_data_and_an_update_keeps_its_state(cw):
    put_alarm("kcluster-a")
    assert described("kcluster-a")["StateValue"] == "INSUFFICIENT_DATA"  # moto alone says OK
    assert described("kcluster-a")["StateReason"] == "Unchecked: Initial alarm creation"
    put_value(0.0, cw.start + 10)
    run_to(cw, 60)
    assert state("kcluster-a") == "OK"
    # WHEN the alarm is updated (PutMetricAlarm again) THEN it keeps its state, as AWS does
    put_alarm("kcluster-a", Threshold=5.0)
    assert state("kcluster-a") == "OK"


def test_m_out_of_n_goes_to_alarm_and_back_to_ok(cw):
    # GIVEN 2 out of 3 one-minute periods of Sum >= 1, and a datapoint every minute
    put_alarm("kcluster-errors", AlarmDescription="errors keep coming")
    for minute, value in enumerate([0, 0, 0, 5, 5, 0, 0]):
        put_value(value, cw.start + minute * 60 + 30)
    # WHEN seven minutes pass
    run_to(cw, 7 * 60)
    # THEN one breaching period is not enough, two of the last three are, and two good ones clear it
    assert changes(cw, "kcluster-errors") == [
        (60.0, "INSUFFICIENT_DATA", "OK"),
        (300.0, "OK", "ALARM"),
        (420.0, "ALARM", "OK"),
    ]
    alarm = described("kcluster-errors")
    assert alarm["StateValue"] == "OK"
    assert alarm["StateReason"].startswith("Threshold Crossed: 2 out of the last 3 datapoints [0.0 (01/01/26")
    assert "were not greater than or equal to the threshold (1.0)" in alarm["StateReason"]
    assert "(minimum 2 datapoints for ALARM -> OK transition)" in alarm["StateReason"]
    data = json.loads(alarm["StateReasonData"])
    assert data["recentDatapoints"] == [5.0, 0.0, 0.0]
    assert (data["statistic"], data["period"], data["threshold"]) == ("Sum", 60, 1.0)
    assert data["startDate"] == "2026-01-01T00:04:00.000+0000"
    assert alarm["StateUpdatedTimestamp"] == datetime.fromtimestamp(cw.start + 420, tz=UTC)
    # moto's alarm keeps the states left behind, as SetAlarmState leaves them (moto has no
    # DescribeAlarmHistory to read them through)
    history = cloudwatch_backends[ACCOUNT][REGION].alarms["kcluster-errors"].history
    assert [entry[3] for entry in history] == ["INSUFFICIENT_DATA", "OK", "ALARM"]
    notes = [e.text for e in cw.recorder.timeline if e.kind == "alarm"]
    assert notes[1].startswith("alarm kcluster-errors: OK -> ALARM (Threshold Crossed: 2 out of the last 3")


def test_a_period_still_in_progress_is_not_evaluated(cw):
    # GIVEN a five-minute period alarm (evaluated every minute over the five minutes just completed)
    put_alarm("kcluster-slow", Statistic="Maximum", Period=300, EvaluationPeriods=1, DatapointsToAlarm=1)
    # WHEN a breaching value arrives at 04:10, inside the minute in progress
    run_to(cw, 250)
    put_value(3.0, cw.clock.now())
    run_to(cw, 299)
    # THEN the evaluation at 04:00 did not see it, nor does anything before 05:00
    assert state("kcluster-slow") == "INSUFFICIENT_DATA"
    run_to(cw, 300)
    assert state("kcluster-slow") == "ALARM"
    # AND a datapoint timestamped ahead of the clock waits for its period to complete
    put_value(7.0, cw.start + 330, [{"Name": "Service", "Value": "ahead"}])
    put_alarm(
        "kcluster-ahead",
        Dimensions=[{"Name": "Service", "Value": "ahead"}],
        Period=60,
        EvaluationPeriods=1,
        DatapointsToAlarm=1,
    )
    run_to(cw, 359)
    assert state("kcluster-ahead") == "INSUFFICIENT_DATA"
    run_to(cw, 360)
    assert state("kcluster-ahead") == "ALARM"


def test_dimensions_must_match_exactly(cw):
    # GIVEN an alarm on two dimensions, given in one order
    dims = [{"Name": "Service", "Value": "api"}, {"Name": "Zone", "Value": "a"}]
    put_alarm("kcluster-dims", Dimensions=dims, EvaluationPeriods=1, DatapointsToAlarm=1)
    # WHEN breaching data arrives for a subset, a superset, another value and no dimensions at all
    at = cw.start + 10
    put_value(9.0, at, [{"Name": "Service", "Value": "api"}])
    put_value(9.0, at, [*dims, {"Name": "Host", "Value": "h1"}])
    put_value(9.0, at, [{"Name": "Service", "Value": "api"}, {"Name": "Zone", "Value": "b"}])
    put_value(9.0, at, [])
    run_to(cw, 60)
    # THEN none of it is the alarm's metric
    assert state("kcluster-dims") == "INSUFFICIENT_DATA"
    # WHEN the same set arrives, in the other order THEN it is
    put_value(9.0, cw.start + 70, list(reversed(dims)))
    run_to(cw, 120)
    assert state("kcluster-dims") == "ALARM"


# ---- missing data -------------------------------------------------------------------------------

# AWS's tables ("Configuring how CloudWatch alarms treat missing data"): EvaluationPeriods 3, evaluation
# range 5, most recent datapoint on the right; 0 not breaching, X breaching, - missing; None: the
# state is retained.
TABLE = [
    # (datapoints, DatapointsToAlarm, {TreatMissingData: state})
    ("0 - X - X", 3, {"missing": "OK", "ignore": "OK", "breaching": "OK", "notBreaching": "OK"}),
    ("0 - - - -", 3, {"missing": "OK", "ignore": "OK", "breaching": "OK", "notBreaching": "OK"}),
    (
        "- - - - -",
        3,
        {"missing": "INSUFFICIENT_DATA", "ignore": None, "breaching": "ALARM", "notBreaching": "OK"},
    ),
    ("0 X X - X", 3, {"missing": "ALARM", "ignore": "ALARM", "breaching": "ALARM", "notBreaching": "ALARM"}),
    ("- - X - -", 3, {"missing": "ALARM", "ignore": None, "breaching": "ALARM", "notBreaching": "OK"}),
    (
        "- - - - X",
        3,
        {"missing": "INSUFFICIENT_DATA", "ignore": None, "breaching": "ALARM", "notBreaching": "OK"},
    ),
    ("0 - X - X", 2, {"missing": "ALARM", "ignore": "ALARM", "breaching": "ALARM", "notBreaching": "ALARM"}),
    ("0 0 X 0 X", 2, {"missing": "ALARM", "ignore": "ALARM", "breaching": "ALARM", "notBreaching": "ALARM"}),
    ("0 - X - -", 2, {"missing": "OK", "ignore": "OK", "breaching": "ALARM", "notBreaching": "OK"}),
    ("- - - - 0", 2, {"missing": "OK", "ignore": "OK", "breaching": "ALARM", "notBreaching": "OK"}),
    ("- - - X -", 2, {"missing": "ALARM", "ignore": None, "breaching": "ALARM", "notBreaching": "OK"}),
]
MODES = ("missing", "ignore", "breaching", "notBreaching")


def _points(pattern: str) -> list[alarms.Datapoint]:
    values = {"0": 0.0, "X": 1.0, "-": None}
    return [
        alarms.Datapoint(i * 60.0, values[c], 0.0 if c == "-" else 1.0) for i, c in enumerate(pattern.split())
    ]


@pytest.mark.parametrize(("pattern", "m", "expected"), TABLE)
def test_decide_follows_the_documented_table(pattern, m, expected):
    for mode in MODES:
        decision = alarms.decide(
            _points(pattern),
            evaluation_periods=3,
            datapoints_to_alarm=m,
            breaches=lambda value: value > 0.5,
            treat_missing_data=mode,
        )
        assert decision.state == expected[mode], (pattern, m, mode)


@pytest.mark.parametrize(("pattern", "m", "expected"), TABLE)
def test_each_missing_data_mode_on_a_metric_with_gaps(cw, pattern, m, expected):
    # GIVEN five minutes of a metric with gaps, then four alarms on it, one per TreatMissingData mode,
    # all in OK (SetAlarmState) to see what `ignore` retains
    for minute, c in enumerate(pattern.split()):
        if c != "-":
            put_value(1.0 if c == "X" else 0.0, cw.start + minute * 60 + 30)
    run_to(cw, 290)
    for mode in MODES:
        put_alarm(
            f"kcluster-{mode}",
            Statistic="Maximum",
            Threshold=0.5,
            ComparisonOperator="GreaterThanThreshold",
            DatapointsToAlarm=m,
            TreatMissingData=mode,
        )
        cloudwatch().set_alarm_state(AlarmName=f"kcluster-{mode}", StateValue="OK", StateReason="test")
    # WHEN the evaluation at 05:00 looks back over the five minutes (the evaluation range)
    run_to(cw, 300)
    # THEN each mode decides as AWS documents
    for mode in MODES:
        assert state(f"kcluster-{mode}") == (expected[mode] or "OK"), mode


def test_dynamodb_alarms_always_ignore_missing_data(cw):
    put_alarm("kcluster-table", Namespace="AWS/DynamoDB", TreatMissingData="breaching")
    run_to(cw, 180)
    assert state("kcluster-table") == "INSUFFICIENT_DATA"


def test_metric_math_is_left_alone_and_noted_once(cw):
    metric = {"Namespace": NAMESPACE, "MetricName": METRIC, "Dimensions": DIMENSIONS}
    cloudwatch().put_metric_alarm(
        AlarmName="kcluster-math",
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
        Metrics=[
            {"Id": "m1", "MetricStat": {"Metric": metric, "Period": 60, "Stat": "Sum"}, "ReturnData": False},
            {"Id": "e1", "Expression": "m1 * 2", "ReturnData": True},
        ],
    )
    put_value(5.0, cw.start + 10)
    run_to(cw, 300)
    assert state("kcluster-math") == "INSUFFICIENT_DATA"
    notes = [e.text for e in cw.recorder.timeline if "kcluster-math" in e.text]
    assert notes == ["alarm kcluster-math: not evaluated by the twin (metric math); its state stays as set"]


def test_an_alarm_on_a_single_metric_stat_is_evaluated(cw):
    metric = {"Namespace": NAMESPACE, "MetricName": METRIC, "Dimensions": DIMENSIONS}
    cloudwatch().put_metric_alarm(
        AlarmName="kcluster-stat",
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
        Metrics=[
            {"Id": "m1", "MetricStat": {"Metric": metric, "Period": 60, "Stat": "Sum"}, "ReturnData": True}
        ],
    )
    put_value(5.0, cw.start + 10)
    run_to(cw, 60)
    assert state("kcluster-stat") == "ALARM"


# ---- what a state change sends -------------------------------------------------------------------


def test_state_change_event_has_the_real_shape_and_a_rule_pattern_delivers_it(cw):
    # GIVEN a rule with the pattern a consumer would write, targeting a queue
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="alarm-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    rule = RuleSpec(
        logical_id="AlarmRule",
        name="alarm-rule",
        arn=f"arn:aws:events:{REGION}:{ACCOUNT}:rule/alarm-rule",
        event_bus_name="default",
        event_pattern=json.dumps(RULE_PATTERN),
        schedule_expression=None,
        state="ENABLED",
        targets=[{"Id": "queue", "Arn": queue_arn}],
    )
    cw.bus.attach(Stack(name="test", region=REGION, account_id=ACCOUNT, rules=[rule]))
    put_alarm("kcluster-api", AlarmDescription="the API fails", EvaluationPeriods=1, DatapointsToAlarm=1)
    put_value(3.0, cw.start + 10)
    # WHEN the alarm goes to ALARM at 01:00
    run_to(cw, 60)
    # THEN the event is in EventBridge's documented shape
    events = [e for e in cw.recorder.events if e["detail-type"] == DETAIL_TYPE]
    assert len(events) == 1
    event = events[0]
    arn = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:kcluster-api"
    assert {k: event[k] for k in ("version", "source", "account", "region", "resources", "time")} == {
        "version": "0",
        "source": "aws.cloudwatch",
        "account": ACCOUNT,
        "region": REGION,
        "resources": [arn],
        "time": "2026-01-01T00:01:00Z",
    }
    detail = event["detail"]
    assert list(detail) == ["alarmName", "configuration", "previousState", "state"]
    assert detail["alarmName"] == "kcluster-api"
    assert detail["previousState"] == {
        "reason": "Unchecked: Initial alarm creation",
        "timestamp": "2026-01-01T00:00:00.000+0000",
        "value": "INSUFFICIENT_DATA",
    }
    assert detail["state"]["value"] == "ALARM"
    assert detail["state"]["timestamp"] == "2026-01-01T00:01:00.000+0000"
    assert detail["state"]["reason"].startswith(
        "Threshold Crossed: 1 out of the last 1 datapoints [3.0 (01/01/26 00:00:00)]"
    )
    assert json.loads(detail["state"]["reasonData"])["recentDatapoints"] == [3.0]
    assert detail["configuration"]["description"] == "the API fails"
    [metric] = detail["configuration"]["metrics"]
    assert metric["returnData"] is True
    assert metric["metricStat"] == {
        "metric": {"dimensions": {"Service": "api"}, "name": METRIC, "namespace": NAMESPACE},
        "period": 60,
        "stat": "Sum",
    }
    # AND moto's own pattern matcher (the bus's) matches it, and the rule delivered it to the queue
    assert EventPattern.load(json.dumps(RULE_PATTERN)).matches_event(event)
    assert cw.bus.matching_rules(event) == [rule]
    assert cw.scheduler.pending() == 1  # the delivery, shortly after
    cw.scheduler.run_for(1)
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"]) for m in messages] == [event]
    # AND an alarm the pattern does not name produces an event no rule takes
    put_alarm("other-api", EvaluationPeriods=1, DatapointsToAlarm=1)
    run_to(cw, 120)
    other = [e for e in cw.recorder.events if e["detail"]["alarmName"] == "other-api"]
    assert len(other) == 1 and cw.bus.matching_rules(other[0]) == []


def test_sns_alarm_action_publishes_one_notification_per_transition(cw):
    # GIVEN a topic with a queue subscribed, named in the alarm's ALARM and OK actions
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(Name="kcluster-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    put_alarm(
        "kcluster-notify",
        AlarmDescription="notify me",
        EvaluationPeriods=1,
        DatapointsToAlarm=1,
        AlarmActions=[topic],
        OKActions=[topic],
        TreatMissingData="notBreaching",
    )
    # WHEN it goes OK (01:00), ALARM for three minutes (03:00-05:00), then OK again (06:00)
    for minute, value in ((2, 2.0), (3, 2.0), (4, 2.0), (5, 0.0)):
        put_value(value, cw.start + minute * 60 + 5)
    run_to(cw, 8 * 60)
    # THEN exactly one notification per transition, none for evaluations that change nothing
    assert changes(cw, "kcluster-notify") == [
        (60.0, "INSUFFICIENT_DATA", "OK"),
        (180.0, "OK", "ALARM"),
        (360.0, "ALARM", "OK"),
    ]
    assert cw.recorder.counters["alarm_notifications"] == 3
    assert [(n.at - cw.start, n.state) for n in cw.alarms.notifications] == [
        (60.0, "OK"),
        (180.0, "ALARM"),
        (360.0, "OK"),
    ]
    envelopes = [
        json.loads(m["Body"])
        for m in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    ]
    assert sorted(e["Subject"] for e in envelopes) == sorted(
        [
            'OK: "kcluster-notify" in US East (N. Virginia)',
            'ALARM: "kcluster-notify" in US East (N. Virginia)',
            'OK: "kcluster-notify" in US East (N. Virginia)',
        ]
    )
    alarm_message = next(json.loads(e["Message"]) for e in envelopes if e["Subject"].startswith("ALARM"))
    assert {
        k: alarm_message[k] for k in ("AlarmName", "AlarmDescription", "NewStateValue", "OldStateValue")
    } == {
        "AlarmName": "kcluster-notify",
        "AlarmDescription": "notify me",
        "NewStateValue": "ALARM",
        "OldStateValue": "OK",
    }
    assert alarm_message["Region"] == "US East (N. Virginia)"
    assert alarm_message["AlarmArn"] == f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:kcluster-notify"
    assert alarm_message["StateChangeTime"] == "2026-01-01T00:03:00.000+0000"
    assert alarm_message["NewStateReason"].startswith("Threshold Crossed: 1 out of the last 1 datapoints")
    assert alarm_message["Trigger"] == {
        "MetricName": METRIC,
        "Namespace": NAMESPACE,
        "StatisticType": "Statistic",
        "Statistic": "SUM",
        "Unit": None,
        "Dimensions": [{"value": "api", "name": "Service"}],
        "Period": 60,
        "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "Threshold": 1.0,
        "TreatMissingData": "notBreaching",
        "EvaluateLowSampleCountPercentile": "",
    }
    notes = [e.text for e in cw.recorder.timeline if e.kind == "alarm" and "notification" in e.text]
    assert notes == [
        "alarm kcluster-notify: OK notification to kcluster-alerts",
        "alarm kcluster-notify: ALARM notification to kcluster-alerts",
        "alarm kcluster-notify: OK notification to kcluster-alerts",
    ]


def test_evaluation_adds_no_steps_to_the_world(cw):
    # GIVEN alarms whose changes no rule takes WHEN ten minutes pass
    put_alarm("kcluster-quiet", TreatMissingData="breaching")
    run_to(cw, 600)
    # THEN they were evaluated (at whole minutes), yet nothing was ever scheduled
    assert changes(cw, "kcluster-quiet") == [(60.0, "INSUFFICIENT_DATA", "ALARM")]
    assert cw.scheduler.pending() == 0
