"""Work AWS does on its own clock, run as virtual time passes without adding steps to the world.

CloudWatch evaluates every alarm each minute and an NLB health-checks every target every few seconds,
whatever else happens. Scheduling each of those as a scheduler call would add steps to the world, and
steps are observable: `Twin.run_until_settled` decides after every step whether the world has been quiet
long enough and watchers sample after every step, so extra steps would change when a scenario moves on,
and so what a seed does. The ticker runs such work in the gaps instead:

* before the scheduler runs its next call (`run_next`), every tick due at or before that call runs first,
  in due order (ties: sources in the order they were added), the clock moved to each tick's due time so
  timestamps and timeline notes read the right time; a call a tick schedules before the next call runs in
  its turn, as any other call would;
* when the clock is moved directly (`run_until` giving up at its limit, `chaos.run_for`, a test), the
  ticks due on the way run before it gets there.

Ticks never draw from the world's seeded generators, so a seed replays the same world with or without
them. Nothing in the world changes between two steps, so a tick run "late" by the ticker sees exactly
what a tick scheduled on time would have seen. `install()` returns the undo (Twin.close runs it).

A source has `next_due() -> float | None` (the earliest virtual time it has work; it may look at the
world to find out, e.g. newly registered targets) and `run_due(now)`, which does the work due at `now`
and must leave `next_due()` later than `now`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class TickSource(Protocol):
    def next_due(self) -> float | None: ...

    def run_due(self, now: float) -> None: ...


class Ticker:
    def __init__(self, clock: Any, scheduler: Any) -> None:
        self.clock = clock
        self.scheduler = scheduler
        self.sources: list[TickSource] = []
        self._move_to: Callable[[float], None] = clock.move_to
        self._run_next: Callable[[], bool] = scheduler.run_next
        self._running = False

    def add(self, source: TickSource) -> None:
        self.sources.append(source)

    def install(self) -> Callable[[], None]:
        """Hook the clock and the scheduler (instance attributes, nothing global); returns the undo."""
        self.clock.move_to = self._hooked_move_to
        self.scheduler.run_next = self._hooked_run_next

        def undo() -> None:
            self.clock.__dict__.pop("move_to", None)
            self.scheduler.__dict__.pop("run_next", None)

        return undo

    def run_until(self, limit: float) -> None:
        """Run every tick due at or before `limit`, earliest first."""
        if self._running:
            return
        self._running = True
        try:
            while (found := self._earliest(limit)) is not None:
                due, source = found
                if due > self.clock.now():
                    self._move_to(due)
                source.run_due(self.clock.now())
                after = source.next_due()
                if after is not None and after <= due:
                    raise RuntimeError(f"tick source {source!r} did not move past {due}")
        finally:
            self._running = False

    def _earliest(self, limit: float) -> tuple[float, TickSource] | None:
        best: tuple[float, TickSource] | None = None
        for source in self.sources:
            due = source.next_due()
            if due is not None and due <= limit and (best is None or due < best[0]):
                best = (due, source)
        return best

    def _hooked_run_next(self) -> bool:
        # Ticks may schedule calls (an event delivery): look at the next call again after each tick.
        while not self._running:
            due = self.scheduler.next_due()
            if due is None:
                break
            found = self._earliest(due)
            if found is None:
                break
            self.run_until(found[0])
        return self._run_next()

    def _hooked_move_to(self, timestamp: float) -> None:
        if timestamp > self.clock.now():
            self.run_until(timestamp)
        self._move_to(timestamp)
