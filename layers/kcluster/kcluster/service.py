"""The imperative shell: load the stored view, ask the pure core, write, then act.

A ``Service`` lives for one invocation (it caches the view it loaded); its clients and config are
built once per cold start (kcluster.wiring) and shared. Parsed events become core events in
kcluster.intake; actions are carried out by kcluster.actuator.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit

from kcluster import contract
from kcluster.actuator import Actuator, FollowUp
from kcluster.adapters.alarms import AlarmStates
from kcluster.adapters.autoscaling import Lifecycle
from kcluster.adapters.commands import Commands
from kcluster.adapters.instance_refresh import InstanceRefreshes
from kcluster.adapters.notifier import Notifier
from kcluster.adapters.state_store import StateStore, WriteConflict
from kcluster.adapters.targets import ApiTargets, TargetHealth
from kcluster.config import ClusterConfig
from kcluster.core import backup, health, reconcile, remediation, rollout, scale_in, workflow
from kcluster.core.models import (
    TERMINAL_STATUSES,
    AlarmChanged,
    AsgInstance,
    BackupReported,
    ClusterView,
    CommandFinished,
    Event,
    FoundCommand,
    HealthReported,
    Metric,
    NodeProvisioned,
    Note,
    Plan,
)
from kcluster.core.phases import PENDING_JOIN_PHASES
from kcluster.core.reconcile import UnsentStep
from kcluster.core.remediation import RemediationSettings
from kcluster.core.rollout_model import Target
from kcluster.events import (
    AlarmStateChangeEvent,
    EventNotForUs,
    KnownEvent,
)
from kcluster.intake import EventDeferred, Intake
from kcluster.observability import logger as default_logger
from kcluster.observability import metrics as default_metrics
from kcluster.rollout_pass import RolloutPass

__all__ = ["Dependencies", "EventDeferred", "Service"]

MAX_DECISION_ATTEMPTS = 5
# An event naming a command we have no record of is retried through the queue while it is this young.
DEFER_WINDOW_SECONDS = 300


@dataclass
class Dependencies:
    store: StateStore
    commands: Commands
    lifecycle: Lifecycle
    config_loader: Callable[[], ClusterConfig]
    now: Callable[[], float] = time.time
    targets: TargetHealth | None = None
    api_targets: ApiTargets | None = None
    alarm_states: AlarmStates | None = None
    notifier: Notifier | None = None
    remediation: RemediationSettings = field(default_factory=RemediationSettings)
    refreshes: InstanceRefreshes | None = None


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
        self.intake = Intake(self.config, deps.commands, deps.lifecycle, logger, metrics)
        self.actuator = Actuator(
            self.config,
            deps.commands,
            deps.lifecycle,
            deps.notifier,
            logger,
            deps.api_targets,
            deps.refreshes,
        )

    # --- entry points -------------------------------------------------------------------------

    def handle(self, parsed: KnownEvent) -> None:
        """Decide one parsed event.

        Raises EventNotForUs (another cluster's event) or EventDeferred (decide it later)."""
        event = self.intake.translate(parsed)
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
        self._record_launch_versions(instances)
        self._proceed_on_online_agents(now)
        self._collect_overdue_results(now)
        self._mark_stalled_replacements_again(instances)
        self._redrive_unsent_steps()
        self._release_expired_lease()
        self._send_heartbeats()
        self.dispatch()
        self._collect_overdue_health_probe()
        self._probe_health()
        self._collect_overdue_backup()
        self._take_backup()
        self.remediate(instances)
        # After remediating on what the events told: a fresh alarm state is the remediator's (told
        # within seconds, retried for minutes); one that stands unheard is acted on from the next tick.
        self._reread_alarm_states()
        self._roll_out()
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
        """Every instance the events of this batch make claims about, looked up before deciding any."""
        self.intake.check_world(parsed_events)

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

    def _record_launch_versions(self, instances: list[AsgInstance]) -> None:
        """Node records learn the launch template version (and so the Kubernetes version) their instance
        was launched from: what a rollout compares with its target (core/rollout.py)."""
        target = Target.of(self.config)
        self._decide(lambda v: rollout.record_launch_versions(v, instances, target, self.deps.now()))

    def _roll_out(self) -> None:
        """The rollout's next step (core/rollout.py): after remediation, on the view every pass before
        it left (a remediation or join in flight holds a rollout back in its preflight)."""
        refreshes = self.deps.refreshes or InstanceRefreshes()
        RolloutPass(
            self.config, self.deps.store, refreshes, self.actuator, self.logger, self._say, self._publish
        ).run(self._load(), self._reload, self.deps.now)

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

    def _mark_stalled_replacements_again(self, instances: list[AsgInstance]) -> None:
        self._decide(lambda v: reconcile.stalled_replacements(v, instances, self.deps.now()))

    def _release_expired_lease(self) -> None:
        self._decide(lambda v: reconcile.expired_lease(v, self.deps.now()))

    def _send_heartbeats(self) -> None:
        self._decide(lambda v: reconcile.heartbeats(v, self.config, self.deps.now()))

    def _probe_health(self) -> None:
        self._decide(lambda v: health.probe(v, self.config, self.deps.now()))

    def _reread_alarm_states(self) -> None:
        if self.deps.alarm_states is None:
            return
        ours = contract.remediation_alarm_names(self.config.cluster_name)
        read = self.deps.alarm_states.read(ours)
        self._decide(lambda v: remediation.alarms_as_read(v, read, ours, self.deps.now()))

    def _redrive_unsent_steps(self) -> None:
        sent = self._find_unrecorded_commands(reconcile.unsent_candidates(self._load(), self.deps.now()))
        self._decide(lambda v: reconcile.unsent_steps(v, self.deps.now(), sent))

    def _collect_overdue_health_probe(self) -> None:
        self._collect_overdue_report(health.probe_to_check(self._load(), self.deps.now()), HealthReported)

    def _take_backup(self) -> None:
        """An etcd backup when one is due; the age of the newest good one, for the alarm, every tick."""
        self._decide(lambda v: backup.take(v, self.config, self.deps.now()))
        self._decide(lambda v: backup.metrics(v, self.config, self.deps.now()))

    def _collect_overdue_backup(self) -> None:
        self._collect_overdue_report(backup.to_check(self._load(), self.deps.now()), BackupReported)

    def _collect_overdue_report(
        self, overdue: tuple[str, str] | None, reported: Callable[[str, str, str, Any], Event]
    ) -> None:
        """A probe or backup whose status event is overdue (it may be lost): ask SSM, and decide a
        finished invocation as the report it would have brought."""
        if overdue is None:
            return
        command_id, target = overdue
        invocation = self.deps.commands.invocation(command_id, target)
        if invocation is not None and invocation.status in TERMINAL_STATUSES:
            self._decide_event(reported(command_id, target, invocation.status, invocation.result))

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
        unprobed = health.api_ready_unprobed(view, now)
        for metric in (
            Metric("PendingJoins", len(pending)),
            Metric("OldestPendingActionAge", oldest, "Seconds"),
            Metric("JoinedNodes", joined),
            *([unprobed] if unprobed is not None else []),
            *self._failing_api_servers(view),
        ):
            self._publish(metric)

    def _failing_api_servers(self, view: ClusterView) -> list[Metric]:
        """The API-servers-unhealthy alarm's metric, where there is a target group to ask."""
        arn = self.config.api_target_group_arn
        if self.deps.targets is None or not arn:
            return []
        return [remediation.failing_api_servers(view, self.deps.targets.unhealthy(arn))]

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
                self._say(note)
            for metric in batch.metrics:
                self._publish(metric)
            for action in batch.actions:
                follow_up = self.actuator.act(action)
                if follow_up is not None:
                    self._decide_follow_up(follow_up)

    def _decide_follow_up(self, follow_up: FollowUp) -> None:
        """What an action's outcome means for the stored state (a command id to record, say)."""
        self._decide(lambda view: follow_up(view, self.deps.now()))

    def _say(self, note: Note) -> None:
        getattr(self.logger, note.level)(note.message, extra=_log_safe(note.fields))

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

    def _reload(self) -> ClusterView:
        self._view = None
        return self._load()

    def _load(self) -> ClusterView:
        if self._view is None:
            self._view = self.deps.store.load()
        return self._view


# The standard library refuses a log record whose extra fields overwrite its own attributes.
_RESERVED_LOG_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _log_safe(fields: dict[str, Any]) -> dict[str, Any]:
    return {(f"{key}_" if key in _RESERVED_LOG_FIELDS else key): value for key, value in fields.items()}
