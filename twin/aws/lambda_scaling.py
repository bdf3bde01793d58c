"""Lambda's concurrency rules, as the twin's function runtime (twin/aws/functions.py) applies them.

SQS event source mappings (AWS Lambda Developer Guide, "Configuring scaling behavior for SQS event source
mappings", standard queues): when messages are available Lambda processes five batches at a time; while
messages remain it adds up to 300 more concurrent batches a minute, to at most 1,000 per mapping; when
the queue is drained it scales back to five. The mapping's ScalingConfig.MaximumConcurrency (2-1000)
bounds the concurrent batches, and so does the function's reserved concurrency. `SqsPollerScaling` is
that rule: how many batches one poll hands to the function now.

Invocation time and reserved concurrency: the twin's virtual clock stands still while a handler runs,
so by itself an invocation takes no time and nothing ever overlaps. `ExecutionSlots` gives invocations
a duration (`hold(function, seconds)`: what a test or the latency model says one takes) during which
they occupy an execution environment. An asynchronous invocation (a schedule tick, an alarm event) that
arrives while the function's reserved concurrency is all occupied is throttled: Lambda keeps the event
and tries again later, until the event is older than MaximumEventAgeInSeconds, then gives up on it as
on a failure. Without reserved concurrency, an invocation that starts while another of the same
function still runs overlaps it: each overlap is recorded (`overlaps`).

Simplified: throttled events are retried every `THROTTLE_RETRY_SECONDS` (AWS backs off from one second
to five minutes); the account's unreserved concurrency is unlimited.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

INITIAL_SQS_BATCHES = 5
SQS_BATCHES_ADDED_PER_MINUTE = 300
MAX_SQS_BATCHES = 1000
THROTTLE_RETRY_SECONDS = 30.0


@dataclass
class SqsPollerScaling:
    """Concurrent batches per SQS mapping, scaled up with a lasting backlog."""

    # mapping uuid -> virtual time since when it has found messages at every poll
    backlog_since: dict[str, float] = field(default_factory=dict)

    def batches(
        self,
        mapping_uuid: str,
        now: float,
        *,
        backlog: bool,
        maximum_concurrency: int | None,
        reserved_concurrency: int | None,
    ) -> int:
        """How many batches this poll may hand over (`backlog`: the queue holds visible messages)."""
        if not backlog:
            self.backlog_since.pop(mapping_uuid, None)
            return (
                INITIAL_SQS_BATCHES
                if maximum_concurrency is None
                else min(INITIAL_SQS_BATCHES, maximum_concurrency)
            )
        since = self.backlog_since.setdefault(mapping_uuid, now)
        minutes = math.floor((now - since) / 60.0)
        batches = min(MAX_SQS_BATCHES, INITIAL_SQS_BATCHES + SQS_BATCHES_ADDED_PER_MINUTE * minutes)
        for bound in (maximum_concurrency, reserved_concurrency):
            if bound is not None:
                batches = min(batches, bound)
        return batches


@dataclass(frozen=True)
class Overlap:
    at: float
    function: str
    running: int  # invocations of the function running when this one started (itself excluded)


@dataclass
class ExecutionSlots:
    """Which invocations occupy an execution environment, and until when (virtual time)."""

    durations: dict[str, float] = field(default_factory=dict)
    running: dict[str, list[float]] = field(default_factory=dict)  # function -> end times
    overlaps: list[Overlap] = field(default_factory=list)
    throttles: list[tuple[float, str]] = field(default_factory=list)

    def hold(self, function: str, seconds: float) -> None:
        """Each invocation of `function` occupies its environment this long from its start."""
        self.durations[function] = seconds

    def busy(self, function: str, now: float) -> int:
        ends = [end for end in self.running.get(function, []) if end > now]
        self.running[function] = ends
        return len(ends)

    def admit(self, function: str, now: float, reserved: int | None) -> bool:
        """Start an invocation now, or refuse it (throttled: reserved concurrency all occupied)."""
        busy = self.busy(function, now)
        if reserved is not None and busy >= reserved:
            self.throttles.append((now, function))
            return False
        if busy:
            self.overlaps.append(Overlap(now, function, busy))
        duration = self.durations.get(function, 0.0)
        if duration > 0:
            self.running[function].append(now + duration)
        return True
