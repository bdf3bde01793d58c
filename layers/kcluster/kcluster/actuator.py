"""The actuator: each action the core decided, carried out through its adapter and logged.

Nothing here decides. What an action's outcome means for the stored state (a command id to record, a
refused SendCommand) is handed back as a follow-up decision for the Service to make.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import assert_never

from aws_lambda_powertools import Logger

from kcluster.adapters.autoscaling import Lifecycle
from kcluster.adapters.commands import Commands, SendRefused
from kcluster.adapters.instance_refresh import InstanceRefreshes
from kcluster.adapters.notifier import Notifier
from kcluster.adapters.targets import ApiTargets
from kcluster.config import ClusterConfig
from kcluster.core import workflow
from kcluster.core.models import (
    Action,
    CancelCommand,
    ClusterView,
    CompleteLifecycle,
    DeregisterApiTarget,
    Notify,
    Plan,
    RecordHeartbeat,
    RegisterApiTarget,
    ReplaceInstance,
    SendCommand,
)
from kcluster.core.rollout_model import CancelRefresh, ClusterStep, RolloutStep, StartRefresh

# A decision on the view as it is when it is made: (view, now) -> Plan.
FollowUp = Callable[[ClusterView, float], Plan]


class Actuator:
    def __init__(
        self,
        config: ClusterConfig,
        commands: Commands,
        lifecycle: Lifecycle,
        notifier: Notifier | None,
        logger: Logger,
        api_targets: ApiTargets | None = None,
        refreshes: InstanceRefreshes | None = None,
    ) -> None:
        self.config = config
        self.commands = commands
        self.lifecycle = lifecycle
        self.notifier = notifier
        self.logger = logger
        self._api_targets = api_targets
        self._refreshes = refreshes

    def act(self, action: Action) -> FollowUp | None:
        match action:
            case SendCommand():
                return self._send(action)
            case CancelCommand():
                self._cancel(action)
            case CompleteLifecycle():
                self._complete(action)
            case ReplaceInstance():
                marked = self.lifecycle.mark_unhealthy(action.instance_id)
                self.logger.warning(
                    "instance marked unhealthy for replacement" if marked else "instance to replace is gone",
                    extra={"instance_id": action.instance_id, "reason": action.reason},
                )
            case Notify():
                self._notify(action)
            case RecordHeartbeat():
                alive = self.lifecycle.heartbeat(
                    action.asg_name, action.hook_name, action.instance_id, action.token
                )
                if not alive:
                    self.logger.warning(
                        "heartbeat: no lifecycle action pending", extra={"instance_id": action.instance_id}
                    )
            case RegisterApiTarget() | DeregisterApiTarget():
                self._api_target(action)
            case _:
                assert_never(action)
        return None

    def act_rollout(self, step: RolloutStep) -> str | None:
        """Carry out a rollout step; for StartRefresh, the id of the refresh now running (the rollout
        record follows it: core/rollout.py on_refresh_started)."""
        if self._refreshes is None:
            self._refreshes = InstanceRefreshes()
        match step:
            case StartRefresh():
                refresh_id = self._refreshes.start(step)
                self.logger.info(
                    "instance refresh started",
                    extra={
                        "asg": step.asg_name,
                        "refresh_id": refresh_id,
                        "min_healthy": step.min_healthy_percent,
                    },
                )
                return refresh_id
            case CancelRefresh():
                cancelled = self._refreshes.cancel(step.asg_name)
                self.logger.warning(
                    "instance refresh cancelled" if cancelled else "no instance refresh to cancel",
                    extra={"asg": step.asg_name, "refresh_id": cancelled, "reason": step.reason},
                )
            case ClusterStep():
                # The prepare and addons documents are not built yet (docs/upgrades.md): a rollout that
                # changes the Kubernetes version waits here, and says so on every retry.
                self.logger.error(
                    "cluster-level rollout step has no document yet",
                    extra={"stage": step.stage, "kubernetes_version": step.kubernetes_version},
                )
            case _:
                assert_never(step)
        return None

    def _send(self, send: SendCommand) -> FollowUp:
        """Send, and return the decision its outcome asks for: record the command, or requeue."""
        name = self.config.documents.by_key(send.document)
        try:
            command_id = self.commands.send(
                name,
                send.targets,
                send.parameters,
                send.timeout_seconds,
                comment=f"kcluster {send.document} for {len(send.for_instances)}",
            )
        except SendRefused as refused:
            code = refused.code
            return lambda view, now: workflow.on_send_failed(view, send, code, self.config, now)
        self.logger.info(
            f"sent {send.document}",
            extra={
                "command_id": command_id,
                "targets": list(send.targets),
                "for_instances": list(send.for_instances),
            },
        )
        return lambda view, now: workflow.on_command_sent(view, send, command_id, now)

    def _api_target(self, action: RegisterApiTarget | DeregisterApiTarget) -> None:
        # Raises on failure: init must not start behind an endpoint that cannot reach its node (the
        # invocation fails, and the step is re-driven with its registration).
        if self._api_targets is None:
            self._api_targets = ApiTargets()
        fields = {"instance_id": action.instance_id, "target_group": action.target_group_arn}
        if isinstance(action, RegisterApiTarget):
            self._api_targets.register(action.target_group_arn, action.instance_id)
            self.logger.info("registered with the API target group", extra=fields)
        else:
            self._api_targets.deregister(action.target_group_arn, action.instance_id)
            self.logger.info("deregistered from the API target group", extra=fields)

    def _cancel(self, action: CancelCommand) -> None:
        # Never raises: the cancel only narrows a race, and nothing after it may wait on it.
        failed = self.commands.cancel(action.command_id, action.instance_id)
        fields = {"command_id": action.command_id, "instance_id": action.instance_id}
        if failed:
            self.logger.warning(
                "could not cancel a leaving instance's command", extra={**fields, "error": failed}
            )
        else:
            self.logger.info("cancelled a command for a leaving instance", extra=fields)

    def _complete(self, action: CompleteLifecycle) -> None:
        done = self.lifecycle.complete(
            action.asg_name, action.hook_name, action.instance_id, action.token, action.result
        )
        getattr(self.logger, "info" if done else "warning")(
            f"lifecycle action {action.result}" + ("" if done else ": none was pending"),
            extra={"instance_id": action.instance_id, "hook_name": action.hook_name},
        )

    def _notify(self, action: Notify) -> None:
        sent = self.notifier is not None and self.notifier.publish(action.subject, action.message)
        self.logger.warning(
            "people notified" if sent else "no alerts topic: notification only logged",
            extra={"subject": action.subject, "notification": action.message},
        )
