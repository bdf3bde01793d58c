"""End to end on the twin: half the workers NotReady at once is not the nodes' fault; nothing is replaced
and people are told why (Cluster API's MachineHealthCheck short-circuit)."""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_remediation import failed_invariants, people_were_told, replaced_by_health
from twin import scenarios

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def test_half_the_workers_notready_at_once_replaces_nothing_and_tells_people_why():
    result = scenarios.run("mass-failure", control_planes=3, workers=5, seed=7)
    try:
        twin, report = result.twin, result.report
        assert failed_invariants(report) == {}
        assert report["counters"]["remediations"] == 0
        assert replaced_by_health(twin) == []
        assert report["counters"]["remediations_suppressed"] > 0
        (message,) = people_were_told(twin)
        assert "short-circuit" in message or "nothing is replaced" in message
        assert "60% of the worker nodes" in json.dumps(message)
        assert report["counters"]["notifications"] == 1
    finally:
        result.twin.close()
