"""Auto Scaling lifecycle hooks, emulated on top of moto 5.2.1 (which ignores them).

What AWS does and moto does not (../../docs/twin-design.md, DESIGN.md section 8):

* Instances launched into a group with a launch hook wait in `Pending:Wait`; those leaving a group
  with a terminate hook wait in `Terminating:Wait`. Each hook gets an action with its own token
  and an `EC2 Instance-launch/terminate Lifecycle Action` event (source `aws.autoscaling`).
* CompleteLifecycleAction / RecordLifecycleActionHeartbeat by token or instance id, with AWS's
  ValidationError when no action is pending. A heartbeat resets the heartbeat timer; the global
  timeout is min(48 h, 100 x HeartbeatTimeout) from the start of the wait; at a timeout the
  hook's DefaultResult applies.
* Launch CONTINUE -> InService and registered into the group's target groups; launch ABANDON ->
  the instance is terminated (its terminate hooks run) and a replacement is launched. Terminate,
  any result -> Terminated, the EC2 instance terminated, removed from the group.
* Scale-in picks victims like the default termination policy: the AZ with most instances, then
  the oldest instance, ties by the twin's seeded RNG; instances still in Pending:Wait are eligible.
* SetInstanceHealth Unhealthy (outside the grace period) and a vanished instance are replaced.
* CreateAutoScalingGroup's LifecycleHookSpecificationList is honoured (moto drops it).

What runs on a launched instance (its boot, SSM agent and user data) is the node side's
(twin/node/boot.py): Auto Scaling hands it each instance it launches and each one that is gone.

`install(emulation)` patches moto in one place and returns the undo; the patched methods find the
emulation through the module-level `_current`.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from moto.autoscaling import models as asg_models
from moto.autoscaling import responses as asg_responses
from moto.autoscaling.exceptions import ValidationError
from moto.core.responses import ActionResult, EmptyResult

from kcluster import contract
from twin.account import ACCOUNT_ID, REGION
from twin.aws.patching import MethodPatches

if TYPE_CHECKING:
    from moto.autoscaling.models import AutoScalingBackend, FakeAutoScalingGroup, InstanceState, LifecycleHook
    from moto.autoscaling.responses import AutoScalingResponse

    from twin.clock import ScheduledCall, Scheduler, VirtualClock
    from twin.latency import LatencyModel
    from twin.ports import EventPublisher, InstanceHosts, Late
    from twin.recorder import Recorder

ABANDON = "ABANDON"
CONTINUE = "CONTINUE"
MIN_HEARTBEAT_SECONDS = 30
MAX_HEARTBEAT_SECONDS = 7200
MAX_GLOBAL_TIMEOUT_SECONDS = 48 * 3600

# States that count toward desired capacity and may be chosen for scale-in.
LIVE_STATES = ("Pending", "Pending:Wait", "Pending:Proceed", "InService")
TERMINATING_STATES = ("Terminating", "Terminating:Wait", "Terminating:Proceed", "Terminated")


def global_timeout_seconds(heartbeat_timeout: int) -> int:
    return min(MAX_GLOBAL_TIMEOUT_SECONDS, 100 * heartbeat_timeout)


@dataclass
class LifecycleAction:
    """One pending lifecycle action: one hook, one instance, one token."""

    token: str
    group_name: str
    hook_name: str
    transition: str
    instance_id: str
    default_result: str
    heartbeat_timeout: int
    notification_metadata: str | None
    started_at: float
    global_deadline: float
    heartbeat_deadline: float
    timer: ScheduledCall | None = None


@dataclass
class _Wait:
    """An instance waiting on the hooks of one transition."""

    group: FakeAutoScalingGroup
    state: InstanceState
    transition: str
    actions: dict[str, LifecycleAction] = field(default_factory=dict)


@dataclass(frozen=True)
class ActionOutcome:
    """How a lifecycle action ended (for the invariant checks: nothing should time out by accident)."""

    at: float
    instance_id: str
    group_name: str
    hook_name: str
    transition: str
    result: str
    how: str  # "completed" | "heartbeat-timeout" | "global-timeout" | "superseded"


@dataclass(frozen=True)
class AutoScalingContext:
    """What Auto Scaling's emulation uses."""

    clock: VirtualClock
    scheduler: Scheduler
    rng: random.Random  # scale-in tie breaks, lifecycle action tokens
    latency: LatencyModel  # lifecycle event delivery, the health check's delay
    recorder: Recorder  # timeline notes
    events: Late[EventPublisher]  # the lifecycle events
    hosts: InstanceHosts  # the node side: boots what is launched, stops what is gone


class LifecycleEmulation:
    def __init__(self, context: AutoScalingContext) -> None:
        self.context = context
        self._actions: dict[str, LifecycleAction] = {}
        self._waits: dict[str, _Wait] = {}
        self._launch_order: dict[str, tuple[float, int]] = {}
        self._launch_seq = 0
        self.outcomes: list[ActionOutcome] = []
        # Instances a group may hold above its desired capacity while an instance refresh launches
        # before it terminates (twin/aws/instance_refresh.py sets it): not scaled in meanwhile.
        self.surge: dict[str, int] = {}

    # ---- queries ---------------------------------------------------------------------------

    def pending_actions(self) -> list[LifecycleAction]:
        return sorted(self._actions.values(), key=lambda action: (action.started_at, action.token))

    def launched_at(self, instance_id: str) -> float | None:
        order = self._launch_order.get(instance_id)
        return order[0] if order else None

    # ---- capacity --------------------------------------------------------------------------

    def converge(self, group: FakeAutoScalingGroup) -> None:
        """Launch or terminate until the live instances match the desired capacity."""
        live = [s for s in group.instance_states if s.lifecycle_state in LIVE_STATES]
        delta = (group.desired_capacity or 0) - len(live)
        if delta > 0:
            for _ in range(delta):
                self._launch_one(group)
        elif delta < 0 and len(live) > (group.desired_capacity or 0) + self.surge.get(group.name, 0):
            # (an instance refresh launching before terminating may hold `surge` instances more)
            excess = len(live) - (group.desired_capacity or 0) - self.surge.get(group.name, 0)
            for victim in self._choose_scale_in(live, excess):
                self.begin_terminate(group, victim, cause="scale-in")

    def _choose_scale_in(self, live: list[InstanceState], count: int) -> list[InstanceState]:
        remaining = list(live)
        chosen: list[InstanceState] = []
        for _ in range(count):
            eligible = [s for s in remaining if not s.protected_from_scale_in]
            if not eligible:
                break
            per_az: dict[str, int] = {}
            for state in remaining:
                per_az[_zone(state)] = per_az.get(_zone(state), 0) + 1
            eligible_azs = sorted({_zone(s) for s in eligible})
            most = max(per_az[az] for az in eligible_azs)
            az = self.context.rng.choice([az for az in eligible_azs if per_az[az] == most])
            in_az = [s for s in eligible if _zone(s) == az]
            oldest = min(self._launch_order.get(s.instance_id, (0.0, 0))[0] for s in in_az)
            candidates = [s for s in in_az if self._launch_order.get(s.instance_id, (0.0, 0))[0] == oldest]
            candidates.sort(key=lambda s: self._launch_order.get(s.instance_id, (0.0, 0))[1])
            victim = self.context.rng.choice(candidates)
            chosen.append(victim)
            remaining.remove(victim)
        return chosen

    def _launch_one(self, group: FakeAutoScalingGroup) -> InstanceState:
        live = [s for s in group.instance_states if s.lifecycle_state in LIVE_STATES]
        per_az = {az: 0 for az in group.availability_zones}
        for state in live:
            per_az[_zone(state)] = per_az.get(_zone(state), 0) + 1
        az = min(group.availability_zones, key=lambda zone: per_az[zone])
        subnet_id = _subnet_in(group, az)
        tags = group.get_propagated_tags()
        tags[asg_models.ASG_NAME_TAG] = group.name
        tags.update(group.instance_tags)
        launch_template = None
        launched_version = None
        if group.ec2_launch_template:
            # The numbered version the group's setting ($Latest, $Default or a number) names now: the
            # instance keeps reporting it, as AWS does (moto reports the template's default instead).
            launched_version = str(
                group.ec2_launch_template.get_version(group.launch_template_version).number
            )
            launch_template = {"LaunchTemplateId": group.ec2_launch_template.id, "Version": launched_version}
        reservation = group.autoscaling_backend.ec2_backend.run_instances(
            group.image_id,
            1,
            group.user_data,
            group.security_groups,
            instance_type=group.instance_type,
            tags={"instance": tags},
            placement=az,
            launch_config=group.launch_config,
            launch_template=launch_template,
            is_instance_type_default=False,
            associate_public_ip=group.launch_config.associate_public_ip_address
            if group.launch_config
            else None,
            subnet_id=subnet_id,
        )
        instance = reservation.instances[0]
        instance.autoscaling_group = group
        state = asg_models.InstanceState(
            instance,
            lifecycle_state="Pending",
            protected_from_scale_in=group.new_instances_protected_from_scale_in,
        )
        state.launched_template_version = launched_version  # type: ignore[attr-defined]
        group.instance_states.append(state)
        self._launch_seq += 1
        self._launch_order[instance.id] = (self.context.clock.now(), self._launch_seq)
        self._note(f"{instance.id} launched into {group.name} ({_zone(state)})")
        # The instance boots whatever its hooks do (twin/node/boot.py).
        self.context.hosts.boot(instance, availability_zone=_zone(state), tags=tags)
        hooks = _hooks(group, contract.LAUNCH_TRANSITION)
        if hooks:
            self._wait(group, state, contract.LAUNCH_TRANSITION, hooks)
        else:
            self._enter_service(group, state)
        return state

    def _enter_service(self, group: FakeAutoScalingGroup, state: InstanceState) -> None:
        state.lifecycle_state = "Pending:Proceed"
        state.lifecycle_state = "InService"
        self._note(f"{state.instance_id} InService in {group.name}")
        _register_targets(group, [state])

    # ---- waits and actions -----------------------------------------------------------------

    def _wait(
        self, group: FakeAutoScalingGroup, state: InstanceState, transition: str, hooks: list[LifecycleHook]
    ) -> None:
        now = self.context.clock.now()
        state.lifecycle_state = (
            "Pending:Wait" if transition == contract.LAUNCH_TRANSITION else "Terminating:Wait"
        )
        wait = _Wait(group=group, state=state, transition=transition)
        self._waits[state.instance_id] = wait
        for hook in hooks:
            heartbeat = int(hook.heartbeat_timeout)
            action = LifecycleAction(
                token=str(uuid.UUID(int=self.context.rng.getrandbits(128), version=4)),
                group_name=group.name,
                hook_name=hook.name,
                transition=transition,
                instance_id=state.instance_id,
                default_result=hook.default_result,
                heartbeat_timeout=heartbeat,
                notification_metadata=getattr(hook, "notification_metadata", None),
                started_at=now,
                global_deadline=now + global_timeout_seconds(heartbeat),
                heartbeat_deadline=now + heartbeat,
            )
            wait.actions[hook.name] = action
            self._actions[action.token] = action
            self._arm_timer(action)
            event = _lifecycle_event(group, action, self.context.clock.now_datetime())
            self.context.scheduler.after(
                self.context.latency.lifecycle_event_seconds(),
                f"{transition} event for {state.instance_id}",
                lambda event=event: self.context.events.get().put_events([event]),
            )
        self._note(f"{state.instance_id} {state.lifecycle_state} ({', '.join(wait.actions)})")

    def _arm_timer(self, action: LifecycleAction) -> None:
        self.context.scheduler.cancel(action.timer)
        action.timer = self.context.scheduler.at(
            action.heartbeat_deadline,
            f"lifecycle timeout {action.hook_name} {action.instance_id}",
            lambda: self._timed_out(action),
        )

    def _timed_out(self, action: LifecycleAction) -> None:
        if self._actions.get(action.token) is not action:
            return
        how = "global-timeout" if action.heartbeat_deadline >= action.global_deadline else "heartbeat-timeout"
        self._note(f"{action.instance_id} {action.hook_name} {how}: {action.default_result}")
        self._conclude(action, action.default_result, how)

    def find_action(
        self, group_name: str, hook_name: str, token: str | None, instance_id: str | None
    ) -> LifecycleAction:
        action = self._actions.get(token) if token else None
        if action is None and instance_id and not token:
            wait = self._waits.get(instance_id)
            action = wait.actions.get(hook_name) if wait else None
        if action is None or action.group_name != group_name or action.hook_name != hook_name:
            if token:
                raise ValidationError(f"No active Lifecycle Action found with token {token}")
            raise ValidationError(f"No active Lifecycle Action found with instance ID {instance_id}")
        return action

    def complete(
        self, group_name: str, hook_name: str, result: str, token: str | None, instance_id: str | None
    ) -> None:
        if result not in (CONTINUE, ABANDON):
            raise ValidationError(f"Invalid LifecycleActionResult {result!r}: must be CONTINUE or ABANDON")
        if not token and not instance_id:
            raise ValidationError("Either LifecycleActionToken or InstanceId must be specified")
        action = self.find_action(group_name, hook_name, token, instance_id)
        self._note(f"{action.instance_id} {action.hook_name} completed: {result}")
        self._conclude(action, result, "completed")

    def heartbeat(self, group_name: str, hook_name: str, token: str | None, instance_id: str | None) -> None:
        if not token and not instance_id:
            raise ValidationError("Either LifecycleActionToken or InstanceId must be specified")
        action = self.find_action(group_name, hook_name, token, instance_id)
        action.heartbeat_deadline = min(
            self.context.clock.now() + action.heartbeat_timeout, action.global_deadline
        )
        self._arm_timer(action)

    def _conclude(self, action: LifecycleAction, result: str, how: str) -> None:
        self._drop(action)
        self._record(action, result, how)
        wait = self._waits.get(action.instance_id)
        if wait is None or wait.actions.get(action.hook_name) is not action:
            return
        del wait.actions[action.hook_name]
        group, state = wait.group, wait.state
        if wait.transition == contract.LAUNCH_TRANSITION:
            if result == ABANDON:
                self._end_wait(wait, "superseded")
                self.begin_terminate(group, state, cause="launch abandoned")
                self.converge(group)
            elif not wait.actions:
                del self._waits[state.instance_id]
                self._enter_service(group, state)
        elif not wait.actions:
            del self._waits[state.instance_id]
            self._finish_terminate(group, state)

    def _end_wait(self, wait: _Wait, how: str) -> None:
        for action in list(wait.actions.values()):
            self._drop(action)
            self._record(action, action.default_result, how)
        wait.actions.clear()
        self._waits.pop(wait.state.instance_id, None)

    def _drop(self, action: LifecycleAction) -> None:
        self._actions.pop(action.token, None)
        self.context.scheduler.cancel(action.timer)
        action.timer = None

    def _record(self, action: LifecycleAction, result: str, how: str) -> None:
        self.outcomes.append(
            ActionOutcome(
                at=self.context.clock.now(),
                instance_id=action.instance_id,
                group_name=action.group_name,
                hook_name=action.hook_name,
                transition=action.transition,
                result=result,
                how=how,
            )
        )

    # ---- leaving the group -----------------------------------------------------------------

    def begin_terminate(self, group: FakeAutoScalingGroup, state: InstanceState, *, cause: str) -> None:
        if state.lifecycle_state in TERMINATING_STATES:
            return
        wait = self._waits.get(state.instance_id)
        if wait is not None:
            self._end_wait(wait, "superseded")
        state.lifecycle_state = "Terminating"
        self._note(f"{state.instance_id} Terminating ({cause})")
        _deregister_targets(group, [state.instance_id])
        hooks = _hooks(group, contract.TERMINATE_TRANSITION)
        if hooks:
            self._wait(group, state, contract.TERMINATE_TRANSITION, hooks)
        else:
            self._finish_terminate(group, state)

    def _finish_terminate(self, group: FakeAutoScalingGroup, state: InstanceState) -> None:
        state.lifecycle_state = "Terminating:Proceed"
        instance = state.instance
        if instance.state != "terminated":
            group.autoscaling_backend.ec2_backend.terminate_instances([instance.id])
        state.lifecycle_state = "Terminated"
        if state in group.instance_states:
            group.instance_states.remove(state)
        self._note(f"{instance.id} Terminated, left {group.name}")
        self.context.hosts.gone(instance.id)

    # ---- health ----------------------------------------------------------------------------

    def set_unhealthy(self, instance_id: str) -> None:
        """The group's health check acts after its usual delay: terminate (hooks run) and replace."""
        self.context.scheduler.after(
            self.context.latency.health_check_seconds(),
            f"health check replaces {instance_id}",
            lambda: self._replace(instance_id, "unhealthy"),
        )

    def crash(self, instance_id: str) -> None:
        """Fault injection: the instance dies now; the group notices at its next health check."""
        ec2 = self._backend().ec2_backend
        ec2.terminate_instances([instance_id])
        self._note(f"{instance_id} crashed")
        self.context.hosts.gone(instance_id)
        self.set_unhealthy(instance_id)

    def _replace(self, instance_id: str, cause: str) -> None:
        found = _find_state(self._backend(), instance_id)
        if found is None:
            return
        group, state = found
        if state.lifecycle_state in TERMINATING_STATES:
            return
        state.health_status = "Unhealthy"
        self.begin_terminate(group, state, cause=cause)
        self.converge(group)

    def _backend(self) -> AutoScalingBackend:
        return asg_models.autoscaling_backends[ACCOUNT_ID][REGION]

    def _note(self, text: str) -> None:
        self.context.recorder.note("asg", text)


# ---- helpers over moto's objects ------------------------------------------------------------


def _zone(state: InstanceState) -> str:
    # moto's InstanceState.availability_zone is the instance's Placement object, not the zone name.
    return state.instance.placement.zone


def _hooks(group: FakeAutoScalingGroup, transition: str) -> list[LifecycleHook]:
    return [
        hook
        for hook in group.autoscaling_backend.describe_lifecycle_hooks(group.name)
        if hook.lifecycle_transition == transition
    ]


def _subnet_in(group: FakeAutoScalingGroup, az: str) -> str | None:
    if not group.vpc_zone_identifier:
        return None
    subnet_ids = group.vpc_zone_identifier.split(",")
    for subnet in group.autoscaling_backend.ec2_backend.describe_subnets(subnet_ids=subnet_ids):
        if subnet.availability_zone == az:
            return subnet.id
    return subnet_ids[0]


def _find_state(
    backend: AutoScalingBackend, instance_id: str
) -> tuple[FakeAutoScalingGroup, InstanceState] | None:
    for group in backend.autoscaling_groups.values():
        for state in group.instance_states:
            if state.instance.id == instance_id:
                return group, state
    return None


def _register_targets(group: FakeAutoScalingGroup, states: list[InstanceState]) -> None:
    if not group.target_group_arns or not states:
        return
    elbv2 = group.autoscaling_backend.elbv2_backend
    for target_group in elbv2.describe_target_groups(
        target_group_arns=group.target_group_arns, load_balancer_arn=None, names=None
    ):
        elbv2.register_targets(
            target_group.arn, [{"Id": s.instance_id, "Port": target_group.port} for s in states]
        )


def _deregister_targets(group: FakeAutoScalingGroup, instance_ids: list[str]) -> None:
    if not group.target_group_arns:
        return
    elbv2 = group.autoscaling_backend.elbv2_backend
    for target_group in elbv2.describe_target_groups(
        target_group_arns=group.target_group_arns, load_balancer_arn=None, names=None
    ):
        registered = [i for i in instance_ids if i in target_group.targets]
        if registered:
            elbv2.deregister_targets(target_group.arn, [{"Id": i} for i in registered])


def _lifecycle_event(group: FakeAutoScalingGroup, action: LifecycleAction, when: datetime) -> dict[str, Any]:
    launching = action.transition == contract.LAUNCH_TRANSITION
    detail: dict[str, Any] = {
        "LifecycleActionToken": action.token,
        "AutoScalingGroupName": group.name,
        "LifecycleHookName": action.hook_name,
        "EC2InstanceId": action.instance_id,
        "LifecycleTransition": action.transition,
    }
    if action.notification_metadata:
        detail["NotificationMetadata"] = action.notification_metadata
    detail["Origin"] = "EC2" if launching else "AutoScalingGroup"
    detail["Destination"] = "AutoScalingGroup" if launching else "EC2"
    return {
        "Source": "aws.autoscaling",
        "DetailType": contract.LAUNCH_DETAIL_TYPE if launching else contract.TERMINATE_DETAIL_TYPE,
        "Detail": json.dumps(detail),
        "Resources": [group.arn],
        "Time": when.astimezone(UTC),
    }


# ---- the patches ----------------------------------------------------------------------------

_current: LifecycleEmulation | None = None


def _emulation() -> LifecycleEmulation | None:
    return _current


def install(emulation: LifecycleEmulation) -> Callable[[], None]:
    """Patch moto so Auto Scaling honours lifecycle hooks through `emulation`; returns the undo."""
    global _current
    previous = _current
    _current = emulation
    group_cls = asg_models.FakeAutoScalingGroup
    backend_cls = asg_models.AutoScalingBackend
    response_cls = asg_responses.AutoScalingResponse
    patches = MethodPatches()
    patch = patches.patch

    original_set_desired = group_cls.set_desired_capacity
    original_set_health = backend_cls.set_instance_health
    original_terminate = backend_cls.terminate_instance
    original_update_targets = backend_cls.update_attached_target_groups
    original_create_group = response_cls.create_auto_scaling_group
    original_put_hook = response_cls.put_lifecycle_hook
    original_set_health_call = response_cls.set_instance_health

    def set_desired_capacity(self: FakeAutoScalingGroup, new_capacity: int | None) -> None:
        emulation = _emulation()
        if emulation is None:
            return original_set_desired(self, new_capacity)
        self.desired_capacity = self.min_size if new_capacity is None else new_capacity
        emulation.converge(self)
        return None

    def set_instance_health(self: AutoScalingBackend, instance_id: str, health_status: str) -> None:
        original_set_health(self, instance_id, health_status)
        emulation = _emulation()
        if emulation is not None and health_status == "Unhealthy":
            emulation.set_unhealthy(instance_id)

    def terminate_instance(
        self: AutoScalingBackend, instance_id: str, should_decrement: bool
    ) -> asg_models.TerminateInstanceActivity:
        emulation = _emulation()
        if emulation is None:
            return original_terminate(self, instance_id, should_decrement)
        found = _find_state(self, instance_id)
        if found is None:
            raise ValidationError(
                f"Instance Id not found - No managed instance found for instance ID: {instance_id}"
            )
        group, state = found
        original_size = group.desired_capacity
        if should_decrement:
            group.desired_capacity = max((group.desired_capacity or 0) - 1, 0)
        emulation.begin_terminate(group, state, cause="TerminateInstanceInAutoScalingGroup")
        emulation.converge(group)
        return asg_models.TerminateInstanceActivity(state.instance, original_size)

    def update_attached_target_groups(self: AutoScalingBackend, group_name: str) -> None:
        if _emulation() is None:
            return original_update_targets(self, group_name)
        # Only InService instances are targets; moto would register Pending:Wait ones too.
        group = self.autoscaling_groups[group_name]
        _register_targets(group, [s for s in group.instance_states if s.lifecycle_state == "InService"])
        return None

    def create_auto_scaling_group(self: AutoScalingResponse) -> ActionResult:
        if _emulation() is None:
            return original_create_group(self)
        name = self._get_param("AutoScalingGroupName")
        created = []
        for spec in self._get_param("LifecycleHookSpecificationList", []) or []:
            _validate_heartbeat(spec.get("HeartbeatTimeout"))
            hook = self.autoscaling_backend.create_lifecycle_hook(
                name=spec["LifecycleHookName"],
                as_name=name,
                transition=spec["LifecycleTransition"],
                timeout=_int_or_none(spec.get("HeartbeatTimeout")),
                result=spec.get("DefaultResult"),
            )
            _finish_hook(hook, spec.get("NotificationMetadata"))
            created.append(hook.name)
        try:
            return original_create_group(self)
        except Exception:
            for hook_name in created:
                self.autoscaling_backend.delete_lifecycle_hook(name, hook_name)
            raise

    def put_lifecycle_hook(self: AutoScalingResponse) -> ActionResult:
        if _emulation() is None:
            return original_put_hook(self)
        _validate_heartbeat(self._get_param("HeartbeatTimeout"))
        result = original_put_hook(self)
        group_name = self._get_param("AutoScalingGroupName")
        for hook in self.autoscaling_backend.describe_lifecycle_hooks(
            group_name, [self._get_param("LifecycleHookName")]
        ):
            _finish_hook(hook, self._get_param("NotificationMetadata"))
        return result

    def set_instance_health_call(self: AutoScalingResponse) -> ActionResult:
        emulation = _emulation()
        if emulation is not None and self._get_param("ShouldRespectGracePeriod") in (None, True, "true"):
            instance_id = self._get_param("InstanceId")
            found = _find_state(self.autoscaling_backend, instance_id)
            launched = emulation.launched_at(instance_id)
            if found is not None and launched is not None:
                grace = found[0].health_check_grace_period or 0
                if emulation.context.clock.now() < launched + grace:
                    # AWS ignores health reports inside the grace period unless told not to.
                    emulation._note(f"{instance_id} health report ignored (grace period)")
                    return EmptyResult()
        return original_set_health_call(self)

    def complete_lifecycle_action(self: AutoScalingResponse) -> ActionResult:
        emulation = _require_emulation()
        emulation.complete(
            self._get_param("AutoScalingGroupName"),
            self._get_param("LifecycleHookName"),
            self._get_param("LifecycleActionResult"),
            self._get_param("LifecycleActionToken"),
            self._get_param("InstanceId"),
        )
        return EmptyResult()

    def record_lifecycle_action_heartbeat(self: AutoScalingResponse) -> ActionResult:
        emulation = _require_emulation()
        emulation.heartbeat(
            self._get_param("AutoScalingGroupName"),
            self._get_param("LifecycleHookName"),
            self._get_param("LifecycleActionToken"),
            self._get_param("InstanceId"),
        )
        return EmptyResult()

    def launch_template(self: InstanceState) -> dict[str, Any] | None:
        described = original_launch_template.fget(self) if original_launch_template else None
        version = getattr(self, "launched_template_version", None)
        if described is not None and version is not None:
            described = {**described, "Version": version}
        return described

    original_launch_template = asg_models.InstanceState.__dict__.get("launch_template")
    patch(asg_models.InstanceState, "launch_template", property(launch_template))
    patch(group_cls, "set_desired_capacity", set_desired_capacity)
    patch(backend_cls, "set_instance_health", set_instance_health)
    patch(backend_cls, "terminate_instance", terminate_instance)
    patch(backend_cls, "update_attached_target_groups", update_attached_target_groups)
    patch(response_cls, "create_auto_scaling_group", create_auto_scaling_group)
    patch(response_cls, "put_lifecycle_hook", put_lifecycle_hook)
    patch(response_cls, "set_instance_health", set_instance_health_call)
    patch(response_cls, "complete_lifecycle_action", complete_lifecycle_action)
    patch(response_cls, "record_lifecycle_action_heartbeat", record_lifecycle_action_heartbeat)

    def undo() -> None:
        global _current
        patches.undo()
        _current = previous

    return undo


def _require_emulation() -> LifecycleEmulation:
    emulation = _emulation()
    if emulation is None:
        raise ValidationError("lifecycle emulation is not installed")
    return emulation


def _int_or_none(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def _validate_heartbeat(value: Any) -> None:
    timeout = _int_or_none(value)
    if timeout is not None and not MIN_HEARTBEAT_SECONDS <= timeout <= MAX_HEARTBEAT_SECONDS:
        raise ValidationError(
            f"HeartbeatTimeout must be between {MIN_HEARTBEAT_SECONDS} and {MAX_HEARTBEAT_SECONDS} seconds"
        )


def _finish_hook(hook: LifecycleHook, notification_metadata: str | None) -> None:
    """moto keeps a fixed 48 h global timeout and drops the metadata; AWS does neither."""
    hook.global_timeout = global_timeout_seconds(int(hook.heartbeat_timeout))
    hook.notification_metadata = notification_metadata or None


__all__ = [
    "ABANDON",
    "CONTINUE",
    "ActionOutcome",
    "LifecycleAction",
    "LifecycleEmulation",
    "global_timeout_seconds",
    "install",
]
