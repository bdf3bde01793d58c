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


def scale_in(twin: Twin, control_planes: int, workers: int) -> None:
    """Scale out, then at once: workers down to 2 and one control plane terminated by hand (the ASG
    replaces it). Every leaving node is drained and removed before EC2 takes it."""
    scale_out(twin, control_planes, workers)
    twin.set_desired(contract.ROLE_WORKER, min(2, workers))
    control_planes_now = [
        i["instance_id"] for i in twin.instances() if i["role"] == contract.ROLE_CONTROL_PLANE
    ]
    # Not the first (the init owner): any control plane may go, and the others must carry on.
    twin.terminate(control_planes_now[len(control_planes_now) // 2], decrement=False)
    _settle(twin, "scale-in")


SCENARIOS: dict[str, Callable[[Twin, int, int], None]] = {
    "scale-out": scale_out,
    "scale-in": scale_in,
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


from twin import chaos  # noqa: E402, F401 - registers the "chaos" scenario (twin/chaos.py)
