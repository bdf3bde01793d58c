"""Parsing of the events kcluster reacts to, with Powertools Parser (pydantic) models.

The queue carries EventBridge events of three kinds (ASG lifecycle actions, SSM command invocation
status changes, the node's own "Node Provisioned"), one per message: ``ReactorRecord`` is the queue
record whose body is one of them, told apart by detail-type (a discriminated union), and
``ReactorBatchProcessor`` is Powertools' BatchProcessor over it. Each event is parsed once; one that does
not fit is logged as refused with a reason and reported as a batch item failure, and nothing is
decided from it. ``parse_event`` parses one event alone, raising ``EventRejected``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.base import FailureResponse
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel, SqsRecordModel
from pydantic import BaseModel, ConfigDict, Field, Json, TypeAdapter, ValidationError

from kcluster.core.phases import IllegalTransition

INSTANCE_ID = r"^i-[0-9a-f]{8,17}$"


class EventRejected(ValueError):
    """An event that does not fit any shape kcluster knows."""


class EventNotForUs(ValueError):
    """A well-formed event about another cluster's resources."""


class _Detail(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class LifecycleActionDetail(_Detail):
    LifecycleActionToken: str = Field(min_length=1, max_length=36)
    AutoScalingGroupName: str = Field(min_length=1, max_length=255)
    LifecycleHookName: str = Field(min_length=1, max_length=255)
    EC2InstanceId: str = Field(pattern=INSTANCE_ID)
    LifecycleTransition: Literal["autoscaling:EC2_INSTANCE_LAUNCHING", "autoscaling:EC2_INSTANCE_TERMINATING"]
    NotificationMetadata: str | None = None
    # Absent in some deliveries (DESIGN.md section 8).
    Origin: Literal["EC2", "AutoScalingGroup", "WarmPool"] | None = None
    Destination: Literal["EC2", "AutoScalingGroup", "WarmPool"] | None = None


class CommandInvocationDetail(_Detail):
    command_id: str = Field(alias="command-id", min_length=36, max_length=36)
    document_name: str = Field(alias="document-name", min_length=3, max_length=128)
    instance_id: str = Field(alias="instance-id", pattern=INSTANCE_ID)
    requested_date_time: str | None = Field(default=None, alias="requested-date-time")
    status: str = Field(min_length=1, max_length=32)


class NodeProvisionedDetail(_Detail):
    cluster: str = Field(min_length=3, max_length=32)
    instance_id: str = Field(alias="instance-id", pattern=INSTANCE_ID)
    role: Literal["control-plane", "worker"]


class LaunchLifecycleEvent(EventBridgeModel):
    source: Literal["aws.autoscaling"]
    detail_type: Literal["EC2 Instance-launch Lifecycle Action"] = Field(alias="detail-type")
    detail: LifecycleActionDetail


class TerminateLifecycleEvent(EventBridgeModel):
    source: Literal["aws.autoscaling"]
    detail_type: Literal["EC2 Instance-terminate Lifecycle Action"] = Field(alias="detail-type")
    detail: LifecycleActionDetail


class CommandStatusEvent(EventBridgeModel):
    source: Literal["aws.ssm"]
    detail_type: Literal["EC2 Command Invocation Status-change Notification"] = Field(alias="detail-type")
    detail: CommandInvocationDetail


class NodeProvisionedEvent(EventBridgeModel):
    source: Literal["kcluster.node"]
    detail_type: Literal["Node Provisioned"] = Field(alias="detail-type")
    detail: NodeProvisionedDetail


class AlarmState(_Detail):
    value: Literal["OK", "ALARM", "INSUFFICIENT_DATA"]
    reason: str = ""
    timestamp: str | None = None


class AlarmMetric(_Detail):
    """One entry of configuration.metrics: a metric (metricStat) or a math expression (expression)."""

    id: str
    metricStat: dict[str, Any] | None = None
    expression: str | None = None
    returnData: bool | None = None


class AlarmConfiguration(_Detail):
    description: str | None = None
    # A single-metric alarm has one metricStat entry; a metric-math alarm an expression and its inputs.
    metrics: list[AlarmMetric] = Field(default_factory=list)
    # A composite alarm has a rule over other alarms instead of metrics.
    alarmRule: str | None = None


class AlarmStateChangeDetail(_Detail):
    alarmName: str = Field(min_length=1, max_length=255)
    state: AlarmState
    previousState: AlarmState
    configuration: AlarmConfiguration = AlarmConfiguration()

    @property
    def shape(self) -> Literal["composite", "metric-math", "single-metric"]:
        if self.configuration.alarmRule is not None:
            return "composite"
        if any(metric.expression for metric in self.configuration.metrics):
            return "metric-math"
        return "single-metric"


class AlarmStateChangeEvent(EventBridgeModel):
    source: Literal["aws.cloudwatch"]
    detail_type: Literal["CloudWatch Alarm State Change"] = Field(alias="detail-type")
    detail: AlarmStateChangeDetail


KnownEvent = LaunchLifecycleEvent | TerminateLifecycleEvent | CommandStatusEvent | NodeProvisionedEvent
# The event shapes the reactor takes, told apart by their detail-type.
KnownEventShape = Annotated[KnownEvent, Field(discriminator="detail_type")]
_KNOWN: TypeAdapter[KnownEvent] = TypeAdapter(KnownEventShape)


class ReactorRecord(SqsRecordModel):
    """One message of the reactor's queue: an EventBridge event of one of the known shapes."""

    body: Json[KnownEventShape]  # the JSON string, parsed


class ReactorBatchProcessor(BatchProcessor):
    """Powertools' BatchProcessor over ReactorRecord. ``validate`` parses every record once, before any
    is decided (so the batch's claims can be checked against the world in one look-up); ``process`` then
    hands the parsed records to the handler. A record that does not fit fails alone, logged as refused."""

    def __init__(self, logger: Logger) -> None:
        # One bad message must not fail (and so retry) the messages beside it.
        super().__init__(event_type=EventType.SQS, model=ReactorRecord, raise_on_entire_batch_failure=False)
        self.log = logger

    def validate(self) -> list[ReactorRecord]:
        """The records that fit, parsed; the others stay as they came, to fail in ``process``."""
        checked: list[Any] = []
        for raw in self.records:
            try:
                checked.append(ReactorRecord.model_validate(raw))
            except ValidationError:
                checked.append(raw)
        # A parsed record is not parsed again: pydantic takes an instance of the model as it is.
        self.records = checked
        return [record for record in checked if isinstance(record, ReactorRecord)]

    def failure_handler(self, record: Any, exception: Any) -> FailureResponse:
        error = exception[1]
        if isinstance(error, ValidationError):
            self.log.error(
                "event refused",
                extra={
                    "reason": describe_rejection(error),
                    "message_id": getattr(record, "message_id", None),
                },
            )
        elif isinstance(error, IllegalTransition):
            # A decision tried a move the state machine forbids: a bug, never a condition to wait out.
            self.log.error("illegal transition; event not decided", exc_info=exception)
        return super().failure_handler(record, exception)


def parse_event(raw: str | dict[str, Any]) -> KnownEvent:
    """Parse one EventBridge event (as the queue message body or a dict)."""
    try:
        return _KNOWN.validate_json(raw) if isinstance(raw, str) else _KNOWN.validate_python(raw)
    except ValidationError as error:
        raise EventRejected(describe_rejection(error)) from error


def describe_rejection(error: ValidationError) -> str:
    """Why an event does not fit, fit for a log line."""
    first = error.errors()[0]
    kind, where = first["type"], [str(p) for p in first["loc"] if p != "body"]
    if kind == "json_invalid":
        return f"not JSON: {first['msg']}"
    if kind == "union_tag_not_found":
        return "not an EventBridge event of a known shape: no detail-type"
    if kind == "union_tag_invalid":
        return f"unknown detail-type {first.get('ctx', {}).get('tag')!r}"
    shape = where[0] if where else "event"
    return f"{shape!r} event does not fit: {_short(error)}"


def _short(error: BaseException) -> str:
    # Powertools wraps pydantic's error in its own: the cause says what did not fit.
    if not isinstance(error, ValidationError):
        error = error.__cause__ or error
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in item['loc'] if p != 'body')}: {item['msg']}"
            for item in error.errors()[:5]
        )
    text = str(error)
    return text if len(text) <= 300 else text[:300] + "..."


def parse_alarm_event(raw: str | dict[str, Any]) -> AlarmStateChangeEvent:
    """Parse a "CloudWatch Alarm State Change" event of any alarm shape (single metric, metric math,
    composite)."""
    try:
        return parse(event=cast(dict[str, Any], raw), model=AlarmStateChangeEvent)  # it takes JSON text too
    except Exception as error:  # Powertools wraps pydantic and JSON errors alike
        raise EventRejected(f"not a CloudWatch alarm state change: {_short(error)}") from error
