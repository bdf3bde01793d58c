"""Shared fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from twin.world import Twin


@pytest.fixture
def twin(request: pytest.FixtureRequest) -> Iterator[Twin]:
    """A fresh Twin, seeded with the module's TWIN_SEED (7 without one); closed after the test. A module
    that defines its own `twin` fixture keeps it."""
    world = Twin(seed=getattr(request.module, "TWIN_SEED", 7))
    yield world
    world.close()
