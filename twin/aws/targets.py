"""NLB target health for the twin, which moto 5.2.1 does not model.

moto answers DescribeTargetHealth from the EC2 instance state alone: a registered running instance is
`healthy` at once, forever. AWS health-checks each target instead. For each watched target group (the
twin watches its control-plane group: TCP health check on 6443) this module emulates:

* registration: a new target is `initial` (Elb.RegistrationInProgress) until its first check, then
  `initial` (Elb.InitialHealthChecking) until it has passed `HealthyThresholdCount` consecutive checks
  (-> `healthy`) or failed `UnhealthyThresholdCount` consecutive ones (-> `unhealthy`,
  Target.FailedHealthChecks, "Health checks failed");
* one check every `HealthCheckIntervalSeconds` per target, counted from its registration: a healthy
  target turns unhealthy after `UnhealthyThresholdCount` consecutive failures, an unhealthy one healthy
  after `HealthyThresholdCount` consecutive passes. The check passes when the port answers: for the API
  target group, when the model's host is alive and its kube-apiserver runs (`KubeModel.apiserver_running`:
  a control plane of the cluster whose API server static pod is up);
* deregistration (or moto dropping a terminated instance): `draining` (Target.DeregistrationInProgress)
  for the group's `deregistration_delay.timeout_seconds`, then gone (asked for by id: `unused`,
  Target.NotRegistered);
* CloudWatch: each minute, AWS/NetworkELB `HealthyHostCount` and `UnHealthyHostCount` (Unit Count) with
  dimensions TargetGroup=<ARN suffix "targetgroup/<name>/<id>"> and LoadBalancer=<ARN suffix after
  ":loadbalancer/"> for every load balancer the group is attached to, each the maximum over the minute
  (the count as the minute began and after each check in it), timestamped at the minute's start and
  written straight into moto's CloudWatch backend.

Simplified: one health checker per target (AWS checks from every enabled AZ); no per-AZ metrics; a
target that is re-registered while draining starts over as `initial`; no `unavailable` or
`Target.InvalidState` answers; health checks cost nothing and draw nothing from any seeded generator.
Note that moto 5.2.1 builds every load balancer ARN as `loadbalancer/app/...`, network ones included, so
the LoadBalancer dimension reads `app/<name>/<id>` where AWS would say `net/<name>/<id>`: it is derived
from the ARN, as AWS documents, so it matches what anything else in the twin derives from that ARN.

The NLB carries the API traffic (`serve`): a call to the control-plane endpoint reaches only the targets
the load balancer routes to (`routed_behind`): the healthy ones; when every registered target fails its
checks, the load balancer fails open and routes to all of them; a target still in its initial checks or
draining gets no new connections, and an empty group reaches nothing (the connection times out).
`registered_behind` lists the registered targets, whatever their state, for a caller that retries until
a target it just started serving on passes its checks (kubeadm init waits minutes for its API server;
the Terraform group's 2 x 10 s checks fit well inside). Simplified: a call succeeds when any routed
target answers (AWS hashes each connection to one target; clients retry).

The checks run on the twin's ticker (twin/ticker.py), not as scheduler calls, and only while targets are
registered or draining. `install(twin)` patches `ELBv2Backend.describe_target_health` (the one place) so
watched groups answer from this emulation; the undo restores moto's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from moto.cloudwatch.models import cloudwatch_backends
from moto.elbv2 import models as elbv2_models

from twin.account import ACCOUNT_ID, REGION

if TYPE_CHECKING:
    from moto.elbv2.models import FakeTargetGroup

    from twin.clock import VirtualClock
    from twin.ports import ApiServerProbe
    from twin.recorder import Recorder

NAMESPACE = "AWS/NetworkELB"
MINUTE = 60.0
# AWS's default deregistration delay is 300 s; the twin's group sets its own (infra.NlbSpec).
DEFAULT_DEREGISTRATION_DELAY_SECONDS = 300

INITIAL, HEALTHY, UNHEALTHY, DRAINING, UNUSED = "initial", "healthy", "unhealthy", "draining", "unused"
# (reason code, description) per state, as DescribeTargetHealth gives them for a Network Load Balancer.
REGISTERING = ("Elb.RegistrationInProgress", "Target registration is in progress")
INITIAL_CHECKS = ("Elb.InitialHealthChecking", "Initial health checks in progress")
FAILED = ("Target.FailedHealthChecks", "Health checks failed")
DEREGISTERING = ("Target.DeregistrationInProgress", "Target deregistration is in progress")
NOT_REGISTERED = ("Target.NotRegistered", "Target is not registered to the target group")

Probe = Callable[[str], bool]


@dataclass
class TargetState:
    target_id: str
    port: Any
    registered_at: float
    next_check: float
    state: str = INITIAL
    reason: tuple[str, str] | None = REGISTERING
    passes: int = 0  # consecutive
    failures: int = 0  # consecutive
    checks: int = 0
    gone_at: float | None = None  # draining ends


@dataclass
class _Watched:
    arn: str
    probe: Probe
    targets: dict[str, TargetState] = field(default_factory=dict)
    draining: dict[str, TargetState] = field(default_factory=dict)
    # The minute's maxima (healthy, unhealthy) for CloudWatch.
    minute_max: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class TargetTransition:
    at: float
    target_group: str
    target_id: str
    old: str
    new: str
    reason: str | None


@dataclass(frozen=True)
class TargetHealthContext:
    """What the load balancer's health checks use."""

    clock: VirtualClock
    recorder: Recorder  # timeline notes when a target turns unhealthy or recovers
    apiservers: ApiServerProbe | None = None  # the API target group's check; None: nothing answers


class TargetHealthEmulation:
    def __init__(self, context: TargetHealthContext) -> None:
        self.context = context
        self.watched: dict[str, _Watched] = {}
        # Load balancer DNS name -> the target group its listener forwards to.
        self.endpoints: dict[str, str] = {}
        # Every state change of every watched target, in order (tests, reports).
        self.transitions: list[TargetTransition] = []
        self._next_minute = _next_whole_minute(context.clock.now())

    # ---- what the twin watches ----------------------------------------------------------------

    def watch(self, target_group_arn: str, probe: Probe) -> None:
        """Emulate health checks for this group; `probe(target_id)` says whether the port answers now."""
        self.watched[target_group_arn] = _Watched(target_group_arn, probe)
        self._sync()

    def api_probe(self, instance_id: str) -> bool:
        """The API target group's TCP check on 6443: the instance's own kube-apiserver answers."""
        apiservers = self.context.apiservers
        if apiservers is None:
            return False
        try:
            return bool(apiservers.apiserver_running(instance_id))
        except Exception:  # the model raises its own error for an instance it never saw
            return False

    def serve(self, endpoint_host: str, target_group_arn: str) -> None:
        """The load balancer at DNS name `endpoint_host` forwards to this (watched) target group."""
        self.endpoints[endpoint_host.lower()] = target_group_arn

    # ---- the endpoint's routing ---------------------------------------------------------------

    def registered_behind(self, endpoint: str) -> set[str] | None:
        """Instance ids registered (not draining) behind `endpoint` ("host:port"); None: no load balancer
        of the twin serves that endpoint."""
        watched = self._behind(endpoint)
        return None if watched is None else set(watched.targets)

    def routed_behind(self, endpoint: str) -> set[str] | None:
        """Instance ids the load balancer at `endpoint` routes new connections to now (see the module
        docstring); None: no load balancer of the twin serves that endpoint."""
        watched = self._behind(endpoint)
        if watched is None:
            return None
        by_state: dict[str, set[str]] = {}
        for target in watched.targets.values():
            by_state.setdefault(target.state, set()).add(target.target_id)
        return by_state.get(HEALTHY) or by_state.get(UNHEALTHY, set())

    def _behind(self, endpoint: str) -> _Watched | None:
        arn = self.endpoints.get(endpoint.rsplit(":", 1)[0].lower())
        if arn is None:
            return None
        self._sync()
        return self.watched[arn]

    # ---- queries ------------------------------------------------------------------------------

    def state_of(self, target_group_arn: str, target_id: str) -> str:
        self._sync()
        watched = self.watched[target_group_arn]
        found = watched.targets.get(target_id) or watched.draining.get(target_id)
        return found.state if found else UNUSED

    def counts(self, target_group_arn: str) -> tuple[int, int]:
        """(healthy, unhealthy) targets of the group now."""
        return _counts(self.watched[target_group_arn])

    # ---- the ticker's interface ---------------------------------------------------------------

    def next_due(self) -> float | None:
        self._sync()
        due = self._next_minute
        for watched in self.watched.values():
            for target in watched.targets.values():
                due = min(due, target.next_check)
            for target in watched.draining.values():
                due = min(due, target.gone_at if target.gone_at is not None else math.inf)
        return due

    def run_due(self, now: float) -> None:
        if self._next_minute <= now:
            # The minute that just ended is published before checks at its boundary start the next one.
            self._publish_minute(self._next_minute - MINUTE)
            self._next_minute += MINUTE
        for watched in self.watched.values():
            for target_id in [
                t for t, s in watched.draining.items() if s.gone_at is not None and s.gone_at <= now
            ]:
                del watched.draining[target_id]
            for target in watched.targets.values():
                if target.next_check <= now:
                    self._check(watched, target, now)
            _note_counts(watched)

    # ---- DescribeTargetHealth -----------------------------------------------------------------

    def describe(self, target_group: Any, targets: list[dict[str, Any]]) -> list[Any]:
        self._sync()
        watched = self.watched[target_group.arn]
        if not targets:
            states = list(watched.targets.values()) + list(watched.draining.values())
            return [self._status(target_group, s, s.port) for s in states]
        answers = []
        for target in targets:
            found = watched.targets.get(target["Id"]) or watched.draining.get(target["Id"])
            port = target.get("Port", found.port if found else target_group.port)
            if found is None:
                answers.append(
                    elbv2_models.FakeHealthStatus(
                        target["Id"], port, target_group.health_check_port, UNUSED, *NOT_REGISTERED
                    )
                )
            else:
                answers.append(self._status(target_group, found, port))
        return answers

    @staticmethod
    def _status(target_group: Any, state: TargetState, port: Any) -> Any:
        reason, description = state.reason or (None, None)
        return elbv2_models.FakeHealthStatus(
            state.target_id, port, target_group.health_check_port, state.state, reason, description
        )

    # ---- internals ----------------------------------------------------------------------------

    def _sync(self) -> None:
        """Take in registrations and deregistrations made since the last look (all at the clock's now:
        the clock has not moved since, as everything that moves it looks here first)."""
        backend = _elbv2()
        now = self.context.clock.now()
        for watched in self.watched.values():
            group = backend.target_groups.get(watched.arn)
            registered = group.targets if group is not None else {}
            if registered.keys() == watched.targets.keys():
                continue
            for target_id in [t for t in watched.targets if t not in registered]:
                state = watched.targets.pop(target_id)
                delay = _deregistration_delay(group)
                self._change(watched, state, DRAINING, DEREGISTERING, now)
                state.gone_at = now + delay
                if delay > 0:
                    watched.draining[target_id] = state
            for target_id, target in registered.items():
                if target_id not in watched.targets:
                    watched.draining.pop(target_id, None)
                    watched.targets[target_id] = TargetState(
                        target_id=target_id,
                        port=target.get("Port"),
                        registered_at=now,
                        next_check=now + _interval(group),
                    )
                    self.transitions.append(
                        TargetTransition(now, watched.arn, target_id, UNUSED, INITIAL, None)
                    )
            _note_counts(watched)

    def _check(self, watched: _Watched, target: TargetState, now: float) -> None:
        group = _elbv2().target_groups.get(watched.arn)
        healthy_threshold = int(group.healthy_threshold_count) if group is not None else 3
        unhealthy_threshold = int(group.unhealthy_threshold_count) if group is not None else 3
        target.checks += 1
        target.next_check = now + _interval(group)
        if watched.probe(target.target_id):
            target.passes, target.failures = target.passes + 1, 0
            if target.state != HEALTHY and target.passes >= healthy_threshold:
                self._change(watched, target, HEALTHY, None, now)
        else:
            target.passes, target.failures = 0, target.failures + 1
            if target.state != UNHEALTHY and target.failures >= unhealthy_threshold:
                self._change(watched, target, UNHEALTHY, FAILED, now)
        if target.state == INITIAL:
            target.reason = INITIAL_CHECKS

    def _change(
        self, watched: _Watched, target: TargetState, state: str, reason: tuple[str, str] | None, now: float
    ) -> None:
        old = target.state
        target.state, target.reason = state, reason
        self.transitions.append(
            TargetTransition(now, watched.arn, target.target_id, old, state, reason[0] if reason else None)
        )
        if UNHEALTHY in (old, state):
            # Routine registrations stay off the timeline; a target failing (or coming back) is news.
            name = watched.arn.rsplit(":", 1)[-1]
            self.context.recorder.note("elb", f"target {target.target_id} in {name}: {old} -> {state}")

    def _publish_minute(self, minute_start: float) -> None:
        backend = _elbv2()
        data = []
        for watched in self.watched.values():
            group = backend.target_groups.get(watched.arn)
            if group is None:
                continue
            healthy, unhealthy = watched.minute_max
            watched.minute_max = _counts(watched)
            for balancer_arn in group.load_balancer_arns:
                dimensions = [
                    {"Name": "TargetGroup", "Value": target_group_dimension(watched.arn)},
                    {"Name": "LoadBalancer", "Value": load_balancer_dimension(balancer_arn)},
                ]
                timestamp = datetime.fromtimestamp(minute_start, tz=UTC).replace(tzinfo=None)
                for name, value in (("HealthyHostCount", healthy), ("UnHealthyHostCount", unhealthy)):
                    data.append(
                        {
                            "MetricName": name,
                            "Value": float(value),
                            "Unit": "Count",
                            "Dimensions": dimensions,
                            "Timestamp": timestamp,
                        }
                    )
        if data:
            cloudwatch_backends[ACCOUNT_ID][REGION].put_metric_data(NAMESPACE, data)


def target_group_dimension(target_group_arn: str) -> str:
    """CloudWatch's TargetGroup dimension: the ARN's final portion, "targetgroup/<name>/<id>"."""
    return target_group_arn.rsplit(":", 1)[-1]


def load_balancer_dimension(load_balancer_arn: str) -> str:
    """CloudWatch's LoadBalancer dimension: the ARN's part after ":loadbalancer/"."""
    return load_balancer_arn.split(":loadbalancer/", 1)[-1]


def _counts(watched: _Watched) -> tuple[int, int]:
    states = [t.state for t in watched.targets.values()]
    return states.count(HEALTHY), states.count(UNHEALTHY)


def _note_counts(watched: _Watched) -> None:
    healthy, unhealthy = _counts(watched)
    watched.minute_max = (max(watched.minute_max[0], healthy), max(watched.minute_max[1], unhealthy))


def _interval(group: FakeTargetGroup | None) -> float:
    return float(getattr(group, "health_check_interval_seconds", None) or 30)


def _deregistration_delay(group: FakeTargetGroup | None) -> float:
    if group is None:
        return 0.0
    value = group.attributes.get("deregistration_delay.timeout_seconds", DEFAULT_DEREGISTRATION_DELAY_SECONDS)
    return float(value)


def _next_whole_minute(now: float) -> float:
    return (math.floor(now / MINUTE) + 1) * MINUTE


def _elbv2() -> elbv2_models.ELBv2Backend:
    return elbv2_models.elbv2_backends[ACCOUNT_ID][REGION]


# ---- the patch ------------------------------------------------------------------------------------

_current: TargetHealthEmulation | None = None


def install(emulation: TargetHealthEmulation) -> Callable[[], None]:
    """Make DescribeTargetHealth answer from `emulation` for the groups it watches; returns the undo."""
    global _current
    previous = _current
    _current = emulation
    backend_cls = elbv2_models.ELBv2Backend
    original = backend_cls.__dict__["describe_target_health"]

    def describe_target_health(
        self: elbv2_models.ELBv2Backend, target_group_arn: str, targets: list[dict[str, Any]]
    ) -> list[Any]:
        emulation = _current
        if emulation is None or target_group_arn not in emulation.watched:
            return original(self, target_group_arn, targets)
        group = self.target_groups.get(target_group_arn)
        if group is None:
            raise elbv2_models.TargetGroupNotFoundError()
        return emulation.describe(group, targets)

    backend_cls.describe_target_health = describe_target_health

    def undo() -> None:
        global _current
        backend_cls.describe_target_health = original
        _current = previous

    return undo


__all__ = [
    "DRAINING",
    "HEALTHY",
    "INITIAL",
    "UNHEALTHY",
    "UNUSED",
    "TargetHealthEmulation",
    "TargetTransition",
    "install",
    "load_balancer_dimension",
    "target_group_dimension",
]
