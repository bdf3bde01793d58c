"""The imperative shell: load the stored view, ask the pure core, write, then act.

A ``Service`` lives for one invocation (it caches the view it loaded); its clients and config are
built once per cold start by ``build_service`` and shared.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parameters import SSMProvider

from kcluster import contract
from kcluster.adapters.autoscaling import Lifecycle
from kcluster.adapters.commands import Commands, SendRefused
from kcluster.adapters.notifier import Notifier
from kcluster.adapters.state_store import StateStore, WriteConflict
from kcluster.adapters.targets import TargetHealth
from kcluster.config import ClusterConfig
from kcluster.core import health, reconcile, remediation, scale_in, trust, workflow
from kcluster.core.models import (
    IN_FLIGHT_PHASES,
    TERMINAL_STATUSES,
    WAITING_PHASES,
    Action,
    AlarmChanged,
    CancelCommand,
    ClusterView,
    CommandFinished,
    CompleteLifecycle,
    Event,
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
        self._world: dict[str, reconcile.AsgInstance | None] = {}

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
        """One reconciler tick: re-derive from the world what the events should have told us."""
        now = self.deps.now()
        asg_names = [group.asg_name for group in self.config.node_groups]
        instances = self.deps.lifecycle.instances(asg_names)
        live = {instance.instance_id for instance in instances}
        self._decide(lambda v: scale_in.vanished(v, live, self.deps.now()))
        unfinished, terminates = reconcile.unfinished_lifecycle(self._load(), instances, self.config)
        self._decide(lambda v: unfinished)
        for terminate in terminates:
            self.logger.warning(
                "terminating instance with no terminate event seen",
                extra={"instance_id": terminate.instance_id},
            )
            self._decide_event(terminate)
        for launch in reconcile.discover_launches(self._load(), instances, self.config):
            self.logger.info(
                "discovered a waiting instance with no record", extra={"instance_id": launch.instance_id}
            )
            self._decide_event(launch)
        overdue = reconcile.unannounced_provisioning(self._load(), now)
        for instance_id in sorted(self.deps.commands.online_agents(overdue)) if overdue else []:
            node = self._load().nodes[instance_id]
            self.logger.info(
                "agent online but no Provisioned event; proceeding", extra={"instance_id": instance_id}
            )
            self._decide_event(NodeProvisioned(instance_id, node.role))
        for command_id, instance_id in reconcile.commands_to_check(self._load(), now):
            invocation = self.deps.commands.invocation(command_id, instance_id)
            if invocation is not None and invocation.status in TERMINAL_STATUSES:
                self._decide_event(
                    CommandFinished(command_id, instance_id, invocation.status, invocation.result)
                )
        self._decide(lambda v: reconcile.stalled_replacements(v, instances, self.deps.now()))
        sent = self._find_unrecorded_commands(reconcile.unsent_candidates(self._load(), self.deps.now()))
        self._decide(lambda v: reconcile.unsent_steps(v, self.deps.now(), sent))
        self._decide(lambda v: reconcile.expired_lease(v, self.deps.now()))
        self._decide(lambda v: reconcile.heartbeats(v, self.config, self.deps.now()))
        self.dispatch()
        self._check_health_probe()
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

    def remediate(self, instances: list[reconcile.AsgInstance] | None = None) -> None:
        """The next remediation step, while a remediation alarm stands or a remediation is in flight."""
        cluster = self._load().cluster
        if not cluster.alarms_in_alarm and cluster.remediating is None:
            return
        if instances is None:
            instances = self.deps.lifecycle.instances([group.asg_name for group in self.config.node_groups])
        unhealthy: tuple[str, ...] = ()
        if cluster.alarms_in_alarm and self.deps.targets is not None and self.config.api_target_group_arn:
            unhealthy = self.deps.targets.unhealthy(self.config.api_target_group_arn)
        settings = self.deps.remediation
        self._decide(lambda v: remediation.next_step(v, instances, unhealthy, settings, self.deps.now()))

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

    def _claimed_instance(self, parsed: KnownEvent) -> str | None:
        """The instance an event of this cluster makes a claim about, if it must be checked."""
        if isinstance(parsed, LaunchLifecycleEvent | TerminateLifecycleEvent):
            detail = parsed.detail
            return detail.EC2InstanceId if self.config.role_of(detail.AutoScalingGroupName) else None
        if isinstance(parsed, NodeProvisionedEvent) and parsed.detail.cluster == self.config.cluster_name:
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
        if isinstance(event, NodeProvisioned) and verdict.role != event.role:
            self.logger.warning(
                "Node Provisioned names another role than the instance's group; the group's is used",
                extra={"instance_id": event.instance_id, "claimed": event.role, "role": verdict.role},
            )
        return verdict

    def _look_up(self, instance_ids: list[str]) -> None:
        found = self.deps.lifecycle.describe(instance_ids)
        self._world.update({instance_id: found.get(instance_id) for instance_id in instance_ids})

    def _check_health_probe(self) -> None:
        overdue = health.probe_to_check(self._load(), self.deps.now())
        if overdue is None:
            return
        command_id, target = overdue
        invocation = self.deps.commands.invocation(command_id, target)
        if invocation is not None and invocation.status in TERMINAL_STATUSES:
            self._decide_event(HealthReported(command_id, target, invocation.status, invocation.result))

    def _find_unrecorded_commands(self, candidates: list[reconcile.UnsentStep]) -> dict:
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

    # --- translation of parsed events into core events --------------------------------------------

    def _translate(self, parsed: KnownEvent) -> Event | None:
        cluster = self.config.cluster_name
        if isinstance(parsed, LaunchLifecycleEvent | TerminateLifecycleEvent):
            detail = parsed.detail
            role = self.config.role_of(detail.AutoScalingGroupName)
            if role is None:
                raise EventNotForUs(
                    f"ASG {detail.AutoScalingGroupName!r} is not a node group of cluster {cluster!r}"
                )
            self.logger.set_correlation_id(detail.EC2InstanceId)
            if isinstance(parsed, TerminateLifecycleEvent):
                terminate = LifecycleTerminate(
                    detail.EC2InstanceId,
                    detail.AutoScalingGroupName,
                    role,
                    detail.LifecycleHookName,
                    detail.LifecycleActionToken,
                    detail.Destination,
                )
                return self._believed(terminate, parsed.detail_type)
            launch = LifecycleLaunch(
                detail.EC2InstanceId,
                detail.AutoScalingGroupName,
                role,
                detail.LifecycleHookName,
                detail.LifecycleActionToken,
                detail.Origin,
            )
            return self._believed(launch, parsed.detail_type)
        if isinstance(parsed, NodeProvisionedEvent):
            if parsed.detail.cluster != cluster:
                raise EventNotForUs(
                    f"Node Provisioned for cluster {parsed.detail.cluster!r}, not {cluster!r}"
                )
            self.logger.set_correlation_id(parsed.detail.instance_id)
            provisioned = NodeProvisioned(parsed.detail.instance_id, parsed.detail.role)
            return self._believed(provisioned, parsed.detail_type)
        assert isinstance(parsed, CommandStatusEvent)
        detail = parsed.detail
        # Exact names of the documents the config names: a prefix would take another cluster's.
        if detail.document_name not in self._document_names():
            raise EventNotForUs(f"document {detail.document_name!r} is not one of cluster {cluster!r}")
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
        for step in plan.steps:
            self.deps.store.write(step.writes)
            self._view = self._load().with_records(list(step.writes))
            for note in step.notes:
                getattr(self.logger, note.level)(note.message, extra=_log_safe(note.fields))
            for metric in step.metrics:
                self._publish(metric if isinstance(metric, Metric) else Metric(*metric))
            for action in step.actions:
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
        if isinstance(action, SendCommand):
            self._send(action)
        elif isinstance(action, CancelCommand):
            # Never raises: the cancel only narrows a race, and nothing after it may wait on it.
            failed = self.deps.commands.cancel(action.command_id, action.instance_id)
            fields = {"command_id": action.command_id, "instance_id": action.instance_id}
            if failed:
                self.logger.warning(
                    "could not cancel a leaving instance's command", extra={**fields, "error": failed}
                )
            else:
                self.logger.info("cancelled a command for a leaving instance", extra=fields)
        elif isinstance(action, CompleteLifecycle):
            done = self.deps.lifecycle.complete(
                action.asg_name, action.hook_name, action.instance_id, action.token, action.result
            )
            level = "info" if done else "warning"
            getattr(self.logger, level)(
                f"lifecycle action {action.result}" + ("" if done else ": none was pending"),
                extra={"instance_id": action.instance_id},
            )
        elif isinstance(action, ReplaceInstance):
            marked = self.deps.lifecycle.mark_unhealthy(action.instance_id)
            self.logger.warning(
                "instance marked unhealthy for replacement" if marked else "instance to replace is gone",
                extra={"instance_id": action.instance_id, "reason": action.reason},
            )
        elif isinstance(action, Notify):
            sent = self.deps.notifier is not None and self.deps.notifier.publish(
                action.subject, action.message
            )
            self.logger.warning(
                "people notified" if sent else "no alerts topic: notification only logged",
                extra={"subject": action.subject, "notification": action.message},
            )
        elif isinstance(action, RecordHeartbeat):
            alive = self.deps.lifecycle.heartbeat(
                action.asg_name, action.hook_name, action.instance_id, action.token
            )
            if not alive:
                self.logger.warning(
                    "heartbeat: no lifecycle action pending", extra={"instance_id": action.instance_id}
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

    def _publish_cluster_metrics(self, view: ClusterView) -> None:
        now = self.deps.now()
        pending = [n for n in view.nodes.values() if n.phase in WAITING_PHASES | IN_FLIGHT_PHASES]
        oldest = max((now - (n.lifecycle_started_at or n.created_at) for n in pending), default=0.0)
        self.metrics.add_metric(name="PendingJoins", unit=MetricUnit.Count, value=len(pending))
        self.metrics.add_metric(name="OldestPendingActionAge", unit=MetricUnit.Seconds, value=oldest)
        self.metrics.add_metric(
            name="JoinedNodes",
            unit=MetricUnit.Count,
            value=sum(1 for n in view.nodes.values() if n.phase == "joined"),
        )


# The standard library refuses a log record whose extra fields overwrite its own attributes.
_RESERVED_LOG_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _log_safe(fields: dict) -> dict:
    return {(f"{key}_" if key in _RESERVED_LOG_FIELDS else key): value for key, value in fields.items()}


# --- wiring, once per cold start ---------------------------------------------------------------


# The config parameter is read through Powertools Parameters and cached this long per container.
CONFIG_MAX_AGE_SECONDS = 60


@dataclass
class Clients:
    dynamodb: Any
    ssm: Any
    autoscaling: Any
    parameters: SSMProvider
    elbv2: Any = None
    sns: Any = None


def build_clients() -> Clients:
    import boto3

    ssm = boto3.client("ssm")
    return Clients(
        boto3.client("dynamodb"),
        ssm,
        boto3.client("autoscaling"),
        SSMProvider(boto3_client=ssm),
        boto3.client("elbv2"),
        boto3.client("sns"),
    )


def load_config(cluster_name: str, provider: SSMProvider) -> ClusterConfig:
    raw = provider.get(
        contract.config_parameter_name(cluster_name), transform="json", max_age=CONFIG_MAX_AGE_SECONDS
    )
    return ClusterConfig.model_validate(raw)


def build_service(clients: Clients, environ: dict[str, str] | None = None) -> Service:
    env = os.environ if environ is None else environ
    cluster = env["CLUSTER_NAME"]
    deps = Dependencies(
        store=StateStore(env["STATE_TABLE_NAME"], cluster, client=clients.dynamodb),
        commands=Commands(client=clients.ssm),
        lifecycle=Lifecycle(client=clients.autoscaling),
        config_loader=lambda: load_config(cluster, clients.parameters),
        targets=TargetHealth(client=clients.elbv2) if clients.elbv2 is not None else None,
        notifier=Notifier(env.get("ALERTS_TOPIC_ARN"), client=clients.sns)
        if clients.sns is not None
        else None,
        remediation=remediation_settings(env),
    )
    return Service(deps)


def remediation_settings(env: Mapping[str, str]) -> RemediationSettings:
    """The guard rails from the functions' environment (template parameters); defaults where unset."""
    defaults = RemediationSettings()
    return RemediationSettings(
        grace_seconds=float(env.get("REMEDIATION_GRACE_SECONDS", defaults.grace_seconds)),
        cooldown_seconds=float(env.get("REMEDIATION_COOLDOWN_SECONDS", defaults.cooldown_seconds)),
        max_unhealthy_percent=float(
            env.get("REMEDIATION_MAX_UNHEALTHY_PERCENT", defaults.max_unhealthy_percent)
        ),
        max_per_hour=int(env.get("REMEDIATION_MAX_PER_HOUR", defaults.max_per_hour)),
    )
