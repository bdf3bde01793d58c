"""The `chaos` scenario: an operator's random mix of changes under every fault AWS can throw, then calm.

Active phase: the cluster is scaled out, then a few random operations follow at random intervals
(scale-out, scale-in, replacement = TerminateInstanceInAutoScalingGroup keeping the size, hand
termination = the same, shrinking the group), all under a `FaultInjector` (twin/faults.py). Then
faults stop and the world must settle by itself within `SETTLE_LIMIT_SECONDS`; the report's
invariants say whether it did (`converged`) and whether everything else held.

`run_many(seeds)` runs the scenario once per seed and sums up faults and violations.
"""

from __future__ import annotations

import logging
import multiprocessing
import random
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kcluster import contract
from twin import scenarios
from twin.faults import FAULT_KINDS, FaultInjector, FaultRates, fault_counts
from twin.world import Twin

CHAOS_CONTROL_PLANES = 2
CHAOS_WORKERS = 2
# Operations after the initial scale-out, and the virtual seconds between two of them.
OPERATIONS = (1, 3)
OPERATION_GAP_SECONDS = (60.0, 300.0)
# Group sizes the operations keep to.
MAX_CONTROL_PLANES = 3
MAX_WORKERS = 4
# After faults stop: lifecycle hooks time out after 900 s, so a loop that heals at all heals well
# within this.
SETTLE_LIMIT_SECONDS = 2 * 3600
OPERATION_KINDS = ("scale-out", "scale-in", "replace", "hand-terminate")


def chaos(twin: Twin, control_planes: int, workers: int, rates: FaultRates | None = None) -> None:
    """The scenario (SCENARIOS signature); never raises for a world that does not settle."""
    plan = random.Random(f"kcluster-chaos/{twin.seed}")
    injector = FaultInjector(twin, random.Random(plan.random()), rates)
    twin.chaos_injector = injector
    twin.set_desired(contract.ROLE_CONTROL_PLANE, control_planes)
    twin.set_desired(contract.ROLE_WORKER, workers)
    for _ in range(plan.randint(*OPERATIONS)):
        run_for(twin, plan.uniform(*OPERATION_GAP_SECONDS))
        _operate(twin, plan)
    run_for(twin, plan.uniform(*OPERATION_GAP_SECONDS))
    injector.stop()
    twin.run_until_settled(limit_seconds=SETTLE_LIMIT_SECONDS)


def run_for(twin: Twin, seconds: float) -> None:
    """Run the world for `seconds` of virtual time, the watchers sampling after every step."""
    until = twin.clock.now() + seconds
    while True:
        due = twin.scheduler.next_due()
        if due is None or due > until:
            break
        twin.scheduler.run_next()
        for watch in twin.watchers:
            watch(twin)
    if until > twin.clock.now():
        twin.clock.move_to(until)


def _operate(twin: Twin, plan: random.Random) -> None:
    kind = plan.choice(OPERATION_KINDS)
    role = plan.choice(contract.ROLES)
    desired = _desired(twin, role)
    live = [
        i["instance_id"]
        for i in twin.instances()
        if i["role"] == role and i["lifecycle_state"] in ("Pending:Wait", "InService")
    ]
    ceiling = MAX_CONTROL_PLANES if role == contract.ROLE_CONTROL_PLANE else MAX_WORKERS
    if kind == "scale-out" and desired < ceiling:
        twin.set_desired(role, desired + 1)
    elif kind == "scale-in" and desired > 1:
        twin.set_desired(role, desired - 1)
    elif kind == "replace" and live:
        twin.terminate(plan.choice(sorted(live)), decrement=False)
    elif kind == "hand-terminate" and live and desired > 1:
        twin.terminate(plan.choice(sorted(live)), decrement=True)
    else:
        twin.recorder.note("operator", f"chaos: nothing to do for {kind} of a {role} (size {desired})")


def _desired(twin: Twin, role: str) -> int:
    name = twin.control_plane_asg if role == contract.ROLE_CONTROL_PLANE else twin.worker_asg
    return next(g.desired_capacity or 0 for g in twin.groups() if g.name == name)


# ---- many seeds -------------------------------------------------------------------------------


@dataclass
class SeedOutcome:
    seed: int
    faults: dict[str, int]
    violations: dict[str, str]
    virtual_seconds: float
    wall_seconds: float
    # The invariants the run's report checked (none when the run raised).
    checked: list[str] = field(default_factory=list)


@dataclass
class ChaosSummary:
    control_planes: int
    workers: int
    outcomes: list[SeedOutcome] = field(default_factory=list)
    # The invariants the reports checked, in report order.
    checked: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def seeds(self) -> list[int]:
        return [o.seed for o in self.outcomes]

    @property
    def faults(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for outcome in self.outcomes:
            total.update(outcome.faults)
        return {kind: total[kind] for kind in FAULT_KINDS}

    @property
    def violations(self) -> dict[str, list[int]]:
        """Invariant name -> the seeds that broke it."""
        found: dict[str, list[int]] = {}
        for outcome in self.outcomes:
            for name in outcome.violations:
                found.setdefault(name, []).append(outcome.seed)
        return found

    @property
    def failed_seeds(self) -> list[int]:
        return [o.seed for o in self.outcomes if o.violations]

    def as_dict(self) -> dict[str, Any]:
        return {
            "seeds_run": len(self.outcomes),
            "control_planes": self.control_planes,
            "workers": self.workers,
            "faults": self.faults,
            "invariants_checked": self.checked,
            "violations": self.violations,
            "failed_seeds": self.failed_seeds,
            "wall_seconds": round(self.wall_seconds, 1),
            "outcomes": [vars(o) for o in self.outcomes],
        }


def run_seed(
    seed: int, *, control_planes: int = CHAOS_CONTROL_PLANES, workers: int = CHAOS_WORKERS
) -> dict[str, Any]:
    """One chaos run; its report (with "faults"), the twin closed."""
    result = scenarios.run("chaos", control_planes=control_planes, workers=workers, seed=seed)
    try:
        return with_faults(result.report, result.twin)
    finally:
        result.twin.close()


def with_faults(report: dict[str, Any], twin: Twin) -> dict[str, Any]:
    report["faults"] = fault_counts(twin)
    return report


def seed_outcome(
    seed: int, control_planes: int = CHAOS_CONTROL_PLANES, workers: int = CHAOS_WORKERS
) -> SeedOutcome:
    """One chaos run summed up; a run that raised is a finding too (invariant `run`), with its seed."""
    _quiet_warnings()
    started = time.perf_counter()
    try:
        report = run_seed(seed, control_planes=control_planes, workers=workers)
    except Exception as error:
        return SeedOutcome(
            seed,
            dict.fromkeys(FAULT_KINDS, 0),
            {"run": f"{type(error).__name__}: {error}"},
            0.0,
            time.perf_counter() - started,
        )
    return SeedOutcome(
        seed,
        report["faults"],
        {name: inv["detail"] for name, inv in report["invariants"].items() if not inv["ok"]},
        report["virtual_seconds"],
        time.perf_counter() - started,
        list(report["invariants"]),
    )


def run_many(
    seeds: list[int] | range,
    *,
    control_planes: int = CHAOS_CONTROL_PLANES,
    workers: int = CHAOS_WORKERS,
    processes: int = 1,
    progress: Callable[[SeedOutcome], None] | None = None,
) -> ChaosSummary:
    """Run the chaos scenario for every seed, `processes` at a time (moto's state is per process, so
    parallel runs need processes, not threads); outcomes in seed order."""
    summary = ChaosSummary(control_planes, workers)
    started = time.perf_counter()
    if processes <= 1:
        outcomes: Iterable[SeedOutcome] = (seed_outcome(s, control_planes, workers) for s in seeds)
        _collect(summary, outcomes, progress)
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
            seeds = list(seeds)
            outcomes = pool.map(seed_outcome, seeds, [control_planes] * len(seeds), [workers] * len(seeds))
            _collect(summary, outcomes, progress)
    summary.wall_seconds = time.perf_counter() - started
    return summary


def _collect(
    summary: ChaosSummary,
    outcomes: Iterable[SeedOutcome],
    progress: Callable[[SeedOutcome], None] | None,
) -> None:
    for outcome in outcomes:
        summary.outcomes.append(outcome)
        summary.checked += [name for name in outcome.checked if name not in summary.checked]
        if progress is not None:
            progress(outcome)


def _quiet_warnings() -> None:
    # Powertools warns on every invocation that adds no metric; the SAM translator's metrics object
    # complains on garbage collection that the twin never published its (translation) metrics.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    logging.getLogger("samtranslator.metrics.metrics").setLevel(logging.ERROR)


scenarios.SCENARIOS["chaos"] = chaos
