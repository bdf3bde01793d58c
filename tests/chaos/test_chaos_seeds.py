"""The chaos scenario over many seeds: after faults stop, every invariant holds (DESIGN.md section 6).

The seeds are `range(1, KCLUSTER_CHAOS_SEEDS + 1)` (default 50), each its own test id, so a failure
names the seed to replay: `kcluster simulate --scenario chaos --seed S --control-planes 2 --workers 2`.
The selected seeds run once, `KCLUSTER_CHAOS_PROCESSES` at a time (default: one per CPU), in separate
processes (moto's state is per process); each test then judges its own seed's report.
"""

from __future__ import annotations

import os

import pytest

from twin import chaos

pytestmark = pytest.mark.chaos

SEEDS = range(1, int(os.environ.get("KCLUSTER_CHAOS_SEEDS", "50")) + 1)
PROCESSES = int(os.environ.get("KCLUSTER_CHAOS_PROCESSES", str(os.cpu_count() or 1)))
# Every invariant a chaos report must carry, the two chaos-specific ones included.
EXPECTED_INVARIANTS = {
    "single_init",
    "all_inservice_ready",
    "one_control_plane_op_at_a_time",
    "no_secret_leaked",
    "no_orphan_nodes",
    "no_orphan_etcd_members",
    "quorum_never_lost",
    "no_lifecycle_timeout",
    "converged",
    "no_duplicate_effect",
    "no_access_denied",
    "version_skew_ok",
    "backups_fresh",
    "all_at_target",
    "min_healthy_respected",
}


@pytest.fixture(scope="module")
def outcomes(request) -> dict[int, chaos.SeedOutcome]:
    """Run just the seeds this session selected, in parallel, once."""
    selected = sorted(
        {
            item.callspec.params["seed"]
            for item in request.session.items
            if item.module is request.module and hasattr(item, "callspec")
        }
    )
    summary = chaos.run_many(selected, processes=min(PROCESSES, len(selected)))
    print(
        f"\nchaos: {len(selected)} seeds in {summary.wall_seconds:.0f} s wall clock, faults {summary.faults}"
    )
    return {outcome.seed: outcome for outcome in summary.outcomes}


@pytest.mark.parametrize("seed", SEEDS)
def test_every_invariant_holds_after_chaos(outcomes, seed):
    outcome = outcomes[seed]
    replay = (
        f"replay: kcluster simulate --scenario chaos --seed {seed} "
        f"--control-planes {chaos.CHAOS_CONTROL_PLANES} --workers {chaos.CHAOS_WORKERS}"
    )
    assert outcome.violations == {}, replay
    assert set(outcome.checked) == EXPECTED_INVARIANTS
    assert sum(outcome.faults.values()) > 0  # the run was not a calm one
