from __future__ import annotations

import pytest

from twin import scenarios


@pytest.fixture(scope="session")
def settled():
    """One settled scale-out (a control plane, two workers) that the operator's commands and the page read.
    A test that changes it lets it settle again before it ends."""
    result = scenarios.run("scale-out", control_planes=1, workers=2, seed=3)
    yield result
    result.twin.close()
