"""Intake: parsed events -> the core events they stand for, believed only when the world agrees.

An event of another cluster raises EventNotForUs; an event naming an instance is checked against Auto
Scaling first (core/trust.py), every instance of a batch in as few look-ups as the API allows; a command
status event is completed with the invocation's result, read from SSM (the event does not carry it).
"""

from __future__ import annotations

from typing import assert_never

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from kcluster.adapters.autoscaling import Lifecycle
from kcluster.adapters.commands import Commands
from kcluster.config import ClusterConfig
from kcluster.core import trust
from kcluster.core.models import (
    TERMINAL_STATUSES,
    AsgInstance,
    BackupReported,
    CommandFinished,
    Event,
    HealthReported,
    LifecycleLaunch,
    LifecycleTerminate,
    NodeProvisioned,
)
from kcluster.events import (
    CommandStatusEvent,
    EventNotForUs,
    KnownEvent,
    LaunchLifecycleEvent,
    NodeProvisionedEvent,
    TerminateLifecycleEvent,
)


class EventDeferred(Exception):
    """The event cannot be decided yet; let the queue deliver it again."""


class Intake:
    def __init__(
        self,
        config: ClusterConfig,
        commands: Commands,
        lifecycle: Lifecycle,
        logger: Logger,
        metrics: Metrics,
    ) -> None:
        self.config = config
        self.commands = commands
        self.lifecycle = lifecycle
        self.logger = logger
        self.metrics = metrics
        # What Auto Scaling said of the instances events of this invocation name (None: not listed).
        self._world: dict[str, AsgInstance | None] = {}

    def check_world(self, parsed_events: list[KnownEvent]) -> None:
        """Look up, in as few DescribeAutoScalingInstances calls as the batch allows (50 ids a call),
        every instance the events of this batch make claims about, before deciding any of them."""
        wanted = [
            instance_id
            for instance_id in (self._claimed_instance(parsed) for parsed in parsed_events)
            if instance_id is not None and instance_id not in self._world
        ]
        if wanted:
            self._look_up(wanted)

    def translate(self, parsed: KnownEvent) -> Event | None:
        """The core event `parsed` stands for; None when there is nothing to decide (a command status
        that is not final, an event the world does not confirm)."""
        match parsed:
            case LaunchLifecycleEvent() | TerminateLifecycleEvent():
                return self._lifecycle_event(parsed)
            case NodeProvisionedEvent():
                return self._provisioned_event(parsed)
            case CommandStatusEvent():
                return self._command_event(parsed)
            case _:
                assert_never(parsed)

    def _lifecycle_event(self, parsed: LaunchLifecycleEvent | TerminateLifecycleEvent) -> Event | None:
        detail = parsed.detail
        role = self.config.role_of(detail.AutoScalingGroupName)
        if role is None:
            cluster = self.config.cluster_name
            raise EventNotForUs(
                f"ASG {detail.AutoScalingGroupName!r} is not a node group of cluster {cluster!r}"
            )
        self.logger.set_correlation_id(detail.EC2InstanceId)
        common = (detail.EC2InstanceId, detail.AutoScalingGroupName, role, detail.LifecycleHookName)
        event: Event
        if isinstance(parsed, TerminateLifecycleEvent):
            event = LifecycleTerminate(*common, detail.LifecycleActionToken, detail.Destination)
        else:
            event = LifecycleLaunch(*common, detail.LifecycleActionToken, detail.Origin)
        return self._believed(event, parsed.detail_type)

    def _provisioned_event(self, parsed: NodeProvisionedEvent) -> Event | None:
        cluster = self.config.cluster_name
        if parsed.detail.cluster != cluster:
            raise EventNotForUs(f"Node Provisioned for cluster {parsed.detail.cluster!r}, not {cluster!r}")
        self.logger.set_correlation_id(parsed.detail.instance_id)
        provisioned = NodeProvisioned(parsed.detail.instance_id, parsed.detail.role)
        return self._believed(provisioned, parsed.detail_type)

    def _command_event(self, parsed: CommandStatusEvent) -> Event | None:
        detail = parsed.detail
        # Exact names of the documents the config names: a prefix would take another cluster's.
        if detail.document_name not in self._document_names():
            raise EventNotForUs(
                f"document {detail.document_name!r} is not one of cluster {self.config.cluster_name!r}"
            )
        self.logger.set_correlation_id(detail.instance_id)
        if detail.status not in TERMINAL_STATUSES:
            return None
        invocation = self.commands.invocation(detail.command_id, detail.instance_id)
        if invocation is None:
            raise EventDeferred(f"invocation {detail.command_id}/{detail.instance_id} not visible yet")
        if detail.document_name == self.config.documents.health:
            return HealthReported(detail.command_id, detail.instance_id, detail.status, invocation.result)
        if detail.document_name == self.config.documents.backup:
            return BackupReported(detail.command_id, detail.instance_id, detail.status, invocation.result)
        return CommandFinished(detail.command_id, detail.instance_id, detail.status, invocation.result)

    def _document_names(self) -> frozenset[str]:
        documents = self.config.documents
        return frozenset(name for name in documents.model_dump().values() if name)

    # --- believing events ---------------------------------------------------------------------

    def _claimed_instance(self, parsed: KnownEvent) -> str | None:
        """The instance an event of this cluster makes a claim about, if it must be checked."""
        match parsed:
            case LaunchLifecycleEvent() | TerminateLifecycleEvent():
                detail = parsed.detail
                return detail.EC2InstanceId if self.config.role_of(detail.AutoScalingGroupName) else None
            case NodeProvisionedEvent() if parsed.detail.cluster == self.config.cluster_name:
                return parsed.detail.instance_id
        return None

    def _believed(self, event: Event, detail_type: str) -> Event | None:
        """The event as the world confirms it, or None (logged) when Auto Scaling does not."""
        if not trust.needs_check(event):
            return event
        if event.instance_id not in self._world:
            self._look_up([event.instance_id])
        verdict = trust.verdict(event, self._world.get(event.instance_id), self.config)
        if isinstance(verdict, trust.Disbelieved):
            self.logger.warning(
                "event not believed: Auto Scaling does not confirm it; dropped",
                extra={
                    "instance_id": verdict.instance_id,
                    "reason": verdict.reason,
                    "detail_type": detail_type,
                },
            )
            self.metrics.add_metric(name="EventsNotBelieved", unit=MetricUnit.Count, value=1)
            return None
        if (
            isinstance(event, NodeProvisioned)
            and isinstance(verdict, NodeProvisioned)
            and verdict.role != event.role
        ):
            self.logger.warning(
                "Node Provisioned names another role than the instance's group; the group's is used",
                extra={"instance_id": event.instance_id, "claimed": event.role, "role": verdict.role},
            )
        return verdict

    def _look_up(self, instance_ids: list[str]) -> None:
        found = self.lifecycle.describe(instance_ids)
        self._world.update({instance_id: found.get(instance_id) for instance_id in instance_ids})
