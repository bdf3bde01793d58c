"""The typed wiring of the twin's components (twin/ports.py, the context of each component)."""

from __future__ import annotations

import dataclasses

import pytest

from twin.aws.alarms import AlarmContext
from twin.aws.eventbus import EventBusContext
from twin.aws.functions import FunctionRuntimeContext
from twin.aws.lifecycle import AutoScalingContext
from twin.aws.runcommand import RunCommandContext
from twin.aws.targets import TargetHealthContext
from twin.node.boot import BootContext
from twin.ports import Late


def test_a_late_peer_is_used_only_once_connected_and_connected_once():
    bus = Late[object]("the event bus")
    with pytest.raises(RuntimeError, match="the event bus is used before the twin connected it"):
        bus.get()
    peer = object()
    bus.connect(peer)
    assert bus.get() is peer
    with pytest.raises(RuntimeError, match="connected already"):
        bus.connect(object())


@pytest.mark.parametrize(
    "context",
    [
        AutoScalingContext,
        BootContext,
        RunCommandContext,
        FunctionRuntimeContext,
        EventBusContext,
        TargetHealthContext,
        AlarmContext,
    ],
)
def test_every_context_is_a_frozen_dataclass_that_names_each_dependency(context):
    params = context.__dataclass_params__
    assert dataclasses.is_dataclass(context) and params.frozen
    assert "twin" not in {f.name for f in dataclasses.fields(context)}
