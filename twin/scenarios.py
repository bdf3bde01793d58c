"""Scenarios the twin can run: what an operator (or the world) does, step by step.

Each scenario drives a Twin and returns it settled; twin.report computes the outcome from the world.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kcluster import contract
from twin.report import QuorumWatch, build_report
from twin.world import Twin

# A scenario fails loudly rather than report on a world that never settled.
SETTLE_LIMIT_SECONDS = 6 * 3600


class ScenarioError(RuntimeError):
    pass


@dataclass
class ScenarioResult:
    twin: Twin
    report: dict


def _settle(twin: Twin, what: str) -> None:
    if not twin.run_until_settled(limit_seconds=SETTLE_LIMIT_SECONDS):
        raise ScenarioError(f"the world did not settle after {what} (seed {twin.seed})")


def scale_out(twin: Twin, control_planes: int, workers: int) -> None:
    """Raise both groups' desired capacity at once and wait for every node to join."""
    twin.set_desired(contract.ROLE_CONTROL_PLANE, control_planes)
    twin.set_desired(contract.ROLE_WORKER, workers)
    _settle(twin, "scale-out")


SCENARIOS: dict[str, Callable[[Twin, int, int], None]] = {
    "scale-out": scale_out,
}


def run(
    name: str,
    *,
    control_planes: int = 3,
    workers: int = 5,
    seed: int = 7,
    prepare: Callable[[Twin], None] | None = None,
) -> ScenarioResult:
    if name not in SCENARIOS:
        raise ScenarioError(f"unknown scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}")
    twin = Twin(seed=seed)
    quorum = QuorumWatch()
    twin.watchers.append(quorum.sample)
    try:
        if prepare is not None:
            prepare(twin)
        SCENARIOS[name](twin, control_planes, workers)
        return ScenarioResult(twin, build_report(twin, quorum, {"scenario": name}))
    except BaseException:
        twin.close()
        raise
