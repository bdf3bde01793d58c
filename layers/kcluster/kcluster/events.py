"""Parsing of the events kcluster reacts to, with Powertools Parser (pydantic) models.

The queue carries EventBridge events of three kinds (ASG lifecycle actions, SSM command invocation
status changes, the node's own "Node Provisioned"). ``parse_event`` returns the typed model or raises
``EventRejected`` with a message fit for a log line; nothing is decided from an event that does not fit.
"""

from __future__ import annotations

from typing import Annotated, Literal

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from kcluster import contract

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
    metricStat: dict | None = None
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
_KNOWN = TypeAdapter(Annotated[KnownEvent, Field(discriminator="detail_type")])
_DETAIL_TYPES = (
    contract.LAUNCH_DETAIL_TYPE,
    contract.TERMINATE_DETAIL_TYPE,
    contract.COMMAND_STATUS_DETAIL_TYPE,
    contract.NODE_PROVISIONED_DETAIL_TYPE,
)


def parse_event(raw: str | dict) -> KnownEvent:
    """Parse one EventBridge event (as the queue message body or a dict)."""
    try:
        envelope = parse(event=raw, model=EventBridgeModel)
    except Exception as error:  # Powertools wraps pydantic and JSON errors alike
        raise EventRejected(f"not an EventBridge event: {_short(error)}") from error
    if envelope.detail_type not in _DETAIL_TYPES:
        raise EventRejected(f"unknown detail-type {envelope.detail_type!r} from {envelope.source!r}")
    try:
        return _KNOWN.validate_python(envelope.model_dump(by_alias=True))
    except ValidationError as error:
        raise EventRejected(f"{envelope.detail_type!r} event does not fit: {_short(error)}") from error


def _short(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in error.errors()[:5]
        )
    text = str(error)
    return text if len(text) <= 300 else text[:300] + "..."


def parse_alarm_event(raw: str | dict) -> AlarmStateChangeEvent:
    """Parse a "CloudWatch Alarm State Change" event of any alarm shape (single metric, metric math,
    composite)."""
    try:
        return parse(event=raw, model=AlarmStateChangeEvent)
    except Exception as error:  # Powertools wraps pydantic and JSON errors alike
        raise EventRejected(
            f"not a CloudWatch alarm state change: {_short(error.__cause__ or error)}"
        ) from error
