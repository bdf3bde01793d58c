"""EventBridge's default bus for the twin: template.yaml's rules, matched with moto's own EventPattern.

moto keeps rules, but its PutEvents delivers synchronously, at no virtual delay and without the envelope
fields our consumers read. The twin's bus builds the real event envelope, records it, lets fault
injection (`interceptors`) drop, duplicate or delay it, and after the latency model's delivery delay
hands it to every ENABLED rule whose pattern matches: SQS targets get the event JSON as the message body
(Input / InputPath / InputTransformer honoured), Lambda targets are asynchronous invokes through the
function runtime (which retries as AWS does), SNS targets are published to. Schedule rules
(`rate(...)`) fire "Scheduled Event"s at the virtual-clock period.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
from moto.events.models import EventPattern

from twin.account import ACCOUNT_ID, REGION
from twin.aws.cfn import FunctionSpec, RuleSpec, Stack

if TYPE_CHECKING:
    from twin.clock import Scheduler
    from twin.latency import LatencyModel
    from twin.ports import LambdaTargets, ServiceAuthorizer
    from twin.recorder import Recorder

DEFAULT_EVENT_DELIVERY_SECONDS = 0.5
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}

# An interceptor sees each event once and returns what to deliver instead: [(extra delay s, event)].
# [] drops it, two entries duplicate it, a positive delay makes it late. No interceptor: delivered once.
Interceptor = Callable[[dict[str, Any]], list[tuple[float, dict[str, Any]]]]


@dataclass(frozen=True)
class EventBusContext:
    """What the bus uses. Without a latency model an event is delivered after 0.5 s; without IAM every
    delivery is allowed; without a function runtime no rule may target a Lambda function."""

    scheduler: Scheduler
    rng: random.Random  # event ids
    recorder: Recorder | None = None  # every event put on the bus
    latency: LatencyModel | None = None  # delivery delays
    functions: LambdaTargets | None = None  # Lambda targets, and pollers to wake for SQS targets
    iam: ServiceAuthorizer | None = None  # EventBridge's own permission on SQS and SNS targets


class EventBus:
    def __init__(
        self,
        context: EventBusContext,
        stack: Stack | None = None,
        *,
        region: str = REGION,
        account_id: str = ACCOUNT_ID,
    ):
        self.context = context
        self.region = region
        self.account_id = account_id
        self.rules: list[RuleSpec] = []
        self.stacks: list[Stack] = []
        self.interceptors: list[Interceptor] = []
        # (rule name, target id, event id) for every delivery, in order.
        self.deliveries: list[tuple[str, str, str]] = []
        self._patterns: dict[str, EventPattern] = {}
        self._sqs = boto3.client("sqs", region_name=region)
        self._sns = boto3.client("sns", region_name=region)
        if stack is not None:
            self.attach(stack)

    def attach(self, stack: Stack) -> None:
        """Take over a deployed stack's rules (and its functions and queues as targets)."""
        self.stacks.append(stack)
        for rule in stack.rules:
            if rule.event_bus_name != "default":
                raise NotImplementedError(f"rule {rule.logical_id}: only the default event bus is emulated")
            self.rules.append(rule)
            if rule.event_pattern is not None:
                self._patterns[rule.arn] = EventPattern.load(rule.event_pattern)

    # ----- PutEvents

    def put_events(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """PutEvents on the default bus; returns the API's response shape."""
        results = []
        for entry in entries:
            event = self._envelope(entry)
            self._record(event)
            self._schedule_delivery(event)
            results.append({"EventId": event["id"]})
        return {"FailedEntryCount": 0, "Entries": results}

    def _envelope(self, entry: dict[str, Any]) -> dict[str, Any]:
        detail = entry.get("Detail", "{}")
        when = entry.get("Time")
        if isinstance(when, datetime):
            when_text = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        elif isinstance(when, int | float):
            when_text = _iso(float(when))
        elif isinstance(when, str):
            when_text = when
        else:
            when_text = _iso(time.time())
        return {
            "version": "0",
            "id": str(uuid.UUID(int=self.context.rng.getrandbits(128), version=4)),
            "detail-type": entry["DetailType"],
            "source": entry["Source"],
            "account": self.account_id,
            "time": when_text,
            "region": self.region,
            "resources": list(entry.get("Resources") or []),
            "detail": json.loads(detail) if isinstance(detail, str) else detail,
        }

    def _record(self, event: dict[str, Any]) -> None:
        if self.context.recorder is not None:
            self.context.recorder.record_event(event)

    def _schedule_delivery(self, event: dict[str, Any]) -> None:
        latency = self.context.latency
        base_delay = DEFAULT_EVENT_DELIVERY_SECONDS if latency is None else latency.event_delivery_seconds()
        planned: list[tuple[float, dict[str, Any]]] = [(base_delay, event)]
        for interceptor in self.interceptors:
            planned = [
                (delay + extra, changed)
                for delay, original in planned
                for extra, changed in interceptor(original)
            ]
        for delay, planned_event in planned:
            self.context.scheduler.after(
                delay,
                f"event:{planned_event['detail-type']}",
                lambda planned_event=planned_event: self.deliver(planned_event),
            )

    # ----- delivery

    def matching_rules(self, event: dict[str, Any]) -> list[RuleSpec]:
        return [
            rule
            for rule in self.rules
            if rule.state == "ENABLED"
            and rule.event_pattern is not None
            and self._patterns[rule.arn].matches_event(event)
        ]

    def deliver(self, event: dict[str, Any]) -> list[str]:
        """Hand the event to the targets of every matching rule now; returns the matched rule names."""
        matched = self.matching_rules(event)
        for rule in matched:
            for target in rule.targets:
                self._send_to_target(rule, target, event)
        return [rule.name for rule in matched]

    def _send_to_target(self, rule: RuleSpec, target: dict[str, Any], event: dict[str, Any]) -> None:
        arn = target["Arn"]
        payload = _target_input(target, event)
        self.deliveries.append((rule.name, target.get("Id", ""), event["id"]))
        service = arn.split(":")[2]
        if not self._target_allows(rule, arn):
            return
        if service == "sqs":
            request: dict[str, Any] = {"QueueUrl": self._queue_url(arn), "MessageBody": payload}
            group = (target.get("SqsParameters") or {}).get("MessageGroupId")
            if group:
                request["MessageGroupId"] = group
            with self._twin_internal():
                self._sqs.send_message(**request)
            if self.context.functions is not None:
                self.context.functions.wake()
        elif service == "lambda":
            function = self._function(arn)
            if self.context.functions is None:
                raise NotImplementedError(
                    f"rule {rule.logical_id}: a Lambda target needs the function runtime"
                )
            self.context.functions.invoke_async(function.logical_id, json.loads(payload))
        elif service == "sns":
            with self._twin_internal():
                self._sns.publish(TopicArn=arn, Message=payload)
        else:
            raise NotImplementedError(f"rule {rule.logical_id}: target {arn} is not emulated")

    def _target_allows(self, rule: RuleSpec, arn: str) -> bool:
        """EventBridge delivers to SQS and SNS as events.amazonaws.com: the target's resource policy must
        allow it for this rule (aws:SourceArn). A refused delivery is a failed invocation on AWS (it goes
        to the target's dead-letter queue if it has one); the twin counts it and drops the event."""
        iam = self.context.iam
        action = {"sqs": "sqs:SendMessage", "sns": "sns:Publish"}.get(arn.split(":")[2])
        if iam is None or action is None:
            return True
        denial = iam.authorize_service("events.amazonaws.com", action, arn, {"aws:SourceArn": rule.arn})
        if denial is None:
            return True
        if self.context.recorder is not None:
            self.context.recorder.count("event_deliveries_denied")
            self.context.recorder.note(
                "iam", f"rule {rule.name} could not deliver to {arn}: {denial.message}"
            )
        return False

    def _queue_url(self, arn: str) -> str:
        for stack in self.stacks:
            try:
                return stack.queue_url_by_arn(arn)
            except KeyError:
                continue
        account, name = arn.split(":")[4], arn.split(":")[5]
        with self._twin_internal():
            return self._sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]

    def _function(self, arn: str) -> FunctionSpec:
        for stack in self.stacks:
            try:
                return stack.function_by_arn_or_name(arn)
            except KeyError:
                continue
        raise KeyError(f"no function {arn} in the attached stacks")

    def _twin_internal(self) -> contextlib.AbstractContextManager[None]:
        """EventBridge's own calls to its targets are not the product's API calls."""
        recorder = self.context.recorder
        return contextlib.nullcontext() if recorder is None else recorder.paused()

    # ----- schedules

    def schedule_rules(self) -> list[str]:
        """Start the ENABLED schedule rules' clocks; returns the names of the rules scheduled."""
        started = []
        for rule in self.rules:
            if rule.schedule_expression is None or rule.state != "ENABLED":
                continue
            period = schedule_period_seconds(rule.schedule_expression)
            self._schedule_tick(rule, period)
            started.append(rule.name)
        return started

    def _schedule_tick(self, rule: RuleSpec, period: float) -> None:
        def fire() -> None:
            event = {
                "version": "0",
                "id": str(uuid.UUID(int=self.context.rng.getrandbits(128), version=4)),
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": self.account_id,
                "time": _iso(time.time()),
                "region": self.region,
                "resources": [rule.arn],
                "detail": {},
            }
            self._record(event)
            for target in rule.targets:
                self._send_to_target(rule, target, event)
            self._schedule_tick(rule, period)

        self.context.scheduler.after(period, f"schedule:{rule.name}", fire)


def schedule_period_seconds(expression: str) -> float:
    """Seconds between runs of a `rate(N unit)` schedule; cron expressions are not emulated."""
    match = _RATE.match(expression.strip())
    if not match:
        raise NotImplementedError(f"schedule {expression!r}: only rate(N minute|minutes|hour|hours|day|days)")
    count, unit = int(match.group(1)), match.group(2).rstrip("s")
    if count < 1 or (count == 1) != (match.group(2) == unit):
        raise ValueError(f"schedule {expression!r}: use '1 {unit}' and 'N {unit}s' as EventBridge requires")
    return float(count * _UNIT_SECONDS[unit])


def _iso(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json_path(document: Any, path: str) -> Any:
    """The subset of JSONPath EventBridge input paths use: $ and $.a.b.c."""
    if path == "$":
        return document
    if not path.startswith("$."):
        raise NotImplementedError(f"input path {path!r}")
    value = document
    for part in path[2:].split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _target_input(target: dict[str, Any], event: dict[str, Any]) -> str:
    if "Input" in target:
        return target["Input"]
    if "InputPath" in target:
        return json.dumps(_json_path(event, target["InputPath"]))
    transformer = target.get("InputTransformer")
    if transformer:
        values = {
            name: _json_path(event, path) for name, path in (transformer.get("InputPathsMap") or {}).items()
        }

        def placeholder(match: re.Match[str]) -> str:
            value = values.get(match.group(1))
            return value if isinstance(value, str) else json.dumps(value)

        return re.sub(r"<([A-Za-z0-9_.-]+)>", placeholder, transformer["InputTemplate"])
    return json.dumps(event)
