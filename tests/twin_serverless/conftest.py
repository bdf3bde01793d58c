"""Fixtures for the twin's serverless side: moto, the virtual clock, the fixture SAM template deployed."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from twin.aws.cfn import Stack, deploy_template, load_template
from twin.aws.eventbus import EventBus, EventBusContext
from twin.aws.functions import FunctionRuntime, FunctionRuntimeContext
from twin.clock import Scheduler, VirtualClock
from twin.latency import LatencyModel
from twin.recorder import Recorder

FIXTURE_TEMPLATE = Path(__file__).parent / "fixtures" / "template.yaml"


# template.yaml now declares the alerts topic's customer managed key and topic policy. Until the twin's
# mini CloudFormation (twin/aws/cfn.py) deploys them itself, the repo-template tests give it the two
# creators, backed by moto (the fixture leaves the twin's own in place once it has them).
STACK_NAME = "fx"


@dataclass
class ServerlessTwin:
    """The parts of twin.world.Twin the serverless components use (no IAM, no nodes)."""

    clock: VirtualClock
    scheduler: Scheduler
    rng: random.Random
    latency: LatencyModel
    recorder: Recorder
    stack: Stack | None = None
    functions: FunctionRuntime | None = None
    bus: EventBus | None = None


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield


@pytest.fixture
def clock() -> Iterator[VirtualClock]:
    virtual = VirtualClock()
    yield virtual
    virtual.close()


def build_twin(
    clock: VirtualClock, seed: int, parameters: dict[str, Any] | None = None, stack_name: str = STACK_NAME
) -> ServerlessTwin:
    rng = random.Random(seed)
    twin = ServerlessTwin(clock, Scheduler(clock), rng, LatencyModel(rng), Recorder(clock.now))
    twin.stack = deploy_template(load_template(FIXTURE_TEMPLATE, parameters or {}), stack_name, rng=rng)
    twin.functions = FunctionRuntime(
        FunctionRuntimeContext(twin.scheduler, rng, twin.recorder, twin.latency), twin.stack
    )
    twin.bus = EventBus(
        EventBusContext(twin.scheduler, rng, twin.recorder, twin.latency, functions=twin.functions),
        twin.stack,
    )
    return twin


@pytest.fixture
def twin(aws: None, clock: VirtualClock) -> ServerlessTwin:
    return build_twin(clock, seed=7, parameters={"ClusterName": "alpha"})
