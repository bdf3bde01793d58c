"""Powertools Logger, Tracer and Metrics, shared by every function (service name from the environment).

With tracing off (POWERTOOLS_TRACE_DISABLED, or outside Lambda: the twin, tests, `sam local`) the
Tracer gets a provider that records nothing, so the X-Ray SDK is never imported: Powertools' own
default imports it even when disabled, and that import alone is about half of a function's cold
start. With tracing on (Lambda, Tracing: Active) the Tracer is Powertools' default, on X-Ray.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.shared import constants
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment


class _NoSegment(BaseSegment):
    def close(self, end_time: int | None = None) -> None:
        pass

    def add_subsegment(self, subsegment: Any) -> None:
        pass

    def remove_subsegment(self, subsegment: Any) -> None:
        pass

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None:
        pass


class NoTracing(BaseProvider):
    """A tracing provider that records nothing, for when tracing is off."""

    @contextlib.contextmanager
    def in_subsegment(self, name: Any = None, **kwargs: Any) -> Iterator[BaseSegment]:
        yield _NoSegment()

    @contextlib.asynccontextmanager
    async def in_subsegment_async(self, name: Any = None, **kwargs: Any) -> Any:
        yield _NoSegment()

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def patch(self, modules: Any) -> None:
        pass

    def patch_all(self) -> None:
        pass


def tracing_enabled(environ: Any = os.environ) -> bool:
    """As Powertools decides: on in Lambda unless POWERTOOLS_TRACE_DISABLED; off elsewhere."""
    if resolve_truthy_env_var_choice(env=environ.get(constants.TRACER_DISABLED_ENV, "false")):
        return False
    in_lambda = bool(environ.get(constants.LAMBDA_TASK_ROOT_ENV))
    emulated = bool(environ.get(constants.SAM_LOCAL_ENV) or environ.get(constants.CHALICE_LOCAL_ENV))
    return in_lambda and not emulated


logger = Logger()  # JSON lines; POWERTOOLS_SERVICE_NAME and POWERTOOLS_LOG_LEVEL come from the template
tracer = Tracer() if tracing_enabled() else Tracer(disabled=True, auto_patch=False, provider=NoTracing())
metrics = Metrics()  # POWERTOOLS_METRICS_NAMESPACE from the template
