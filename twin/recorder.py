"""What happened in a twin run: counters, AWS API calls, events, log lines, command traffic, a timeline.

It emulates nothing. The invariant checks read it (`texts()` is everything a secret must never
appear in) and the CLI prints its timeline.

API calls are counted by a botocore `before-call` handler added to botocore's BUILTIN_HANDLERS at
import time (as moto adds its `before-send` stubber), so every session created afterwards carries
it; `install()` also registers it on an already existing boto3 default session. The handler only
counts while the installed recorder has `recording` on, so the twin's own set-up calls (deploy)
stay out of the product's numbers.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.handlers import BUILTIN_HANDLERS


@dataclass(frozen=True)
class TimelineEntry:
    at: float
    kind: str
    text: str


class Recorder:
    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self.recording = False
        # Optional filter: which calls are the product's (the twin counts only Lambda invocations'
        # calls, not the node scripts' own `aws` calls).
        self.counts_call: Callable[[], bool] | None = None
        self.counters: Counter[str] = Counter()
        self.api_calls: Counter[str] = Counter()
        self.events: list[dict[str, Any]] = []
        self.log_lines: list[str] = []
        # (command id, document name, {name: [values]}) as SendCommand received them.
        self.command_parameters: list[tuple[str, str, dict[str, list[str]]]] = []
        # (command id, instance id, stdout, stderr), complete (before AWS's truncation).
        self.command_outputs: list[tuple[str, str, str, str]] = []
        self.timeline: list[TimelineEntry] = []

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Calls made inside are not the product's: the operator's, or what AWS does on its own (a bus
        delivering to its targets, the Lambda service polling a queue)."""
        previous, self.recording = self.recording, False
        try:
            yield
        finally:
            self.recording = previous

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def on_api_call(self, service: str, operation: str, params: dict[str, Any] | None = None) -> None:
        # Only the operation is kept: node-side calls legitimately carry join secrets in their params.
        self.api_calls[f"{service}:{operation}"] += 1

    def record_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def record_log_line(self, line: str) -> None:
        self.log_lines.append(line)

    def record_command(self, command_id: str, document_name: str, parameters: dict[str, list[str]]) -> None:
        self.command_parameters.append((command_id, document_name, parameters))

    def record_command_output(self, command_id: str, instance_id: str, stdout: str, stderr: str) -> None:
        self.command_outputs.append((command_id, instance_id, stdout, stderr))

    def note(self, kind: str, text: str) -> None:
        self.timeline.append(TimelineEntry(self._now(), kind, text))

    def texts(self) -> Iterator[str]:
        """Every recorded string a secret must never appear in."""
        for event in self.events:
            yield from _strings(event)
        yield from self.log_lines
        for command_id, document_name, parameters in self.command_parameters:
            yield command_id
            yield document_name
            yield from _strings(parameters)
        for _command_id, _instance_id, stdout, stderr in self.command_outputs:
            yield stdout
            yield stderr
        for entry in self.timeline:
            yield entry.text


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple | set):
        for item in value:
            yield from _strings(item)
    elif value is not None:
        yield str(value)


_active: Recorder | None = None
_HANDLER_ID = "kcluster-twin-recorder"


def _before_call(model: Any = None, params: Any = None, **_: Any) -> None:
    recorder = _active
    if recorder is None or not recorder.recording or model is None:
        return
    if recorder.counts_call is not None and not recorder.counts_call():
        return
    recorder.on_api_call(model.service_model.service_name, model.name, params)


BUILTIN_HANDLERS.append(("before-call", _before_call))


def install(recorder: Recorder) -> Callable[[], None]:
    """Make `recorder` the one the API-call hook feeds; returns the undo."""
    global _active
    previous = _active
    _active = recorder
    if boto3.DEFAULT_SESSION is not None:
        boto3.DEFAULT_SESSION._session.register("before-call", _before_call, unique_id=_HANDLER_ID)

    def undo() -> None:
        global _active
        _active = previous

    return undo
