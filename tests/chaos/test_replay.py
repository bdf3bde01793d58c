"""A chaos seed replays exactly: same faults at the same moments, same world, same report."""

from __future__ import annotations

import pytest

from twin import chaos, scenarios

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

SEED = 11


def run(seed: int) -> tuple[dict, list]:
    result = scenarios.run("chaos", control_planes=2, workers=2, seed=seed)
    try:
        report = chaos.with_faults(result.report, result.twin)
        return report, list(result.twin.chaos_injector.log)
    finally:
        result.twin.close()  # one twin at a time: moto's state is the process's


def test_a_chaos_seed_replays_identically_and_another_seed_differs():
    (first, first_log), (again, again_log) = run(SEED), run(SEED)
    assert sum(first["faults"].values()) > 0
    assert again_log == first_log
    assert again == first
    other, other_log = run(SEED + 1)
    assert other["seed"] == SEED + 1 and other_log != first_log
