"""The reactor's cold start: no client built before it is used, no X-Ray SDK when tracing is off, and
its CPU measured side by side with the floor, each in a fresh interpreter.

Floors, as `make bench` prints them too (twin/bench.py `cold_start_figures`):
- "boto3 floor": boto3, the three clients the reactor calls (DynamoDB, SSM, Auto Scaling) and a
  Powertools Logger: what any such function pays;
- "parser floor": that plus Powertools Parser and Batch, which every handler needs to parse its
  events with Parser models and a BatchProcessor (the project's rule 4).
The reactor's import plus building its three clients must stay within 1.3x of the parser floor.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.integration.conftest import REPO
from twin.bench import cold_start_figures

_ENVIRONMENT_SCRIPT = textwrap.dedent(
    """
    import os, sys
    os.environ.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
                      POWERTOOLS_SERVICE_NAME="kcluster", POWERTOOLS_TRACE_DISABLED="true")
    sys.path[:0] = [{layer!r}, {code!r}]
    import app
    built = [name for name in ("dynamodb", "ssm", "autoscaling", "elbv2", "sns")
             if getattr(app.clients, name)._client is not None]
    print("built:", ",".join(built))
    print("xray:", "aws_xray_sdk.core" in sys.modules)
    """
)


def _run(script: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO
    )
    return completed.stdout


@pytest.mark.parametrize("function", ["reactor", "reconciler", "remediator"])
def test_import_builds_no_client_and_no_tracing_sdk(function: str) -> None:
    output = _run(
        _ENVIRONMENT_SCRIPT.format(
            layer=str(REPO / "layers/kcluster"), code=str(REPO / "functions" / function)
        )
    )
    assert "built: \n" in output
    assert "xray: False" in output


def test_reactor_cold_start_is_within_1_3x_of_its_floor() -> None:
    figures = cold_start_figures(repeats=5)
    assert figures["reactor"] <= 1.3 * figures["parser floor"], figures
