"""The reconciler's rollout pass: the world a rollout decision reads, the decision (core/rollout.py
``advance``), its record written conditionally, and its steps carried out by the actuator.

The rollout record lives on an item of its own (StateStore.load_rollout / write_rollout), so a
decision here never contends with joins and removals; a conflicting write decides again.
"""

from __future__ import annotations

from collections.abc import Callable

from aws_lambda_powertools import Logger

from kcluster.actuator import Actuator
from kcluster.adapters.instance_refresh import InstanceRefreshes
from kcluster.adapters.state_store import StateStore, WriteConflict
from kcluster.config import ClusterConfig
from kcluster.core import rollout
from kcluster.core.models import ClusterView, Metric, Note
from kcluster.core.rollout import RolloutWorld
from kcluster.core.rollout_model import RefreshSeen, RolloutDecision, RolloutState, StartRefresh, Target

MAX_ROLLOUT_ATTEMPTS = 5


class RolloutPass:
    def __init__(
        self,
        config: ClusterConfig,
        store: StateStore,
        refreshes: InstanceRefreshes,
        actuator: Actuator,
        logger: Logger,
        say: Callable[[Note], None],
        publish: Callable[[Metric], None],
    ) -> None:
        self.config = config
        self.store = store
        self.refreshes = refreshes
        self.actuator = actuator
        self.logger = logger
        self.say = say
        self.publish = publish

    def run(self, view: ClusterView, reload: Callable[[], ClusterView], now: Callable[[], float]) -> None:
        """Decide on the rollout record as `view` was loaded with it; on a conflicting write, reload
        and decide again."""
        for _ in range(MAX_ROLLOUT_ATTEMPTS):
            record = self.store.loaded_rollout
            world = self.world(view, record, now())
            try:
                self._carry_out(rollout.advance(world, self.config.rollout), record, now)
                return
            except WriteConflict:
                self.logger.info("rollout record changed under us; deciding again")
                view = reload()
        raise WriteConflict(f"rollout: gave up after {MAX_ROLLOUT_ATTEMPTS} conflicting decisions")

    def world(self, view: ClusterView, record: RolloutState | None, now: float) -> RolloutWorld:
        """What the decision reads. DescribeInstanceRefreshes is asked only while the record follows a
        refresh: the only time the decision reads it, so an idle cluster costs no call per tick."""
        following = record.refresh_asg if record is not None else None
        refreshes: dict[str, RefreshSeen] = self.refreshes.latest([following]) if following else {}
        return RolloutWorld(view, record, Target.of(self.config), refreshes, now)

    def _carry_out(
        self, decision: RolloutDecision, loaded: RolloutState | None, now: Callable[[], float]
    ) -> None:
        record = decision.record
        if record is not None:
            self.store.write_rollout(record, loaded)
        for note in decision.notes:
            self.say(note)
        for metric in decision.metrics:
            self.publish(metric)
        for notify in decision.notify:
            self.actuator.act(notify)
        for step in decision.steps:
            refresh_id = self.actuator.act_rollout(step)
            if isinstance(step, StartRefresh) and refresh_id is not None and record is not None:
                self._follow(record, step.asg_name, refresh_id, now())

    def _follow(self, record: RolloutState, asg_name: str, refresh_id: str, now: float) -> None:
        """Record the refresh StartInstanceRefresh answered with. A conflict here is left to the next
        tick: DescribeInstanceRefreshes names the running refresh, and a second start adopts it."""
        followed = rollout.on_refresh_started(record, asg_name, refresh_id, now).record
        if followed is None:
            return
        try:
            self.store.write_rollout(followed, record)
        except WriteConflict:
            self.logger.warning(
                "refresh id not recorded: the rollout record changed", extra={"asg": asg_name}
            )
