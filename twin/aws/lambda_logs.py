"""Lambda's log pipeline, as far as CloudWatch Logs is concerned: every line a function's invocation
prints becomes one log event in the log group /aws/lambda/<function name>, in a stream of its execution
environment, with the time it was printed.

On AWS the Lambda service writes these (the execution role's logs:CreateLogStream/PutLogEvents); moto has
no Lambda runtime here, so the twin's runtime hands each invocation's lines to this delivery, which writes
them to moto's CloudWatch Logs after the invocation. Readers (the operator's `kcluster events`) then call
FilterLogEvents on them exactly as on AWS.

Not emulated: Lambda's own platform lines (START/END/REPORT), log retention, delivery delay.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

# PutLogEvents takes at most 10,000 events (and 1 MB) per call; invocations print far fewer per batch.
_EVENTS_PER_CALL = 1000


def log_group_name(function_name: str) -> str:
    return f"/aws/lambda/{function_name}"


@dataclass
class LambdaLogDelivery:
    client: Any  # a CloudWatch Logs client with the twin's own credentials
    stream_name: Callable[[], str]  # the execution environment's stream name (Lambda's format)
    internal: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext
    _pending: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    _streams: dict[str, str] = field(default_factory=dict)

    def add(self, function_name: str, at: float, text: str) -> None:
        if text.strip():
            self._pending.setdefault(function_name, []).append((int(at * 1000), text))

    def deliver(self) -> None:
        pending, self._pending = self._pending, {}
        if not pending:
            return
        with self.internal():
            for function_name, lines in pending.items():
                group, stream = self._stream_of(function_name)
                events = [
                    {"timestamp": at, "message": text} for at, text in sorted(lines, key=lambda x: x[0])
                ]
                for start in range(0, len(events), _EVENTS_PER_CALL):
                    self.client.put_log_events(
                        logGroupName=group,
                        logStreamName=stream,
                        logEvents=events[start : start + _EVENTS_PER_CALL],
                    )

    def _stream_of(self, function_name: str) -> tuple[str, str]:
        group = log_group_name(function_name)
        if function_name not in self._streams:
            with contextlib.suppress(ClientError):  # another runtime of the same stack made it
                self.client.create_log_group(logGroupName=group)
            stream = self.stream_name()
            self.client.create_log_stream(logGroupName=group, logStreamName=stream)
            self._streams[function_name] = stream
        return group, self._streams[function_name]
