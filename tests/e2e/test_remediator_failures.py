"""A remediation alarm sends its state change once: a remediator that fails on it must not leave the
alarm standing with nobody acting on it."""

from __future__ import annotations

import random

import pytest

from kcluster import contract
from twin import scenarios
from twin.faults import FaultInjector, FaultRates

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


TWIN_SEED = 11


def test_a_worker_is_replaced_although_the_remediator_failed_on_every_attempt(twin):
    scenarios.scale_out(twin, 1, 3)
    # GIVEN the remediator dies on every invocation (its first try and both of Lambda's retries)
    faults = FaultInjector(twin, random.Random(0), FaultRates.none())
    faults.fail_invocations("RemediatorFunction", times=1000)
    worker = next(i["instance_id"] for i in twin.instances() if i["role"] == contract.ROLE_WORKER)
    # WHEN a worker's kubelet stops
    twin.model.stop_kubelet(worker)

    def gone() -> bool:
        return worker not in {i["instance_id"] for i in twin.instances()}

    # THEN the reconciler, reading the alarm in ALARM, has it replaced all the same
    assert twin.scheduler.run_until(gone, 3 * 3600)
    assert twin.run_until_settled()
    # every invocation for the alarm's events failed, and Lambda gave up on them after its retries
    assert faults.counts()["invocation_failed"] >= 3
    assert {logical_id for logical_id, _, _ in twin.functions.async_failures} == {"RemediatorFunction"}
    assert sum(1 for n in twin.model.nodes() if n.ready) == 4
