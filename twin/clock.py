"""Virtual time for the twin: a frozen process clock that only the scheduler moves.

time_machine patches time.time(), datetime.now() and friends for the whole process, so moto's
timestamps, SQS visibility timeouts, Powertools log timestamps and the product's lease expiries all
read virtual time. Nothing ever sleeps: the scheduler jumps the clock to the next due callback.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import time_machine

DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)


class VirtualClock:
    """The process clock, frozen at `start` until moved forward (never backward)."""

    def __init__(self, start: datetime = DEFAULT_START) -> None:
        self._traveller = time_machine.travel(start, tick=False)
        self._coordinates = self._traveller.start()
        self._now = start.timestamp()

    def now(self) -> float:
        return self._now

    def now_datetime(self) -> datetime:
        return datetime.fromtimestamp(self._now, tz=UTC)

    def move_to(self, timestamp: float) -> None:
        if timestamp < self._now:
            raise ValueError(f"virtual time cannot go back: {timestamp} < {self._now}")
        self._coordinates.move_to(datetime.fromtimestamp(timestamp, tz=UTC))
        self._now = timestamp

    def advance(self, seconds: float) -> None:
        self.move_to(self._now + seconds)

    def close(self) -> None:
        self._traveller.stop()


@dataclass(order=True)
class _Entry:
    due: float
    seq: int
    label: str = field(compare=False)
    callback: Callable[[], object] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)
    done: bool = field(default=False, compare=False)


class ScheduledCall:
    """Handle returned by `Scheduler.at`/`after`; pass it to `Scheduler.cancel`."""

    def __init__(self, entry: _Entry) -> None:
        self._entry = entry

    @property
    def due(self) -> float:
        return self._entry.due

    @property
    def label(self) -> str:
        return self._entry.label

    @property
    def cancelled(self) -> bool:
        return self._entry.cancelled


class Scheduler:
    """Callbacks due at virtual times; ties run in insertion order so a seed replays exactly."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self._heap: list[_Entry] = []
        self._seq = itertools.count()
        self._live = 0

    def at(self, due: float, label: str, fn: Callable[[], object]) -> ScheduledCall:
        # A callback due in the past runs next, at the current time: time never goes back.
        entry = _Entry(max(due, self.clock.now()), next(self._seq), label, fn)
        heapq.heappush(self._heap, entry)
        self._live += 1
        return ScheduledCall(entry)

    def after(self, delay: float, label: str, fn: Callable[[], object]) -> ScheduledCall:
        return self.at(self.clock.now() + max(delay, 0.0), label, fn)

    def cancel(self, handle: ScheduledCall | None) -> bool:
        """Cancel a call that has not run yet; True when it was still pending."""
        if handle is None or handle._entry.cancelled or handle._entry.done:
            return False
        handle._entry.cancelled = True
        self._live -= 1
        return True

    def pending(self) -> int:
        return self._live

    def upcoming(self) -> list[tuple[float, str]]:
        """(due, label) of every pending call, earliest first."""
        return [(e.due, e.label) for e in sorted(self._heap) if not e.cancelled]

    def next_due(self) -> float | None:
        self._drop_cancelled()
        return self._heap[0].due if self._heap else None

    def run_next(self) -> bool:
        """Move the clock to the earliest pending call and run it; False when nothing is pending."""
        self._drop_cancelled()
        if not self._heap:
            return False
        entry = heapq.heappop(self._heap)
        entry.done = True
        self._live -= 1
        if entry.due > self.clock.now():
            self.clock.move_to(entry.due)
        entry.callback()
        return True

    def run_until(self, predicate: Callable[[], bool], limit_seconds: float) -> bool:
        """Run calls until `predicate()` holds or `limit_seconds` of virtual time have passed.

        Returns whether the predicate held. On giving up the clock stands at the limit, whether
        later calls are pending or nothing is.
        """
        deadline = self.clock.now() + limit_seconds
        while not predicate():
            due = self.next_due()
            if due is None or due > deadline:
                self.clock.move_to(deadline)
                return predicate()
            self.run_next()
        return True

    def run_for(self, seconds: float) -> None:
        """Run every call due within `seconds` from now, then stand at now + seconds."""
        self.run_until(lambda: False, seconds)

    def _drop_cancelled(self) -> None:
        while self._heap and self._heap[0].cancelled:
            heapq.heappop(self._heap)
