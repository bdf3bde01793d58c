"""CloudWatch metric alarm evaluation for the twin, which moto 5.2.1 does not do.

moto stores alarms and metric data but never changes an alarm's state by itself (and creates alarms in
`OK`). This module evaluates them as CloudWatch does, at each whole virtual minute, against the metric
data in moto's CloudWatch backend (read directly: no API call, nothing counted as the product's):

* alarms start in `INSUFFICIENT_DATA` ("Unchecked: Initial alarm creation"); PutMetricAlarm on an
  existing alarm keeps its state (moto would reset it);
* the metric: Namespace, MetricName and exactly the alarm's set of Dimensions (a datum with one more or
  one fewer dimension is another metric), Unit if the alarm names one; an alarm whose `Metrics` hold a
  single MetricStat (no expression) is evaluated like one with those fields;
* each evaluation at minute W looks at the periods ending at W: [W - k*Period, W - (k-1)*Period), so only
  completed periods count (a period still in progress is not evaluated), with the Statistic
  (SampleCount, Average, Sum, Minimum, Maximum) of the data whose timestamps fall in each;
* the evaluation range is EvaluationPeriods + 2 periods; DatapointsToAlarm (M, default N) out of
  EvaluationPeriods (N); ComparisonOperator (GreaterThanOrEqualToThreshold, GreaterThanThreshold,
  LessThanThreshold, LessThanOrEqualToThreshold) against Threshold;
* missing data as AWS documents it ("Configuring how CloudWatch alarms treat missing data"): with at
  least N real datapoints in the range the N most recent are evaluated and TreatMissingData does not
  matter; with none, `missing` -> INSUFFICIENT_DATA, `ignore` -> state kept, `breaching` -> ALARM,
  `notBreaching` -> OK; with some but fewer than N, every real datapoint counts and `breaching` /
  `notBreaching` fill the shortfall, while `missing` / `ignore` go to ALARM on M breaching datapoints,
  to OK on any non-breaching one, and otherwise `missing` goes to ALARM only when the oldest breaching
  datapoint among the last N periods is at least M periods old ("avoiding premature transitions") and
  to INSUFFICIENT_DATA if not, `ignore` keeps the state. AWS/DynamoDB alarms always ignore missing data.

On a state change the alarm is updated in moto as SetAlarmState would (value, reason, reason data, state
timestamp, history), a `CloudWatch Alarm State Change` event (source `aws.cloudwatch`, resources [alarm
ARN], detail alarmName / configuration / previousState / state, in EventBridge's documented shape) is
recorded and handed to the bus's matching rules after a fixed short delay (alarm state change events are
durable: no fault injection), and, when actions are enabled, the alarm notification (AWS's JSON message,
subject `ALARM: "<name>" in US East (N. Virginia)`) is published through moto's SNS backend to each SNS
topic among AlarmActions (-> ALARM), OKActions (-> OK) or InsufficientDataActions (-> INSUFFICIENT_DATA).
Every notification is counted (`alarm_notifications`) and, like every state change, noted on the
timeline (kind "alarm"); `evaluator.transitions` keeps (time, alarm name, old, new).

DescribeAlarms applies its filters together, as AWS does (moto 5.2.1 applies only the first it finds,
so AlarmNames with StateValue=ALARM answered every named alarm in any state), and returns metric alarms
only unless AlarmTypes asks for composite ones.

Not emulated, and left alone (noted once on the timeline): metric-math alarms, percentile statistics,
anomaly-detection thresholds, composite alarms. Also simplified: high-resolution alarms (periods under a
minute) are evaluated once a minute too; metrics that moto computes on the fly (S3) are not read; alarm
configuration-change events and SetAlarmState's own events and actions are not produced; the reason
texts follow AWS's wording but are not guaranteed to match it word for word.

Evaluations run on the twin's ticker (twin/ticker.py), not as scheduler calls. Event and message ids come
from a generator of this module's own, seeded from the twin's seed: the world's generators are untouched.
"""

from __future__ import annotations

import bisect
import json
import math
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from moto.cloudwatch import models as cloudwatch_models
from moto.cloudwatch import responses as cloudwatch_responses
from moto.cloudwatch.models import MetricAggregatedDatum, MetricDatum, cloudwatch_backends
from moto.core.responses import ActionResult
from moto.sns.models import sns_backends

from twin.account import ACCOUNT_ID, REGION
from twin.iam import resources as iam_resources

if TYPE_CHECKING:
    from twin.clock import Scheduler, VirtualClock
    from twin.ports import EventRouter, ServiceAuthorizer
    from twin.recorder import Recorder

MINUTE = 60.0
# EventBridge hands an alarm's state change to the rules shortly after it happens.
EVENT_DELIVERY_SECONDS = 0.5
DETAIL_TYPE = "CloudWatch Alarm State Change"
SOURCE = "aws.cloudwatch"
INITIAL_REASON = "Unchecked: Initial alarm creation"

OK, ALARM, INSUFFICIENT_DATA = "OK", "ALARM", "INSUFFICIENT_DATA"
MISSING, IGNORE, BREACHING, NOT_BREACHING = "missing", "ignore", "breaching", "notBreaching"
STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
COMPARISONS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}
REGION_NAMES = {
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)",
    "us-west-2": "US West (Oregon)",
    "eu-west-1": "EU (Ireland)",
    "eu-central-1": "EU (Frankfurt)",
}


@dataclass(frozen=True)
class MetricSpec:
    """What an alarm watches."""

    metric_id: str
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    period: int
    stat: str
    unit: str | None


@dataclass(frozen=True)
class Datapoint:
    start: float  # the period's start (epoch seconds)
    value: float | None  # None: missing
    sample_count: float


@dataclass(frozen=True)
class Decision:
    state: str | None  # None: keep the current state
    evaluated: tuple[Datapoint, ...]  # the real datapoints the decision used, oldest first
    filled: int  # missing datapoints filled in by TreatMissingData
    breaching: int  # breaching datapoints (filled ones included)


@dataclass(frozen=True)
class AlarmTransition:
    at: float
    alarm: str
    old: str
    new: str


@dataclass(frozen=True)
class Notification:
    at: float
    alarm: str
    topic_arn: str
    state: str
    message_id: str


def decide(
    points: list[Datapoint],
    *,
    evaluation_periods: int,
    datapoints_to_alarm: int,
    breaches: Callable[[float], bool],
    treat_missing_data: str,
) -> Decision:
    """The state CloudWatch sets from the evaluation range `points` (oldest first)."""
    n, m = evaluation_periods, datapoints_to_alarm
    real = [p for p in points if p.value is not None]
    if len(real) >= n:
        chosen = real[-n:]
        breaching = sum(1 for p in chosen if breaches(p.value))  # type: ignore[arg-type]
        return Decision(ALARM if breaching >= m else OK, tuple(chosen), 0, breaching)
    real_breaching = sum(1 for p in real if breaches(p.value))  # type: ignore[arg-type]
    fill = n - len(real)
    if treat_missing_data in (BREACHING, NOT_BREACHING):
        breaching = real_breaching + (fill if treat_missing_data == BREACHING else 0)
        return Decision(ALARM if breaching >= m else OK, tuple(real), fill, breaching)
    keep_or_unknown = None if treat_missing_data == IGNORE else INSUFFICIENT_DATA
    if not real:
        return Decision(keep_or_unknown, (), 0, 0)
    if real_breaching >= m:
        return Decision(ALARM, tuple(real), 0, real_breaching)
    if real_breaching < len(real):
        return Decision(OK, tuple(real), 0, real_breaching)
    if treat_missing_data == MISSING:
        # Avoiding premature transitions: ALARM once the oldest breaching datapoint among the last N
        # periods is at least M periods old (all the more recent ones breaching or missing).
        recent = points[-n:]
        ages = [n - i for i, p in enumerate(recent) if p.value is not None]
        if ages and max(ages) >= m:
            return Decision(ALARM, tuple(real), 0, real_breaching)
    return Decision(keep_or_unknown, tuple(real), 0, real_breaching)


class _MetricIndex:
    """moto's metric data (an append-only list) indexed by metric: (timestamps, data) sorted by time."""

    def __init__(self) -> None:
        self._source: list[Any] | None = None
        self._seen = 0
        self._series: dict[tuple[str, str, frozenset[tuple[str, str]]], tuple[list[float], list[Any]]] = {}
        self._unsorted: set[tuple[str, str, frozenset[tuple[str, str]]]] = set()

    def update(self, data: list[Any]) -> None:
        if data is not self._source or len(data) < self._seen:
            self._source, self._seen, self._series, self._unsorted = data, 0, {}, set()
        for datum in data[self._seen :]:
            key = (datum.namespace, datum.name, frozenset((d.name, d.value) for d in datum.dimensions))
            times, items = self._series.setdefault(key, ([], []))
            at = _epoch(datum.timestamp)
            if times and at < times[-1]:
                self._unsorted.add(key)
            times.append(at)
            items.append(datum)
        self._seen = len(data)

    def window(self, spec: MetricSpec, start: float, end: float) -> list[Any]:
        key = (spec.namespace, spec.name, frozenset(spec.dimensions))
        if key not in self._series:
            return []
        if key in self._unsorted:
            pairs = sorted(zip(*self._series[key], strict=True), key=lambda pair: pair[0])
            self._series[key] = ([t for t, _ in pairs], [d for _, d in pairs])
            self._unsorted.discard(key)
        times, items = self._series[key]
        found = items[bisect.bisect_left(times, start) : bisect.bisect_left(times, end)]
        if spec.unit:
            found = [d for d in found if d.unit == spec.unit]
        return found


@dataclass(frozen=True)
class AlarmContext:
    """What alarm evaluation uses."""

    clock: VirtualClock
    scheduler: Scheduler  # the state-change event's delivery
    recorder: Recorder  # the state-change events, notification counts, timeline notes
    seed: int  # seeds this module's own id generator (the world's generators stay untouched)
    bus: EventRouter | None = None  # rules the state-change events go to; None: nowhere
    iam: ServiceAuthorizer | None = None  # CloudWatch's own permission on the SNS topics; None: allowed


class AlarmEvaluator:
    def __init__(self, context: AlarmContext) -> None:
        self.context = context
        self.transitions: list[AlarmTransition] = []
        self.notifications: list[Notification] = []
        self._next_minute = (math.floor(context.clock.now() / MINUTE) + 1) * MINUTE
        self._index = _MetricIndex()
        self._noted: set[tuple[str, Any]] = set()
        self._ids = random.Random(f"kcluster-twin-alarms/{context.seed}")

    # ---- the ticker's interface ---------------------------------------------------------------

    def next_due(self) -> float | None:
        return self._next_minute

    def run_due(self, now: float) -> None:
        minute = self._next_minute
        self._next_minute += MINUTE
        self.evaluate_all(minute)

    # ---- evaluation ---------------------------------------------------------------------------

    def evaluate_all(self, minute: float) -> None:
        """Evaluate every metric alarm of the region over the periods ending at `minute`."""
        backend = cloudwatch_backends[ACCOUNT_ID][REGION]
        self._index.update(backend.metric_data)
        for alarm in list(backend.alarms.values()):
            self.evaluate(alarm, minute)

    def evaluate(self, alarm: Any, minute: float) -> str | None:
        """Evaluate one alarm; returns its new state if it changed."""
        spec, why_not = metric_spec(alarm)
        if spec is None:
            key = (alarm.name, alarm.configuration_updated_timestamp)
            if key not in self._noted:
                self._noted.add(key)
                self._note(
                    f"alarm {alarm.name}: not evaluated by the twin ({why_not}); its state stays as set"
                )
            return None
        n = int(alarm.evaluation_periods)
        m = int(alarm.datapoints_to_alarm or n)
        points = []
        for k in range(n + 2, 0, -1):
            start = minute - k * spec.period
            data = self._index.window(spec, start, start + spec.period)
            points.append(_datapoint(start, data, spec.stat))
        compare, _ = COMPARISONS[alarm.comparison_operator]
        threshold = float(alarm.threshold)
        treat = alarm.treat_missing_data or MISSING
        if spec.namespace == "AWS/DynamoDB":
            treat = IGNORE
        decision = decide(
            points,
            evaluation_periods=n,
            datapoints_to_alarm=m,
            breaches=lambda value: compare(value, threshold),
            treat_missing_data=treat,
        )
        old = alarm.state_value
        if decision.state is None or decision.state == old:
            return None
        reason = _reason(alarm, decision, old, n, m, points, treat)
        reason_data = _reason_data(alarm, spec, decision, minute)
        self._change(alarm, spec, old, decision.state, reason, reason_data)
        return decision.state

    # ---- a state change -----------------------------------------------------------------------

    def _change(
        self, alarm: Any, spec: MetricSpec, old: str, new: str, reason: str, reason_data: str
    ) -> None:
        previous = {
            "reason": alarm.state_reason,
            "reasonData": alarm.state_reason_data,
            "timestamp": _aws_time(alarm.state_updated_timestamp),
            "value": old,
        }
        if previous["reasonData"] in (None, "", "{}"):
            del previous["reasonData"]
        alarm.update_state(reason, reason_data, new)  # as SetAlarmState does (history, timestamp)
        now = self.context.clock.now()
        self.transitions.append(AlarmTransition(now, alarm.name, old, new))
        self._note(f"alarm {alarm.name}: {old} -> {new} ({reason})")
        self._emit_event(alarm, spec, previous)
        if alarm.actions_enabled:
            actions = {
                ALARM: alarm.alarm_actions,
                OK: alarm.ok_actions,
                INSUFFICIENT_DATA: alarm.insufficient_data_actions,
            }[new]
            for arn in actions or []:
                self._notify(alarm, spec, arn, old)

    def _emit_event(self, alarm: Any, spec: MetricSpec, previous: dict[str, Any]) -> None:
        configuration: dict[str, Any] = {}
        if alarm.description:
            configuration["description"] = alarm.description
        configuration["metrics"] = [
            {
                "id": spec.metric_id,
                "metricStat": {
                    "metric": {
                        "dimensions": dict(spec.dimensions),
                        "name": spec.name,
                        "namespace": spec.namespace,
                    },
                    "period": spec.period,
                    "stat": spec.stat,
                },
                "returnData": True,
            }
        ]
        event = {
            "version": "0",
            "id": self._uuid(),
            "detail-type": DETAIL_TYPE,
            "source": SOURCE,
            "account": ACCOUNT_ID,
            "time": datetime.fromtimestamp(self.context.clock.now(), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": [alarm.alarm_arn],
            "detail": {
                "alarmName": alarm.name,
                "configuration": configuration,
                "previousState": previous,
                "state": {
                    "reason": alarm.state_reason,
                    "reasonData": alarm.state_reason_data,
                    "timestamp": _aws_time(alarm.state_updated_timestamp),
                    "value": alarm.state_value,
                },
            },
        }
        self.context.recorder.record_event(event)
        bus = self.context.bus
        if bus is not None and bus.matching_rules(event):
            # Durable and on time: no fault injection, no drawn latency. Looked up at delivery, so a
            # wrapped `bus.deliver` (tests do that) sees it.
            self.context.scheduler.after(
                EVENT_DELIVERY_SECONDS, f"event:{DETAIL_TYPE}", lambda: bus.deliver(event)
            )

    def _may_publish(self, alarm: Any, topic_arn: str, topic: Any) -> bool:
        """CloudWatch publishes as cloudwatch.amazonaws.com: the topic policy must allow it and, for an
        encrypted topic, the key policy must let it use the key (alias/aws/sns's never does). A refused
        action is only in the alarm's history on AWS: the twin counts it and notes it."""
        iam = self.context.iam
        if iam is None:
            return True
        context = {"aws:SourceArn": alarm.alarm_arn}
        denial = iam.authorize_service("cloudwatch.amazonaws.com", "sns:Publish", topic_arn, context)
        if denial is None and topic.kms_master_key_id:
            key = iam_resources.key_arn(topic.kms_master_key_id, REGION, topic_arn.split(":")[4])
            for action in ("kms:GenerateDataKey", "kms:Decrypt"):
                denial = denial or iam.authorize_service("cloudwatch.amazonaws.com", action, key, context)
        if denial is None:
            return True
        self.context.recorder.count("alarm_actions_failed")
        self.context.recorder.note("alarm", f"{alarm.name}: action to {topic_arn} failed: {denial.message}")
        return False

    def _notify(self, alarm: Any, spec: MetricSpec, arn: str, old: str) -> None:
        parts = arn.split(":")
        if len(parts) < 6 or parts[2] != "sns":
            return  # Auto Scaling, EC2, Systems Manager actions... are not emulated
        try:
            backend = sns_backends[parts[4]][parts[3]]
        except Exception:  # an account or region moto does not know
            return
        topic = backend.topics.get(arn)
        if topic is None:
            return  # AWS does not validate actions: a missing topic gets nothing
        if not self._may_publish(alarm, arn, topic):
            return
        region_name = REGION_NAMES.get(REGION, REGION)
        subject = f'{alarm.state_value}: "{alarm.name}" in {region_name}'[:100]
        message = json.dumps(_notification(alarm, spec, old, region_name))
        message_id = self._uuid()
        # Topic.publish without moto's own id generator (its draws would shift moto's resource ids).
        subscriptions, _ = backend.list_subscriptions_by_topic(topic_arn=arn)
        for subscription in subscriptions:
            subscription.publish(message, message_id, subject=subject)
        topic.sent_notifications.append((message_id, message, subject, None, None))
        now = self.context.clock.now()
        self.notifications.append(Notification(now, alarm.name, arn, alarm.state_value, message_id))
        self.context.recorder.count("alarm_notifications")
        self._note(f"alarm {alarm.name}: {alarm.state_value} notification to {topic.name}")

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def _note(self, text: str) -> None:
        self.context.recorder.note("alarm", text)


# ---- helpers --------------------------------------------------------------------------------------


def metric_spec(alarm: Any) -> tuple[MetricSpec | None, str]:
    """What the alarm watches, or (None, why the twin cannot evaluate it)."""
    if getattr(alarm, "rule", None):
        return None, "composite alarm"
    if alarm.threshold_metric_id:
        return None, "anomaly detection threshold"
    if alarm.comparison_operator not in COMPARISONS:
        return None, f"comparison {alarm.comparison_operator}"
    queries = alarm.metric_data_queries or []
    if queries:
        stats = [q for q in queries if q.metric_stat is not None]
        if len(queries) != 1 or len(stats) != 1 or queries[0].expression:
            return None, "metric math"
        query = queries[0]
        stat = query.metric_stat
        metric = stat.metric
        spec = MetricSpec(
            metric_id=query.id,
            namespace=metric.namespace,
            name=metric.metric_name,
            dimensions=tuple(sorted((d.name, d.value) for d in metric.dimensions)),
            period=int(stat.period or 0),
            stat=stat.stat,
            unit=stat.unit,
        )
    else:
        if alarm.extended_statistic or not alarm.statistic:
            return None, f"statistic {alarm.extended_statistic or alarm.statistic}"
        if not alarm.period:
            return None, "no period"
        spec = MetricSpec(
            metric_id=str(uuid.uuid5(uuid.NAMESPACE_URL, alarm.alarm_arn)),
            namespace=alarm.namespace,
            name=alarm.metric_name,
            dimensions=tuple(sorted((d.name, d.value) for d in alarm.dimensions)),
            period=int(alarm.period),
            stat=alarm.statistic,
            unit=alarm.unit,
        )
    if spec.stat not in STATISTICS:
        return None, f"statistic {spec.stat}"
    if spec.period <= 0:
        return None, f"period {spec.period}"
    if not alarm.evaluation_periods:
        return None, "no evaluation periods"
    return spec, ""


def _datapoint(start: float, data: list[Any], stat: str) -> Datapoint:
    count = total = 0.0
    low, high = math.inf, -math.inf
    for datum in data:
        if isinstance(datum, MetricAggregatedDatum):
            count += datum.sample_count
            total += datum.sum
            low, high = min(low, datum.min), max(high, datum.max)
        elif isinstance(datum, MetricDatum):
            count += 1
            total += datum.value
            low, high = min(low, datum.value), max(high, datum.value)
    if count <= 0:
        return Datapoint(start, None, 0.0)
    value = {
        "SampleCount": count,
        "Sum": total,
        "Average": total / count,
        "Minimum": low,
        "Maximum": high,
    }[stat]
    return Datapoint(start, float(value), count)


def _reason(
    alarm: Any, decision: Decision, old: str, n: int, m: int, points: list[Datapoint], treat: str
) -> str:
    new = decision.state
    if new == INSUFFICIENT_DATA:
        unknown = sum(1 for p in points if p.value is None)
        return f"Insufficient Data: {unknown} datapoint{_s(unknown)} {_were(unknown)} unknown."
    _, words = COMPARISONS[alarm.comparison_operator]
    threshold = float(alarm.threshold)
    treated = "[Breaching]" if treat == BREACHING else "[NonBreaching]"
    if not decision.evaluated:
        f = decision.filled
        return (
            f"Threshold Crossed: no datapoints were received for {f} period{_s(f)} and {f} missing "
            f"datapoint{_s(f)} {_were(f)} treated as {treated}."
        )
    counted = [p for p in decision.evaluated if _breaches(alarm, p.value) == (new == ALARM)]
    count = len(counted)
    listed = ", ".join(f"{p.value!r} ({_reason_time(p.start)})" for p in reversed(counted))
    relation = words if new == ALARM else f"not {words}"
    minimum = m if new == ALARM else n - m + 1
    filled = ""
    if decision.filled:
        f = decision.filled
        filled = f" and {f} missing datapoint{_s(f)} {_were(f)} treated as {treated}"
    return (
        f"Threshold Crossed: {count} out of the last {n} datapoints [{listed}] {_were(count)} {relation} "
        f"the threshold ({threshold!r}){filled} (minimum {minimum} datapoint{_s(minimum)} for "
        f"{old} -> {new} transition)."
    )


def _breaches(alarm: Any, value: float | None) -> bool:
    compare, _ = COMPARISONS[alarm.comparison_operator]
    return value is not None and compare(value, float(alarm.threshold))


def _reason_data(alarm: Any, spec: MetricSpec, decision: Decision, minute: float) -> str:
    data: dict[str, Any] = {"version": "1.0", "queryDate": _aws_time(minute)}
    if decision.evaluated:
        data["startDate"] = _aws_time(decision.evaluated[0].start)
    data.update(
        {
            "statistic": spec.stat,
            "period": spec.period,
            "recentDatapoints": [p.value for p in decision.evaluated],
            "threshold": float(alarm.threshold),
            "evaluatedDatapoints": [
                {"timestamp": _aws_time(p.start), "sampleCount": p.sample_count, "value": p.value}
                for p in reversed(decision.evaluated)
            ],
        }
    )
    return json.dumps(data, separators=(",", ":"))


def _notification(alarm: Any, spec: MetricSpec, old: str, region_name: str) -> dict[str, Any]:
    """The JSON message CloudWatch publishes to an SNS topic for an alarm action."""
    return {
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.description,
        "AWSAccountId": ACCOUNT_ID,
        "AlarmConfigurationUpdatedTimestamp": _aws_time(alarm.configuration_updated_timestamp),
        "NewStateValue": alarm.state_value,
        "NewStateReason": alarm.state_reason,
        "StateChangeTime": _aws_time(alarm.state_updated_timestamp),
        "Region": region_name,
        "AlarmArn": alarm.alarm_arn,
        "OldStateValue": old,
        "OKActions": list(alarm.ok_actions or []),
        "AlarmActions": list(alarm.alarm_actions or []),
        "InsufficientDataActions": list(alarm.insufficient_data_actions or []),
        "Trigger": {
            "MetricName": spec.name,
            "Namespace": spec.namespace,
            "StatisticType": "Statistic",
            "Statistic": _upper_snake(spec.stat),
            "Unit": spec.unit,
            "Dimensions": [{"value": value, "name": name} for name, value in spec.dimensions],
            "Period": spec.period,
            "EvaluationPeriods": int(alarm.evaluation_periods),
            "DatapointsToAlarm": int(alarm.datapoints_to_alarm or alarm.evaluation_periods),
            "ComparisonOperator": alarm.comparison_operator,
            "Threshold": float(alarm.threshold),
            "TreatMissingData": alarm.treat_missing_data or MISSING,
            "EvaluateLowSampleCountPercentile": alarm.evaluate_low_sample_count_percentile or "",
        },
    }


def _upper_snake(stat: str) -> str:
    return "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(stat)).upper()


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _were(count: int) -> str:
    return "was" if count == 1 else "were"


def _epoch(moment: Any) -> float:
    if isinstance(moment, datetime):
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    return float(moment)


def _aws_time(moment: Any) -> str:
    """2019-10-02T17:04:40.989+0000, as CloudWatch writes its timestamps."""
    when = datetime.fromtimestamp(_epoch(moment), tz=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+0000"


def _reason_time(start: float) -> str:
    return datetime.fromtimestamp(start, tz=UTC).strftime("%d/%m/%y %H:%M:%S")


# ---- the patch ------------------------------------------------------------------------------------


def install() -> Callable[[], None]:
    """New alarms start in INSUFFICIENT_DATA and updates keep the state, and DescribeAlarms combines its
    filters, as in AWS; returns the undo."""
    backend_cls = cloudwatch_models.CloudWatchBackend
    original = backend_cls.__dict__["put_metric_alarm"]

    def put_metric_alarm(self: Any, *args: Any, **kwargs: Any) -> Any:
        name = kwargs["name"] if "name" in kwargs else args[0]
        existing = self.alarms.get(name)
        alarm = original(self, *args, **kwargs)
        if existing is not None and existing is not alarm:
            alarm.state_value = existing.state_value
            alarm.state_reason = existing.state_reason
            alarm.state_reason_data = existing.state_reason_data
            alarm.state_updated_timestamp = existing.state_updated_timestamp
            alarm.history = existing.history
        elif existing is None:
            _start_unchecked(alarm)
        return alarm

    backend_cls.put_metric_alarm = put_metric_alarm
    # Alarms created before (the stack's) have never been evaluated: moto left them OK.
    for alarm in cloudwatch_backends[ACCOUNT_ID][REGION].alarms.values():
        if alarm.state_value == OK and alarm.state_reason == INITIAL_REASON and not alarm.history:
            _start_unchecked(alarm)

    responses_cls = cloudwatch_responses.CloudWatchResponse
    original_describe = responses_cls.__dict__["describe_alarms"]
    responses_cls.describe_alarms = _describe_alarms  # type: ignore[method-assign]

    def undo() -> None:
        backend_cls.put_metric_alarm = original
        responses_cls.describe_alarms = original_describe

    return undo


def _describe_alarms(self: Any) -> Any:
    """DescribeAlarms with its filters combined, as AWS applies them. moto 5.2.1 applies only the first
    of ActionPrefix, AlarmNamePrefix, AlarmNames, StateValue it finds (so `AlarmNames` + `StateValue`
    answered every named alarm, whatever its state) and ignores AlarmTypes, whose omission AWS reads as
    metric alarms only."""
    action_prefix = self._get_param("ActionPrefix")
    name_prefix = self._get_param("AlarmNamePrefix")
    names = self._get_param("AlarmNames", [])
    state_value = self._get_param("StateValue")
    types = self._get_param("AlarmTypes", []) or ["MetricAlarm"]
    alarms = [
        alarm
        for alarm in self.cloudwatch_backend.describe_alarms()
        if (not names or alarm.name in names)
        and (not name_prefix or alarm.name.startswith(name_prefix))
        and (not action_prefix or any(a.startswith(action_prefix) for a in alarm.alarm_actions))
        and (not state_value or alarm.state_value == state_value)
    ]
    metric_alarms = [a for a in alarms if a.rule is None] if "MetricAlarm" in types else []
    composite_alarms = [a for a in alarms if a.rule is not None] if "CompositeAlarm" in types else []
    return ActionResult({"MetricAlarms": metric_alarms, "CompositeAlarms": composite_alarms})


def _start_unchecked(alarm: Any) -> None:
    alarm.state_value = INSUFFICIENT_DATA
    alarm.state_reason = INITIAL_REASON
    alarm.state_reason_data = "{}"


__all__ = [
    "ALARM",
    "INSUFFICIENT_DATA",
    "OK",
    "AlarmEvaluator",
    "AlarmTransition",
    "Datapoint",
    "Decision",
    "Notification",
    "decide",
    "install",
    "metric_spec",
]
