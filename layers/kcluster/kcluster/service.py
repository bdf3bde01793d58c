"""The imperative shell: load the stored view, ask the pure core, write, then act.

A ``Service`` lives for one invocation (it caches the view it loaded); its clients and config are
built once per cold start (kcluster.wiring) and shared.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, assert_never

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit

from kcluster import contract
from kcluster.adapters.autoscaling import Lifecycle
from kcluster.adapters.commands import Commands, SendRefused
from kcluster.adapters.notifier import Notifier
from kcluster.adapters.state_store import StateStore, WriteConflict
from kcluster.adapters.targets import TargetHealth
from kcluster.config import ClusterConfig
from kcluster.core import health, reconcile, remediation, scale_in, trust, workflow
from kcluster.core.models import (
    TERMINAL_STATUSES,
    Action,
    AlarmChanged,
    AsgInstance,
    CancelCommand,
    ClusterView,
    CommandFinished,
    CompleteLifecycle,
    Event,
    FoundCommand,
    HealthReported,
    LifecycleLaunch,
    LifecycleTerminate,
    Metric,
    NodeProvisioned,
    Notify,
    Plan,
    RecordHeartbeat,
    ReplaceInstance,
    SendCommand,
)
from kcluster.core.phases import PENDING_JOIN_PHASES
from kcluster.core.reconcile import UnsentStep
from kcluster.core.remediation import RemediationSettings
from kcluster.events import (
    AlarmStateChangeEvent,
    CommandStatusEvent,
    EventNotForUs,
    KnownEvent,
    LaunchLifecycleEvent,
    NodeProvisionedEvent,
    TerminateLifecycleEvent,
)
from kcluster.observability import logger as default_logger
from kcluster.observability import metrics as default_metrics

MAX_DECISION_ATTEMPTS = 5
# An event naming a command we have no record of is retried through the queue while it is this young.
DEFER_WINDOW_SECONDS = 300


class EventDeferred(Exception):
    """The event cannot be decided yet; let the queue deliver it again."""


@dataclass
class Dependencies:
    store: StateStore
    commands: Commands
    lifecycle: Lifecycle
    config_loader: Callable[[], ClusterConfig]
    now: Callable[[], float] = time.time
    targets: TargetHealth | None = None
    notifier: Notifier | None = None
    remediation: RemediationSettings = field(default_factory=RemediationSettings)


class Service:
    def __init__(
        self, deps: Dependencies, logger: Logger = default_logger, metrics: Metrics = default_metrics
    ):
        self.deps = deps
        self.config = deps.config_loader()
        self.logger = logger
        self.metrics = metrics
        # Every metric carries the cluster's name: the alarms select on it.
        self.metrics.set_default_dimensions(ClusterName=self.config.cluster_name)
        self._view: ClusterView | None = None
        # What Auto Scaling said of the instances events of this invocation name (None: not listed).
        self._world: dict[str, AsgInstance | None] = {}

    # --- entry points -------------------------------------------------------------------------

    def handle(self, parsed: KnownEvent) -> None:
        """Decide one parsed event.

        Raises EventNotForUs (another cluster's event) or EventDeferred (decide it later)."""
        event = self._translate(parsed)
        if event is None:
            return
        self._decide(
            lambda view: workflow.on_event(view, event, self.config, self.deps.now()), event_time=parsed.time
        )

    def dispatch(self) -> None:
        self._decide(lambda view: workflow.dispatch(view, self.config, self.deps.now()))

    def reconcile(self) -> None:
        """One reconciler tick: re-derive from the world what the events should have told us. The
        passes, in order (each decides on the view the ones before it left)."""
        now = self.deps.now()
        instances = self._asg_instances()
        self._forget_vanished_instances(instances)
        self._finish_lifecycle_actions(instances)
        self._adopt_unseen_launches(instances)
        self._proceed_on_online_agents(now)
        self._collect_overdue_results(now)
        self._decide(lambda v: reconcile.stalled_replacements(v, instances, self.deps.now()))
        self._redrive_unsent_steps()
        self._decide(lambda v: reconcile.expired_lease(v, self.deps.now()))
        self._decide(lambda v: reconcile.heartbeats(v, self.config, self.deps.now()))
        self.dispatch()
        self._collect_overdue_health_probe()
        self._decide(lambda v: health.probe(v, self.config, self.deps.now()))
        self.remediate(instances)
        self._publish_cluster_metrics(self._load())

    def on_alarm(self, parsed: AlarmStateChangeEvent) -> None:
        """A remediation alarm changed state. Raises EventNotForUs for another cluster's alarm."""
        detail = parsed.detail
        # Exact names: a prefix would also take the alarms of a cluster named "<ours>-x".
        if detail.alarmName not in contract.remediation_alarm_names(self.config.cluster_name):
            raise EventNotForUs(
                f"alarm {detail.alarmName!r} is not one of cluster {self.config.cluster_name!r}"
            )
        self.logger.info(
            "alarm state change",
            extra={"alarm": detail.alarmName, "state": detail.state.value, "alarm_shape": detail.shape},
        )
        event = AlarmChanged(
            detail.alarmName, detail.state.value, detail.previousState.value, detail.state.reason
        )
        self._decide(lambda v: remediation.on_alarm(v, event, self.deps.now()))

    def remediate(self, instances: list[AsgInstance] | None = None) -> None:
        """The next remediation step, while a remediation alarm stands or a remediation is in flight."""
        state = self._load().remediation_state
        if not state.alarms_in_alarm and state.remediating is None:
            return
        if instances is None:
            instances = self._asg_instances()
        unhealthy: tuple[str, ...] = ()
        if state.alarms_in_alarm and self.deps.targets is not None and self.config.api_target_group_arn:
            unhealthy = self.deps.targets.unhealthy(self.config.api_target_group_arn)
        settings = self.deps.remediation
        found = instances
        self._decide(lambda v: remediation.next_step(v, found, unhealthy, settings, self.deps.now()))

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

    # --- the reconciler's passes --------------------------------------------------------------

    def _asg_instances(self) -> list[AsgInstance]:
        return self.deps.lifecycle.instances([group.asg_name for group in self.config.node_groups])

    def _forget_vanished_instances(self, instances: list[AsgInstance]) -> None:
        live = {instance.instance_id for instance in instances}
        self._decide(lambda v: scale_in.vanished(v, live, self.deps.now()))

    def _finish_lifecycle_actions(self, instances: list[AsgInstance]) -> None:
        """Lifecycle actions our records are past; terminate actions we never saw, decided now."""
        unfinished, terminates = reconcile.unfinished_lifecycle(self._load(), instances, self.config)
        self._decide(lambda v: unfinished)
        for terminate in terminates:
            self.logger.warning(
                "terminating instance with no terminate event seen",
                extra={"instance_id": terminate.instance_id},
            )
            self._decide_event(terminate)

    def _adopt_unseen_launches(self, instances: list[AsgInstance]) -> None:
        for launch in reconcile.discover_launches(self._load(), instances, self.config):
            self.logger.info(
                "discovered a waiting instance with no record", extra={"instance_id": launch.instance_id}
            )
            self._decide_event(launch)

    def _proceed_on_online_agents(self, now: float) -> None:
        """Nodes whose Provisioned event is overdue but whose SSM agent is online: provisioned."""
        overdue = reconcile.unannounced_provisioning(self._load(), now)
        for instance_id in sorted(self.deps.commands.online_agents(overdue)) if overdue else []:
            node = self._load().nodes[instance_id]
            self.logger.info(
                "agent online but no Provisioned event; proceeding", extra={"instance_id": instance_id}
            )
            self._decide_event(NodeProvisioned(instance_id, node.role))

    def _collect_overdue_results(self, now: float) -> None:
        """Commands whose status event is overdue: ask SSM, and decide what it says as the event."""
        for command_id, instance_id in reconcile.commands_to_check(self._load(), now):
            invocation = self.deps.commands.invocation(command_id, instance_id)
            if invocation is not None and invocation.status in TERMINAL_STATUSES:
                self._decide_event(
                    CommandFinished(command_id, instance_id, invocation.status, invocation.result)
                )

    def _redrive_unsent_steps(self) -> None:
        sent = self._find_unrecorded_commands(reconcile.unsent_candidates(self._load(), self.deps.now()))
        self._decide(lambda v: reconcile.unsent_steps(v, self.deps.now(), sent))

    def _collect_overdue_health_probe(self) -> None:
        overdue = health.probe_to_check(self._load(), self.deps.now())
        if overdue is None:
            return
        command_id, target = overdue
        invocation = self.deps.commands.invocation(command_id, target)
        if invocation is not None and invocation.status in TERMINAL_STATUSES:
            self._decide_event(HealthReported(command_id, target, invocation.status, invocation.result))

    def _find_unrecorded_commands(self, candidates: list[UnsentStep]) -> dict[str, FoundCommand]:
        """For each step whose command id was never recorded, the command SSM knows it was sent, if any."""
        sent = {}
        for step in candidates:
            name = self.config.documents.by_key(step.document)
            for instance_id in step.look_on:
                command = reconcile.sent_for(
                    step, self.deps.commands.sent_since(name, instance_id, step.started_at)
                )
                if command is not None:
                    sent[step.instance_id] = command
                    break
        return sent

    def _publish_cluster_metrics(self, view: ClusterView) -> None:
        now = self.deps.now()
        pending = [n for n in view.nodes.values() if n.phase in PENDING_JOIN_PHASES]
        oldest = max((now - (n.lifecycle_started_at or n.created_at) for n in pending), default=0.0)
        joined = sum(1 for n in view.nodes.values() if n.phase == "joined")
        for metric in (
            Metric("PendingJoins", len(pending)),
            Metric("OldestPendingActionAge", oldest, "Seconds"),
            Metric("JoinedNodes", joined),
        ):
            self._publish(metric)

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
        instance_id = getattr(event, "instance_id", "")
        if instance_id not in self._world:
            self._look_up([instance_id])
        verdict = trust.verdict(event, self._world.get(instance_id), self.config)
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
        found = self.deps.lifecycle.describe(instance_ids)
        self._world.update({instance_id: found.get(instance_id) for instance_id in instance_ids})

    # --- translation of parsed events into core events --------------------------------------------

    def _translate(self, parsed: KnownEvent) -> Event | None:
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
        invocation = self.deps.commands.invocation(detail.command_id, detail.instance_id)
        if invocation is None:
            raise EventDeferred(f"invocation {detail.command_id}/{detail.instance_id} not visible yet")
        if detail.document_name == self.config.documents.health:
            return HealthReported(detail.command_id, detail.instance_id, detail.status, invocation.result)
        return CommandFinished(detail.command_id, detail.instance_id, detail.status, invocation.result)

    def _document_names(self) -> frozenset[str]:
        documents = self.config.documents
        return frozenset(name for name in documents.model_dump().values() if name)

    # --- deciding and acting ----------------------------------------------------------------------

    def _decide_event(self, event: Event) -> None:
        self._decide(lambda view: workflow.on_event(view, event, self.config, self.deps.now()))

    def _decide(self, plan_for: Callable[[ClusterView], Plan], event_time: datetime | None = None) -> None:
        for _ in range(MAX_DECISION_ATTEMPTS):
            plan = plan_for(self._load())
            if plan.deferred:
                age = self.deps.now() - event_time.timestamp() if event_time else 0.0
                if age <= DEFER_WINDOW_SECONDS:
                    raise EventDeferred(plan.deferred)
                self.logger.warning(
                    "dropping an event that cannot be decided", extra={"reason": plan.deferred}
                )
                return
            try:
                self._execute(plan)
                return
            except WriteConflict:
                self.logger.info("state changed under us; deciding again")
                self._view = None
        raise WriteConflict(f"gave up after {MAX_DECISION_ATTEMPTS} conflicting decisions")

    def _execute(self, plan: Plan) -> None:
        for batch in plan.batches:
            self.deps.store.write(batch.writes)
            self._view = self._load().with_records(batch.writes)
            for note in batch.notes:
                getattr(self.logger, note.level)(note.message, extra=_log_safe(note.fields))
            for metric in batch.metrics:
                self._publish(metric)
            for action in batch.actions:
                self._act(action)

    def _publish(self, metric: Metric) -> None:
        unit = MetricUnit(metric.unit)
        if not metric.dimensions:
            self.metrics.add_metric(name=metric.name, unit=unit, value=metric.value)
            return
        # A metric of its own dimension set (e.g. per instance) is its own EMF document.
        with single_metric(
            name=metric.name,
            unit=unit,
            value=metric.value,
            namespace=self.metrics.namespace,
            default_dimensions=self.metrics.default_dimensions,
        ) as single:
            for name, value in metric.dimensions:
                single.add_dimension(name=name, value=value)

    def _act(self, action: Action) -> None:
        match action:
            case SendCommand():
                self._send(action)
            case CancelCommand():
                self._cancel(action)
            case CompleteLifecycle():
                done = self.deps.lifecycle.complete(
                    action.asg_name, action.hook_name, action.instance_id, action.token, action.result
                )
                getattr(self.logger, "info" if done else "warning")(
                    f"lifecycle action {action.result}" + ("" if done else ": none was pending"),
                    extra={"instance_id": action.instance_id},
                )
            case ReplaceInstance():
                marked = self.deps.lifecycle.mark_unhealthy(action.instance_id)
                self.logger.warning(
                    "instance marked unhealthy for replacement" if marked else "instance to replace is gone",
                    extra={"instance_id": action.instance_id, "reason": action.reason},
                )
            case Notify():
                self._notify(action)
            case RecordHeartbeat():
                alive = self.deps.lifecycle.heartbeat(
                    action.asg_name, action.hook_name, action.instance_id, action.token
                )
                if not alive:
                    self.logger.warning(
                        "heartbeat: no lifecycle action pending", extra={"instance_id": action.instance_id}
                    )
            case _:
                assert_never(action)

    def _cancel(self, action: CancelCommand) -> None:
        # Never raises: the cancel only narrows a race, and nothing after it may wait on it.
        failed = self.deps.commands.cancel(action.command_id, action.instance_id)
        fields = {"command_id": action.command_id, "instance_id": action.instance_id}
        if failed:
            self.logger.warning(
                "could not cancel a leaving instance's command", extra={**fields, "error": failed}
            )
        else:
            self.logger.info("cancelled a command for a leaving instance", extra=fields)

    def _notify(self, action: Notify) -> None:
        sent = self.deps.notifier is not None and self.deps.notifier.publish(action.subject, action.message)
        self.logger.warning(
            "people notified" if sent else "no alerts topic: notification only logged",
            extra={"subject": action.subject, "notification": action.message},
        )

    def _send(self, send: SendCommand) -> None:
        name = self.config.documents.by_key(send.document)
        try:
            command_id = self.deps.commands.send(
                name,
                send.targets,
                send.parameters,
                send.timeout_seconds,
                comment=f"kcluster {send.document} for {len(send.for_instances)}",
            )
        except SendRefused as refused:
            code = refused.code
            self._decide(lambda view: workflow.on_send_failed(view, send, code, self.deps.now()))
            return
        self.logger.info(
            f"sent {send.document}",
            extra={
                "command_id": command_id,
                "targets": list(send.targets),
                "for_instances": list(send.for_instances),
            },
        )
        self._decide(lambda view: workflow.on_command_sent(view, send, command_id, self.deps.now()))

    def _load(self) -> ClusterView:
        if self._view is None:
            self._view = self.deps.store.load()
        return self._view


# The standard library refuses a log record whose extra fields overwrite its own attributes.
_RESERVED_LOG_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _log_safe(fields: dict[str, Any]) -> dict[str, Any]:
    return {(f"{key}_" if key in _RESERVED_LOG_FIELDS else key): value for key, value in fields.items()}
