"""Fault injection for the twin: what AWS really does to an event-driven control loop, seeded.

AWS delivers Auto Scaling and SSM events best effort (some never arrive), at least once (some twice), in
no particular order; Lambdas time out or crash between two calls; APIs throttle; instances die. A
`FaultInjector` does all of that to one Twin, through the twin's existing hooks only:

* events: an interceptor on `twin.bus` drops, duplicates or delays (and so reorders) the events a rule
  of ours consumes (lifecycle actions, command status changes, Node Provisioned). Schedules and alarm
  state changes are left alone: EventBridge schedules and CloudWatch alarm changes are durable.
* commands: `twin.fleet.run_script` is wrapped so a command fails before its script runs, or after it
  ran (the work is done but the agent reports a failure); `twin.latency.command_overrides` makes a
  run outlast the document's execution timeout, so Run Command reports it TimedOut.
* invocations: a function's invocation fails as a whole, before its handler runs (a crash at start-up,
  an out-of-memory kill): at `invocation_fail` per invocation of the functions named in
  `failing_functions` (the remediator by default), or exactly `fail_invocations(function, times)`.
  Lambda retries an asynchronous one (EventBridge -> remediator) as it does any failure.
* functions: a botocore `before-call` handler (registered like twin/recorder.py's, acting only inside
  a Lambda invocation) crashes the invocation before an AWS call (`InjectedCrash`, which no product
  `except Exception` can swallow; the runtime sees it as the function dying) or answers the call with
  `ThrottlingException: Rate exceeded` while a throttling window is open.
* instances: `twin.lifecycle.crash` kills an instance at a random moment, with its terminate lifecycle
  event delivered or lost; a kill never takes etcd below quorum by itself (that would be a disaster no
  control loop can heal, not a fault to survive).

Every fault is counted in `twin.recorder.counters` as `faults_<kind>`, noted on the timeline (kind
"fault") and kept in `injector.log`. `stop()` ends injection (events already delayed still arrive): the
world must then settle on its own. All randomness comes from the injector's own seeded RNG.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError
from botocore.handlers import BUILTIN_HANDLERS

from kcluster import contract
from twin.aws import concurrency
from twin.aws.runcommand import DOCUMENT_KEYS
from twin.latency import COMMAND_RANGES, DEFAULT_COMMAND_RANGE
from twin.node.boot import ec2_instance_running
from twin.node.fleet import ScriptResult

if TYPE_CHECKING:
    from twin.clock import ScheduledCall
    from twin.world import Twin

FAULT_KINDS = (
    "event_dropped",
    "event_duplicated",
    "event_delayed",
    "command_failed",
    "command_failed_after_run",
    "command_timed_out",
    "function_crashed",
    "invocation_failed",
    "api_throttled",
    "instance_killed",
    "terminate_event_lost",
)
COUNTER_PREFIX = "faults_"
# Event sources whose delivery AWS documents as best effort; ours to drop, duplicate and delay.
BEST_EFFORT_SOURCES = ("aws.autoscaling", "aws.ssm", contract.NODE_EVENT_SOURCE)
# Services a throttling window applies to ("*": every call).
THROTTLED_SERVICES = ("autoscaling", "ssm", "dynamodb", "*")
# Longer than any document's execution timeout: the run is cut off and reported TimedOut.
_OUTLASTS_ANY_TIMEOUT_SECONDS = 10.0**6


@dataclass(frozen=True)
class FaultRates:
    """How often each fault happens while injection is active (probabilities per event, command or call)."""

    event_drop: float = 0.08
    event_duplicate: float = 0.08
    event_delay: float = 0.1
    event_delay_seconds: tuple[float, float] = (5.0, 240.0)
    command_fail: float = 0.04
    command_fail_after_run: float = 0.04
    command_timeout: float = 0.03
    # Per AWS call a function makes: a reconciler tick makes a few dozen.
    function_crash: float = 0.01
    throttle_windows_per_hour: float = 4.0
    throttle_window_seconds: tuple[float, float] = (10.0, 90.0)
    # Inside a window, the share of the service's calls answered with ThrottlingException.
    throttle_share: float = 0.6
    kills_per_hour: float = 2.0
    # Per invocation of one of `failing_functions`: the whole invocation fails before the handler runs.
    invocation_fail: float = 0.0
    failing_functions: tuple[str, ...] = ("RemediatorFunction",)
    # Share of kills whose terminate lifecycle event is lost.
    kill_silently: float = 0.5

    @classmethod
    def none(cls) -> FaultRates:
        return cls(
            **{
                f.name: 0.0
                for f in fields(cls)
                if not f.name.endswith("_seconds") and f.name != "failing_functions"
            }
        )


class InjectedCrash(BaseException):
    """Raised inside an invocation at an AWS call: the function dies there, between two calls.

    A BaseException so that no `except Exception` in the product (or Powertools' batch processor) can
    swallow it; the injector turns it into `FunctionCrashed` at the handler boundary."""


class FunctionCrashed(Exception):
    """What the Lambda runtime reports for an invocation that died (timeout, out of memory, crash)."""


class InvocationFailed(Exception):
    """What the Lambda runtime reports for an invocation that failed before its handler ran."""


@dataclass(frozen=True)
class InjectedFault:
    at: float
    kind: str
    subject: str
    # What it hit: the event id, "<command id>/<instance id>", the instance id, or "<service>:<operation>".
    ref: str = ""


class FaultInjector:
    """Injects faults into `twin` from the moment it is built until `stop()`; undone when the twin closes."""

    def __init__(self, twin: Twin, rng: random.Random, rates: FaultRates | None = None) -> None:
        self.twin = twin
        self.rng = rng
        self.rates = rates or FaultRates()
        self.active = True
        self.log: list[InjectedFault] = []
        self._throttled_until: dict[str, float] = {}
        # Instances killed "without their terminate hook firing": their terminate event is lost.
        self._silent_kills: set[str] = set()
        self._timers: list[ScheduledCall] = []
        # Planned crashes: (service, operation) -> how many more invocations die before that call.
        self._planned_crashes: Counter[tuple[str, str]] = Counter()
        # Planned whole-invocation failures: function logical id -> how many more fail.
        self._planned_failures: Counter[str] = Counter()
        self._undo: list[Callable[[], None]] = []
        self._install()
        self._schedule("kill", self.rates.kills_per_hour, self._kill_at_random)
        self._schedule("throttle", self.rates.throttle_windows_per_hour, self._open_throttle_window)

    # ---- control ---------------------------------------------------------------------------

    def stop(self) -> None:
        """No new fault from now on; the world has to settle by itself."""
        if not self.active:
            return
        self.active = False
        self._throttled_until.clear()
        for timer in self._timers:
            self.twin.scheduler.cancel(timer)
        self._timers.clear()
        self.twin.recorder.note("fault", "fault injection stopped")

    def crash_before(self, service: str, operation: str, times: int = 1) -> None:
        """The next `times` invocations reaching `service:operation` die just before that call
        (whatever the rates say): a fault placed exactly, for regression tests."""
        self._planned_crashes[(service, operation)] += times

    def fail_invocations(self, logical_id: str, times: int = 1) -> None:
        """The next `times` invocations of the function fail before its handler runs (whatever the
        rates say)."""
        self._planned_failures[logical_id] += times

    def counts(self) -> dict[str, int]:
        return fault_counts(self.twin)

    def uninstall(self) -> None:
        self.stop()
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()

    # ---- installation through the twin's hooks ---------------------------------------------

    def _install(self) -> None:
        global _active
        twin = self.twin
        twin.bus.interceptors.append(self._intercept_event)
        self._undo.append(lambda: twin.bus.interceptors.remove(self._intercept_event))

        original_run_script = twin.fleet.run_script
        twin.fleet.run_script = self._wrap_run_script(original_run_script)
        self._undo.append(lambda: setattr(twin.fleet, "run_script", original_run_script))

        saved_overrides = dict(twin.latency.command_overrides)
        for key in (*COMMAND_RANGES, *DOCUMENT_KEYS):
            twin.latency.command_overrides[key] = self._command_duration(key, saved_overrides.get(key))
        self._undo.append(lambda: _restore(twin.latency.command_overrides, saved_overrides))

        original_handler = twin.functions.handler
        twin.functions.handler = self._wrap_handler_lookup(original_handler)
        self._undo.append(lambda: setattr(twin.functions, "handler", original_handler))

        previous = _active
        _active = self
        if boto3.DEFAULT_SESSION is not None:
            boto3.DEFAULT_SESSION._session.register("before-call", _before_call, unique_id=_HANDLER_ID)

        def deactivate() -> None:
            global _active
            _active = previous

        self._undo.append(deactivate)
        # The injector never outlives its twin.
        twin.on_close(self.uninstall)

    # ---- events ----------------------------------------------------------------------------

    def _intercept_event(self, event: dict[str, Any]) -> list[tuple[float, dict[str, Any]]]:
        if self._is_lost_terminate_event(event):
            self._inject("terminate_event_lost", _event_subject(event), event["id"])
            return []
        if (
            not self.active
            or event.get("source") not in BEST_EFFORT_SOURCES
            or not self.twin.bus.matching_rules(event)
        ):
            return [(0.0, event)]
        rates = self.rates
        roll = self.rng.random()
        if roll < rates.event_drop:
            self._inject("event_dropped", _event_subject(event), event["id"])
            return []
        roll -= rates.event_drop
        if roll < rates.event_duplicate:
            late = self.rng.uniform(*rates.event_delay_seconds)
            self._inject(
                "event_duplicated", f"{_event_subject(event)}, again after {late:.0f} s", event["id"]
            )
            return [(0.0, event), (late, event)]
        roll -= rates.event_duplicate
        if roll < rates.event_delay:
            late = self.rng.uniform(*rates.event_delay_seconds)
            self._inject("event_delayed", f"{_event_subject(event)} by {late:.0f} s", event["id"])
            return [(late, event)]
        return [(0.0, event)]

    def _is_lost_terminate_event(self, event: dict[str, Any]) -> bool:
        if event.get("detail-type") != contract.TERMINATE_DETAIL_TYPE:
            return False
        return (event.get("detail") or {}).get("EC2InstanceId") in self._silent_kills

    # ---- commands --------------------------------------------------------------------------

    def _wrap_run_script(self, run_script: Callable[..., ScriptResult]) -> Callable[..., ScriptResult]:
        def run(instance_id: str, script: str, env: dict[str, str], **kwargs: Any) -> ScriptResult:
            if not self.active:
                return run_script(instance_id, script, env, **kwargs)
            rates = self.rates
            roll = self.rng.random()
            command = self._command_running(instance_id, script)
            step = command.key if command else "unknown"
            ref = f"{command.command_id if command else ''}/{instance_id}"
            if roll < rates.command_fail:
                self._inject("command_failed", f"{step} on {instance_id} (script not run)", ref)
                return ScriptResult(1, _failure_line(step), "kcluster twin: injected failure\n")
            if roll < rates.command_fail + rates.command_fail_after_run:
                result = run_script(instance_id, script, env, **kwargs)
                self._inject("command_failed_after_run", f"{step} on {instance_id} (script ran)", ref)
                return ScriptResult(
                    result.exit_code or 1,
                    result.stdout + _failure_line(step),
                    result.stderr + "kcluster twin: injected failure after the run\n",
                )
            return run_script(instance_id, script, env, **kwargs)

        return run

    def _command_running(self, instance_id: str, script: str) -> Any:
        running = self.twin.runcommand.running
        if running is not None and running.instance_id == instance_id and running.command.script == script:
            return running.command
        return None

    def _command_duration(self, key: str, pinned: float | Callable[[], float] | None) -> Callable[[], float]:
        def duration() -> float:
            if self.active and self.rng.random() < self.rates.command_timeout:
                self._inject("command_timed_out", f"{key} outlasts its execution timeout")
                return _OUTLASTS_ANY_TIMEOUT_SECONDS
            if pinned is not None:
                return float(pinned()) if callable(pinned) else float(pinned)
            low, high = COMMAND_RANGES.get(key, DEFAULT_COMMAND_RANGE)
            return self.twin.latency.rng.uniform(low, high)

        return duration

    # ---- functions and API calls -----------------------------------------------------------

    def _wrap_handler_lookup(self, lookup: Callable[[str], Callable[[Any, Any], Any]]) -> Callable[..., Any]:
        def handler(logical_id: str) -> Callable[[Any, Any], Any]:
            real = lookup(logical_id)

            def guarded(event: Any, context: Any) -> Any:
                self._maybe_fail_invocation(logical_id)
                try:
                    return real(event, context)
                except InjectedCrash as crash:
                    raise FunctionCrashed(f"Runtime exited: {crash}") from None

            return guarded

        return handler

    def _maybe_fail_invocation(self, logical_id: str) -> None:
        if not self.active:
            return
        planned = self._planned_failures[logical_id] > 0
        if planned:
            self._planned_failures[logical_id] -= 1
        elif (
            logical_id not in self.rates.failing_functions or self.rng.random() >= self.rates.invocation_fail
        ):
            return
        self._inject("invocation_failed", logical_id)
        raise InvocationFailed(f"Runtime exited before the handler ran ({logical_id}, injected)")

    def on_api_call(self, service: str, operation: str) -> None:
        """Called at every AWS call a function makes; may crash the function or throttle the call."""
        if not self.active:
            return
        planned = self._planned_crashes[(service, operation)] > 0
        if planned:
            self._planned_crashes[(service, operation)] -= 1
        if planned or self.rng.random() < self.rates.function_crash:
            subject = f"{_function_name()} before {service}:{operation}"
            self._inject("function_crashed", subject, f"{service}:{operation}")
            raise InjectedCrash(f"crashed before {service}:{operation}")
        now = self.twin.clock.now()
        window_open = max(self._throttled_until.get(service, 0.0), self._throttled_until.get("*", 0.0))
        if now < window_open and self.rng.random() < self.rates.throttle_share:
            self._inject(
                "api_throttled", f"{service}:{operation} in {_function_name()}", f"{service}:{operation}"
            )
            raise ClientError(
                {
                    "Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                operation,
            )

    def _open_throttle_window(self) -> None:
        service = self.rng.choice(THROTTLED_SERVICES)
        seconds = self.rng.uniform(*self.rates.throttle_window_seconds)
        self._throttled_until[service] = self.twin.clock.now() + seconds
        self.twin.recorder.note("fault", f"throttling {service} calls for {seconds:.0f} s")

    # ---- instances -------------------------------------------------------------------------

    def _kill_at_random(self) -> None:
        candidates = [i for i in self.twin.instances() if self._may_kill(i["instance_id"])]
        if not candidates:
            return
        victim = self.rng.choice(candidates)["instance_id"]
        self.kill(victim, silently=self.rng.random() < self.rates.kill_silently)

    def kill(self, instance_id: str, *, silently: bool = False) -> None:
        """The instance dies now; with `silently` its terminate lifecycle event will never arrive."""
        if silently:
            self._silent_kills.add(instance_id)
        how = "terminate event to be lost" if silently else "terminate hook fires"
        self._inject("instance_killed", f"{instance_id} ({how})", instance_id)
        self.twin.lifecycle.crash(instance_id)

    def _may_kill(self, instance_id: str) -> bool:
        if not ec2_instance_running(instance_id):
            return False
        members = self.twin.model.etcd_members()
        member = next((m for m in members if m.instance_id == instance_id), None)
        if member is None or not member.healthy:
            return True
        healthy_after = sum(1 for m in members if m.healthy) - 1
        return healthy_after >= len(members) // 2 + 1

    # ---- bookkeeping -----------------------------------------------------------------------

    def _schedule(self, name: str, per_hour: float, action: Callable[[], None]) -> None:
        if per_hour <= 0 or not self.active:
            return

        def fire() -> None:
            if not self.active:
                return
            action()
            self._schedule(name, per_hour, action)

        delay = self.rng.expovariate(per_hour / 3600.0)
        self._timers = [t for t in self._timers if not (t.cancelled or t.due <= self.twin.clock.now())]
        self._timers.append(self.twin.scheduler.after(delay, f"fault:{name}", fire))

    def _inject(self, kind: str, subject: str, ref: str = "") -> None:
        self.twin.recorder.count(COUNTER_PREFIX + kind)
        self.log.append(InjectedFault(self.twin.clock.now(), kind, subject, ref))
        self.twin.recorder.note("fault", f"{kind.replace('_', ' ')}: {subject}")


def fault_counts(twin: Twin) -> dict[str, int]:
    """Faults injected into `twin`, per kind (every kind listed, zeros included)."""
    counters = twin.recorder.counters
    return {kind: counters.get(COUNTER_PREFIX + kind, 0) for kind in FAULT_KINDS}


def _event_subject(event: dict[str, Any]) -> str:
    detail = event.get("detail") or {}
    instance = detail.get("EC2InstanceId") or detail.get("instance-id") or ""
    status = detail.get("status")
    extra = f" {status}" if status else ""
    return f"{event.get('detail-type')} {instance}{extra}".strip()


def _failure_line(step: str) -> str:
    return json.dumps({"ok": False, "step": step, "changed": False, "error": "injected-failure"}) + "\n"


def _function_name() -> str:
    return os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "a function")


def _restore(target: dict[str, Any], saved: dict[str, Any]) -> None:
    target.clear()
    target.update(saved)


# ---- the before-call hook (like twin/recorder.py's: every session created after import has it) ---

_active: FaultInjector | None = None
_HANDLER_ID = "kcluster-twin-faults"


def _before_call(model: Any = None, **_: Any) -> None:
    injector = _active
    if injector is None or model is None or not concurrency.in_invocation():
        return
    injector.on_api_call(model.service_model.service_name, model.name)


BUILTIN_HANDLERS.append(("before-call", _before_call))
