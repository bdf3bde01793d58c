"""A scale-out the size at which live Nodes used to be deleted (issue 18): 3 control planes + 400 workers.

At this size refresh-join's stray cleanup (before every control-plane join) looked up each Node's
instance in a live list of 400 lines; a `producer | grep -q` pipeline under pipefail took live
instances for gone and deleted their Nodes, so `all_inservice_ready` failed. The run goes through
the bench's own measurement (twin/bench.py), so its figures are checked too: every invariant, a
convergence no earlier than the critical path allows, and the product's per-event costs recorded.
"""

from __future__ import annotations

import pytest

from twin import bench

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

WORKERS = 400


def test_a_scale_out_of_hundreds_of_workers_keeps_every_invariant() -> None:
    figures = bench.run_one("scale-out", WORKERS)

    assert figures["violations"] == {}
    # No controller beats the critical path (boot, provisioning, init, the serial control-plane joins).
    assert figures["critical_path_seconds"] is not None
    assert figures["virtual_seconds"] >= figures["critical_path_seconds"]
    # Every node completed its launch action once: one CompleteLifecycleAction per node.
    assert figures["api_calls_per_node"]["autoscaling:CompleteLifecycleAction"] == pytest.approx(1.0)
    # Every invocation's costs were measured.
    assert figures["dynamodb_bytes_per_event"]["max"] > 0
    assert figures["function_cpu_ms_per_event"]["max"] > 0
