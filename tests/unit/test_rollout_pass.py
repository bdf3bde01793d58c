"""The reconciler's rollout pass (kcluster/rollout_pass.py): the decision's record written on the
version it was loaded at, a conflicting write decided again on a fresh load, a started refresh's id
recorded, and DescribeInstanceRefreshes asked only while a refresh is followed. Fakes stand in for
the store, Auto Scaling and the actuator (the twin's e2e test runs it against the emulation)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aws_lambda_powertools import Logger

from kcluster.adapters.state_store import WriteConflict
from kcluster.core.rollout_model import RefreshSeen, RolloutState, StartRefresh, Target
from kcluster.rollout_pass import RolloutPass

from .conftest import CP_ASG, WORKER_ASG, make_config
from .test_rollout import NOW, cluster


@dataclass
class FakeStore:
    loaded_rollout: RolloutState | None = None
    conflicts: int = 0  # writes to refuse before accepting
    written: list[tuple[RolloutState, RolloutState | None]] = field(default_factory=list)

    def write_rollout(self, record: RolloutState, based_on: RolloutState | None) -> None:
        if self.conflicts:
            self.conflicts -= 1
            raise WriteConflict("changed")
        assert based_on == self.loaded_rollout or (self.written and based_on == self.written[-1][0])
        self.written.append((record, based_on))


@dataclass
class FakeRefreshes:
    asked: list[list[str]] = field(default_factory=list)
    seen: dict[str, RefreshSeen] = field(default_factory=dict)

    def latest(self, names: list[str]) -> dict[str, RefreshSeen]:
        self.asked.append(names)
        return {n: self.seen[n] for n in names if n in self.seen}


@dataclass
class FakeActuator:
    steps: list[object] = field(default_factory=list)
    told: list[object] = field(default_factory=list)

    def act_rollout(self, step: object) -> str | None:
        self.steps.append(step)
        return "refresh-1" if isinstance(step, StartRefresh) else None

    def act(self, action: object) -> None:
        self.told.append(action)


def config_at(template: int):
    return make_config(
        node_groups=[
            {"asg_name": CP_ASG, "role": "control-plane", "launch_template_version": template},
            {"asg_name": WORKER_ASG, "role": "worker", "launch_template_version": template},
        ]
    )


def rollout_pass(store, refreshes, actuator, template: int = 2) -> RolloutPass:
    # A Logger of its own: importing kcluster.observability here would build the functions' Metrics
    # before the twin's tests set their namespace (every test module is collected in one process).
    logger = Logger(service="test-rollout-pass")
    return RolloutPass(
        config_at(template), store, refreshes, actuator, logger, lambda note: None, lambda m: None
    )


def test_a_new_launch_template_version_begins_a_rollout_and_asks_auto_scaling_nothing():
    # GIVEN a cluster on version 1 whose config now names version 2, and no rollout record
    store, refreshes, actuator = FakeStore(), FakeRefreshes(), FakeActuator()
    # WHEN the pass runs
    rollout_pass(store, refreshes, actuator).run(cluster(), cluster, lambda: NOW)
    # THEN a pending rollout toward the new target is written as a new record, and no refresh was asked
    ((record, based_on),) = store.written
    assert (record.phase, record.target, based_on) == ("pending", Target.of(config_at(2)).key, None)
    assert refreshes.asked == [] and actuator.steps == []


def test_a_conflicting_write_is_decided_again_on_a_fresh_load():
    store, actuator = FakeStore(conflicts=1), FakeActuator()
    reloads = []

    def reload():
        reloads.append(True)
        return cluster()

    rollout_pass(store, FakeRefreshes(), actuator).run(cluster(), reload, lambda: NOW)
    assert len(reloads) == 1 and len(store.written) == 1


def test_a_started_refresh_is_followed_by_its_id():
    # GIVEN a pending rollout of the new image (same Kubernetes version: no cluster-level step)
    pending = RolloutState("demo").begin(Target.of(config_at(2)), NOW - 60)
    store, refreshes, actuator = FakeStore(loaded_rollout=pending), FakeRefreshes(), FakeActuator()
    # WHEN the pass runs twice (start the rollout, then request the control planes' refresh)
    view = cluster(cps=("1.37.2",) * 3, workers=("1.37.2",) * 5)
    rollout_pass(store, refreshes, actuator).run(view, lambda: view, lambda: NOW)
    store.loaded_rollout = store.written[-1][0]
    rollout_pass(store, refreshes, actuator).run(view, lambda: view, lambda: NOW)
    # THEN the control planes' refresh was started (100 % kept, room for one more) and its id recorded
    (start,) = actuator.steps
    assert isinstance(start, StartRefresh) and start.asg_name == CP_ASG
    assert (start.min_healthy_percent, start.max_healthy_percent) == (100, 134)
    assert store.written[-1][0].refresh_id == "refresh-1"
    # AND the next pass asks Auto Scaling about that group only
    store.loaded_rollout = store.written[-1][0]
    refreshes.seen[CP_ASG] = RefreshSeen(CP_ASG, "refresh-1", "InProgress", 40)
    rollout_pass(store, refreshes, actuator).run(view, lambda: view, lambda: NOW + 60)
    assert refreshes.asked == [[CP_ASG]]
