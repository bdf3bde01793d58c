"""Auto Scaling instance refresh, emulated from AWS's documentation on top of the twin's lifecycle
emulation (twin/aws/lifecycle.py). moto 5.2.1 has no instance refresh at all.

What is emulated (Amazon EC2 Auto Scaling User Guide, "Use an instance refresh", and the API
reference of StartInstanceRefresh, DescribeInstanceRefreshes, CancelInstanceRefresh, RefreshPreferences):

* StartInstanceRefresh (Strategy Rolling) with Preferences MinHealthyPercentage (default 90, of the
  desired capacity, rounded up), MaxHealthyPercentage (100-200, at most 100 above the minimum; above
  100 new instances launch before old ones terminate), InstanceWarmup (a new instance counts as
  healthy only that long after it is InService; default the group's health check grace period),
  SkipMatching (instances already on the target launch template version are kept), CheckpointPercentages
  with CheckpointDelay (default 3600 s); DesiredConfiguration.LaunchTemplate (replacements launch from
  it; the group takes it once the refresh succeeds). A second start while one is active fails with
  InstanceRefreshInProgress.
* Replacement through the group's lifecycle hooks: launches wait in Pending:Wait for the launch hook,
  terminations in Terminating:Wait for the terminate hook, exactly as a scale-out or scale-in would.
  Setting MinHealthyPercentage to 100 (with no room above 100) replaces one instance at a time.
* DescribeInstanceRefreshes: Status Pending | InProgress | Successful | Failed | Cancelling | Cancelled,
  StatusReason, PercentageComplete (an instance counts once healthy and warmed up), InstancesToUpdate,
  newest first. CancelInstanceRefresh: Cancelling until in-flight launches and terminations finish,
  then Cancelled; ActiveInstanceRefreshNotFound when none is active. Instances already replaced stay.
* EventBridge events (source aws.autoscaling, best effort like all Auto Scaling events): "EC2 Auto
  Scaling Instance Refresh Started | Checkpoint Reached | Succeeded | Failed | Cancelled", detail
  {InstanceRefreshId, AutoScalingGroupName} (+ CheckpointPercentage, CheckpointDelay as strings); no
  event for the 100 % checkpoint; a checkpoint skipped over is not announced, the highest reached is.

Choices where AWS documents no number, each kept conservative: MaxHealthyPercentage rounds down (never
more surge than asked); a refresh fails after MAX_REPLACEMENT_FAILURES replacement instances that never
became healthy (AWS: "instances failed to launch" or failed health checks, count undocumented).
Not emulated: RollbackInstanceRefresh and AutoRollback, AlarmSpecification, BakeTime, Standby and
scale-in-protected instance handling, warm pools: a request that uses them gets a ValidationError
saying so, never a silent success.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from moto.autoscaling import models as asg_models
from moto.autoscaling import responses as asg_responses
from moto.autoscaling.exceptions import AutoscalingClientError, ValidationError
from moto.core.responses import ActionResult

from twin.account import ACCOUNT_ID, REGION
from twin.aws.lifecycle import LIVE_STATES, TERMINATING_STATES, LifecycleEmulation
from twin.aws.patching import MethodPatches

if TYPE_CHECKING:
    from moto.autoscaling.models import FakeAutoScalingGroup, InstanceState
    from moto.autoscaling.responses import AutoScalingResponse

# How often a refresh in flight looks at its group (virtual seconds).
TICK_SECONDS = 5.0
DEFAULT_MIN_HEALTHY = 90
DEFAULT_CHECKPOINT_DELAY = 3600
MAX_REPLACEMENT_FAILURES = 3
ACTIVE = ("Pending", "InProgress", "Cancelling")
NOT_EMULATED = (
    "AutoRollback",
    "AlarmSpecification",
    "BakeTime",
    "StandbyInstances",
    "ScaleInProtectedInstances",
)

DETAIL_TYPE = "EC2 Auto Scaling Instance Refresh {}"


class InstanceRefreshError(AutoscalingClientError):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass
class Preferences:
    min_healthy: int = DEFAULT_MIN_HEALTHY
    max_healthy: int = 100
    warmup: int = 0
    skip_matching: bool = False
    checkpoints: tuple[int, ...] = ()
    checkpoint_delay: int = DEFAULT_CHECKPOINT_DELAY

    def described(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "MinHealthyPercentage": self.min_healthy,
            "MaxHealthyPercentage": self.max_healthy,
            "InstanceWarmup": self.warmup,
            "SkipMatching": self.skip_matching,
        }
        if self.checkpoints:
            described["CheckpointPercentages"] = list(self.checkpoints)
            described["CheckpointDelay"] = self.checkpoint_delay
        return described


@dataclass
class Refresh:
    refresh_id: str
    group_name: str
    preferences: Preferences
    target_version: str  # the launch template version number replacements launch from
    desired: dict[str, Any] | None
    started_at: datetime
    to_replace: frozenset[str]  # the instances found not matching when it started
    status: str = "Pending"
    status_reason: str = ""
    ended_at: datetime | None = None
    percentage: int = 0
    in_service_at: dict[str, float] = field(default_factory=dict)  # replacement -> when InService
    failures: int = 0
    checkpoint_index: int = 0
    waiting_until: float | None = None

    @property
    def total(self) -> int:
        return len(self.to_replace)

    def described(self, instances_to_update: int) -> dict[str, Any]:
        described: dict[str, Any] = {
            "InstanceRefreshId": self.refresh_id,
            "AutoScalingGroupName": self.group_name,
            "Status": self.status,
            "StartTime": self.started_at,
            "PercentageComplete": self.percentage,
            "InstancesToUpdate": instances_to_update,
            "Preferences": self.preferences.described(),
            "ProgressDetails": {
                "LivePoolProgress": {
                    "PercentageComplete": self.percentage,
                    "InstancesToUpdate": instances_to_update,
                }
            },
        }
        if self.status_reason:
            described["StatusReason"] = self.status_reason
        if self.ended_at is not None:
            described["EndTime"] = self.ended_at
        if self.desired is not None:
            described["DesiredConfiguration"] = self.desired
        return described


@dataclass(frozen=True)
class GroupNow:
    """One look at a refreshing group: its old (to replace) and new instances by condition."""

    desired: int
    live: int
    healthy: int
    old_live: list[InstanceState]
    old_leaving: int
    new_live: int  # replacements launched by (or since) this refresh, alive
    new_warming: int  # of those, not yet healthy and warmed up
    new_ready: int


class InstanceRefreshEmulation:
    def __init__(self, lifecycle: LifecycleEmulation) -> None:
        self.lifecycle = lifecycle
        self.context = lifecycle.context
        self.refreshes: list[Refresh] = []

    # ---- the API -------------------------------------------------------------------------------

    def start(self, group_name: str, strategy: str | None, desired: Any, raw_preferences: Any) -> str:
        group = self._group(group_name)
        if strategy not in (None, "", "Rolling"):
            raise ValidationError(f"Strategy {strategy!r} is not supported: only Rolling")
        if any(r.group_name == group_name and r.status in ACTIVE for r in self.refreshes):
            raise InstanceRefreshError(
                "InstanceRefreshInProgress", f"An Instance Refresh is already in progress for {group_name}"
            )
        preferences = _preferences(raw_preferences or {}, group)
        target = _target_version(group, desired)
        to_replace = frozenset(
            s.instance_id
            for s in group.instance_states
            if s.lifecycle_state in LIVE_STATES
            and not (preferences.skip_matching and getattr(s, "launched_template_version", None) == target)
        )
        refresh = Refresh(
            refresh_id=str(uuid.UUID(int=self.context.rng.getrandbits(128), version=4)),
            group_name=group_name,
            preferences=preferences,
            target_version=target,
            desired=desired or None,
            started_at=self.context.clock.now_datetime(),
            to_replace=to_replace,
        )
        self.refreshes.append(refresh)
        self._note(f"instance refresh {refresh.refresh_id} of {group_name}: {refresh.total} to replace")
        self.context.scheduler.after(
            0.0, f"instance refresh {refresh.refresh_id} starts", lambda: self._begin(refresh)
        )
        return refresh.refresh_id

    def describe(self, group_name: str, refresh_ids: list[str] | None) -> list[dict[str, Any]]:
        self._group(group_name)
        found = [r for r in self.refreshes if r.group_name == group_name]
        if refresh_ids:
            found = [r for r in found if r.refresh_id in refresh_ids]
        return [
            r.described(self._instances_to_update(r))
            for r in sorted(found, key=lambda r: r.started_at, reverse=True)
        ]

    def cancel(self, group_name: str) -> str:
        self._group(group_name)
        active = next(
            (
                r
                for r in self.refreshes
                if r.group_name == group_name and r.status in ("Pending", "InProgress")
            ),
            None,
        )
        if active is None:
            raise InstanceRefreshError(
                "ActiveInstanceRefreshNotFound",
                f"No in progress or pending Instance Refresh found for {group_name}",
            )
        active.status, active.status_reason = "Cancelling", "Cancelling: waiting for in-flight replacements"
        self._note(f"instance refresh {active.refresh_id} cancelling")
        return active.refresh_id

    # ---- the refresh itself --------------------------------------------------------------------

    def _begin(self, refresh: Refresh) -> None:
        if refresh.status != "Pending":
            self._tick(refresh)
            return
        refresh.status = "InProgress"
        self._emit(refresh, "Started")
        self._tick(refresh)

    def _tick(self, refresh: Refresh) -> None:
        group = self._backend().autoscaling_groups.get(refresh.group_name)
        if group is None:
            self._end(refresh, "Failed", "The Auto Scaling group was deleted")
            return
        now = self._look(refresh, group)
        refresh.percentage = _percentage(now.new_ready, refresh.total)
        if not self._proceed(refresh, group, now):
            return
        self.context.scheduler.after(
            TICK_SECONDS, f"instance refresh {refresh.refresh_id}", lambda: self._tick(refresh)
        )

    def _proceed(self, refresh: Refresh, group: FakeAutoScalingGroup, now: GroupNow) -> bool:
        """One step; False once the refresh has ended (no further ticks)."""
        if refresh.status == "Cancelling":
            if now.new_warming == 0 and now.old_leaving == 0:
                self._end(refresh, "Cancelled", "Instance refresh cancelled")
                return False
            return True
        if refresh.failures >= MAX_REPLACEMENT_FAILURES:
            self._end(refresh, "Failed", f"{refresh.failures} replacement instances failed to become healthy")
            return False
        if refresh.waiting_until is not None:
            if self.context.clock.now() < refresh.waiting_until:
                return True
            refresh.waiting_until, refresh.status_reason = None, ""
        if self._checkpoint_reached(refresh):
            return True
        goal = self._goal(refresh)
        if (
            now.new_ready >= goal
            and now.old_leaving == 0
            and now.new_warming == 0
            and (goal < refresh.total or not now.old_live)
        ):
            self._succeed(refresh, group)
            return False
        self._replace(refresh, group, now, goal)
        return True

    def _look(self, refresh: Refresh, group: FakeAutoScalingGroup) -> GroupNow:
        clock_now = self.context.clock.now()
        states = list(group.instance_states)
        present = {s.instance_id for s in states if s.lifecycle_state not in TERMINATING_STATES}
        for instance_id in [i for i, at in refresh.in_service_at.items() if i not in present]:
            if (
                refresh.in_service_at[instance_id] < 0
                or clock_now < refresh.in_service_at[instance_id] + refresh.preferences.warmup
            ):
                refresh.failures += 1  # a replacement gone before it was healthy (abandoned, crashed)
                self._note(f"instance refresh {refresh.refresh_id}: replacement {instance_id} failed")
            del refresh.in_service_at[instance_id]
        new = [s for s in states if s.instance_id in refresh.in_service_at and s.instance_id in present]
        for state in new:
            if state.lifecycle_state == "InService" and refresh.in_service_at[state.instance_id] < 0:
                refresh.in_service_at[state.instance_id] = clock_now
        ready = [
            s
            for s in new
            if s.lifecycle_state == "InService"
            and s.health_status == "Healthy"
            and 0 <= refresh.in_service_at[s.instance_id] <= clock_now - refresh.preferences.warmup
        ]
        live = [s for s in states if s.lifecycle_state in LIVE_STATES]
        healthy = [
            s
            for s in live
            if s.lifecycle_state == "InService"
            and s.health_status == "Healthy"
            and (s not in new or s in ready)
        ]
        return GroupNow(
            desired=group.desired_capacity or 0,
            live=len(live),
            healthy=len(healthy),
            old_live=[s for s in live if s.instance_id in refresh.to_replace],
            old_leaving=len(
                [
                    s
                    for s in states
                    if s.instance_id in refresh.to_replace and s.lifecycle_state in TERMINATING_STATES
                ]
            ),
            new_live=len(new),
            new_warming=len(new) - len(ready),
            new_ready=len(ready),
        )

    def _goal(self, refresh: Refresh) -> int:
        """How many replacements the next checkpoint (or the last one, or all) asks for."""
        points = refresh.preferences.checkpoints
        percent = (
            points[refresh.checkpoint_index]
            if refresh.checkpoint_index < len(points)
            else (points[-1] if points else 100)
        )
        return math.ceil(refresh.total * percent / 100)

    def _checkpoint_reached(self, refresh: Refresh) -> bool:
        points = refresh.preferences.checkpoints
        reached = [
            i
            for i in range(refresh.checkpoint_index, len(points))
            if points[i] < 100 and refresh.percentage >= points[i]
        ]
        if not reached or points[reached[-1]] == points[-1]:
            return False
        refresh.checkpoint_index = reached[-1] + 1
        delay = refresh.preferences.checkpoint_delay
        refresh.waiting_until = self.context.clock.now() + delay
        refresh.status_reason = f"Waiting for checkpoint ({points[reached[-1]]}%) delay"
        self._emit(
            refresh,
            "Checkpoint Reached",
            CheckpointPercentage=str(points[reached[-1]]),
            CheckpointDelay=str(delay),
        )
        return True

    def _replace(self, refresh: Refresh, group: FakeAutoScalingGroup, now: GroupNow, goal: int) -> None:
        desired = now.desired
        min_healthy = math.ceil(desired * refresh.preferences.min_healthy / 100)
        max_live = max(desired, math.floor(desired * refresh.preferences.max_healthy / 100))
        kept = _kept(refresh, group)

        def launches(live: int) -> int:
            """Replacements that fit: room up to the maximum, no more than the group and the goal need."""
            return max(0, min(max_live - live, desired - now.new_live - kept, goal - now.new_live))

        gone_or_going = refresh.total - len(now.old_live)
        # Old instances go while the healthy ones stay at the minimum, and no further than the goal.
        terminate = max(0, min(len(now.old_live), now.healthy - min_healthy, goal - gone_or_going))
        quiet = now.new_warming == 0 and now.old_leaving == 0
        if terminate == 0 and launches(now.live) == 0 and quiet and now.old_live and gone_or_going < goal:
            terminate = 1  # no room either way (MinHealthyPercentage 100, no surge): one at a time
        victims = sorted(now.old_live, key=lambda s: (s.health_status == "Healthy", s.instance_id))[
            :terminate
        ]
        for victim in victims:
            self.lifecycle.begin_terminate(group, victim, cause=f"instance refresh {refresh.refresh_id}")
        self.lifecycle.surge[group.name] = max_live - desired
        for _ in range(launches(now.live - len(victims))):
            state = self._launch(refresh, group)
            refresh.in_service_at[state.instance_id] = -1.0

    def _launch(self, refresh: Refresh, group: FakeAutoScalingGroup) -> InstanceState:
        """A replacement from the refresh's launch template version (its desired configuration, when
        one was given: the group takes it only when the refresh succeeds)."""
        setting = group.launch_template_version
        if refresh.desired is not None:
            group.launch_template_version = refresh.target_version
        try:
            return self.lifecycle._launch_one(group)
        finally:
            group.launch_template_version = setting

    def _succeed(self, refresh: Refresh, group: FakeAutoScalingGroup) -> None:
        if refresh.desired is not None:
            template = refresh.desired.get("LaunchTemplate") or {}
            group.launch_template_version = str(template.get("Version") or refresh.target_version)
        refresh.percentage = 100
        self._end(refresh, "Successful", "")

    def _end(self, refresh: Refresh, status: str, reason: str) -> None:
        refresh.status, refresh.status_reason = status, reason
        refresh.ended_at = self.context.clock.now_datetime()
        self.lifecycle.surge.pop(refresh.group_name, None)
        self._note(f"instance refresh {refresh.refresh_id} {status}{': ' + reason if reason else ''}")
        self._emit(refresh, {"Successful": "Succeeded"}.get(status, status))

    def _instances_to_update(self, refresh: Refresh) -> int:
        if refresh.status == "Successful":
            return 0
        return max(0, refresh.total - round(refresh.total * refresh.percentage / 100))

    # ---- helpers -------------------------------------------------------------------------------

    def _emit(self, refresh: Refresh, what: str, **extra: str) -> None:
        group = self._backend().autoscaling_groups.get(refresh.group_name)
        event = {
            "Source": "aws.autoscaling",
            "DetailType": DETAIL_TYPE.format(what),
            "Detail": json.dumps(
                {"InstanceRefreshId": refresh.refresh_id, "AutoScalingGroupName": refresh.group_name, **extra}
            ),
            "Resources": [group.arn] if group is not None else [],
            "Time": self.context.clock.now_datetime().astimezone(UTC),
        }
        self.context.scheduler.after(
            self.context.latency.lifecycle_event_seconds(),
            f"instance refresh {what} event",
            lambda: self.context.events.get().put_events([event]),
        )

    def _group(self, name: str) -> FakeAutoScalingGroup:
        group = self._backend().autoscaling_groups.get(name)
        if group is None:
            raise ValidationError(f"AutoScalingGroup name not found - AutoScalingGroup {name} not found")
        return group

    def _backend(self) -> asg_models.AutoScalingBackend:
        return asg_models.autoscaling_backends[ACCOUNT_ID][REGION]

    def _note(self, text: str) -> None:
        self.context.recorder.note("asg", text)


def _kept(refresh: Refresh, group: FakeAutoScalingGroup) -> int:
    """Live instances neither to replace nor replacements: those that matched when it started."""
    return len(
        [
            s
            for s in group.instance_states
            if s.lifecycle_state in LIVE_STATES
            and s.instance_id not in refresh.to_replace
            and s.instance_id not in refresh.in_service_at
        ]
    )


def _percentage(ready: int, total: int) -> int:
    return 100 if total == 0 else min(100, math.floor(100 * ready / total))


def _preferences(raw: dict[str, Any], group: FakeAutoScalingGroup) -> Preferences:
    unsupported = [key for key in NOT_EMULATED if raw.get(key) not in (None, False, "", [])]
    if unsupported:
        raise ValidationError(f"The twin does not emulate {', '.join(unsupported)} of an instance refresh")
    minimum = int(raw.get("MinHealthyPercentage", DEFAULT_MIN_HEALTHY))
    maximum = int(raw.get("MaxHealthyPercentage", 100))
    if not 0 <= minimum <= 100:
        raise ValidationError("MinHealthyPercentage must be between 0 and 100")
    if not 100 <= maximum <= 200 or maximum - minimum > 100:
        raise ValidationError(
            "MaxHealthyPercentage must be between 100 and 200, and at most 100 above MinHealthyPercentage"
        )
    checkpoints = tuple(int(p) for p in raw.get("CheckpointPercentages") or ())
    if list(checkpoints) != sorted(set(checkpoints)) or any(not 1 <= p <= 100 for p in checkpoints):
        raise ValidationError("CheckpointPercentages must be ascending values between 1 and 100")
    if raw.get("CheckpointDelay") is not None and not checkpoints:
        raise ValidationError("CheckpointDelay requires CheckpointPercentages")
    warmup = raw.get("InstanceWarmup")
    return Preferences(
        min_healthy=minimum,
        max_healthy=maximum,
        warmup=int(warmup) if warmup is not None else int(group.health_check_grace_period or 0),
        skip_matching=str(raw.get("SkipMatching", False)).lower() == "true",
        checkpoints=checkpoints,
        checkpoint_delay=int(raw.get("CheckpointDelay") or DEFAULT_CHECKPOINT_DELAY),
    )


def _target_version(group: FakeAutoScalingGroup, desired: Any) -> str:
    """The numbered launch template version replacements launch from."""
    template = group.ec2_launch_template
    if template is None:
        raise ValidationError("The twin emulates instance refresh for groups with a launch template only")
    spec = (desired or {}).get("LaunchTemplate")
    if desired and not spec:
        raise ValidationError("The twin emulates a DesiredConfiguration with a LaunchTemplate only")
    if spec:
        named = spec.get("LaunchTemplateId") or spec.get("LaunchTemplateName")
        if named not in (template.id, template.name):
            raise ValidationError(
                "The twin emulates a DesiredConfiguration of the group's own launch template only"
            )
        version = str(spec.get("Version") or "$Default")
        if version in ("$Latest", "$Default"):
            raise ValidationError("A desired configuration must name a numbered launch template version")
        return str(template.get_version(version).number)
    return str(template.get_version(group.launch_template_version).number)


# ---- the patches ----------------------------------------------------------------------------------

_current: InstanceRefreshEmulation | None = None


def install(emulation: InstanceRefreshEmulation) -> Callable[[], None]:
    """Serve the instance refresh calls from `emulation`; returns the undo."""
    global _current
    previous = _current
    _current = emulation
    response_cls = asg_responses.AutoScalingResponse

    def start_instance_refresh(self: AutoScalingResponse) -> ActionResult:
        refresh_id = _require().start(
            self._get_param("AutoScalingGroupName"),
            self._get_param("Strategy"),
            self._get_param("DesiredConfiguration"),
            self._get_param("Preferences"),
        )
        return ActionResult({"InstanceRefreshId": refresh_id})

    def describe_instance_refreshes(self: AutoScalingResponse) -> ActionResult:
        found = _require().describe(
            self._get_param("AutoScalingGroupName"), self._get_param("InstanceRefreshIds")
        )
        return ActionResult({"InstanceRefreshes": found})

    def cancel_instance_refresh(self: AutoScalingResponse) -> ActionResult:
        return ActionResult({"InstanceRefreshId": _require().cancel(self._get_param("AutoScalingGroupName"))})

    replacements = {
        "start_instance_refresh": start_instance_refresh,
        "describe_instance_refreshes": describe_instance_refreshes,
        "cancel_instance_refresh": cancel_instance_refresh,
    }
    patches = MethodPatches()
    for name, replacement in replacements.items():
        patches.patch(response_cls, name, replacement)

    def undo() -> None:
        global _current
        patches.undo()
        _current = previous

    return undo


def _require() -> InstanceRefreshEmulation:
    if _current is None:
        raise ValidationError("instance refresh emulation is not installed")
    return _current


__all__ = ["InstanceRefreshEmulation", "install"]
