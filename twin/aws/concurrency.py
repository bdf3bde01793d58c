"""Concurrent Lambda invocations whose interleaving is chosen by a seeded RNG, so races replay exactly.

Each invocation runs in its own thread, but only the thread holding the baton runs. Every AWS call made
through botocore first fires `before-call`; our handler there hands the baton back to the controller,
which picks (with the seeded RNG) which invocation runs next and sets `os.environ` to that invocation's
function environment before letting it go. Conditional writes racing between invocations therefore really
interleave, at the granularity of AWS calls (the only place invocations can observe each other), and the
same seed gives the same interleaving.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.handlers

# Real seconds a running invocation may go without reaching an AWS call or finishing; past that the
# controller reports a deadlock instead of hanging the test run.
HAND_OVER_TIMEOUT_SECONDS = 120.0

_local = threading.local()


@dataclass
class _Task:
    index: int
    call: Callable[[], Any]
    environment: dict[str, str]
    resume: threading.Event = field(default_factory=threading.Event)
    started: bool = False
    done: bool = False
    result: Any = None
    next_operation: str = "start"


class _Baton:
    def __init__(self, tasks: list[_Task]):
        self.tasks = tasks
        self.controller_wake = threading.Event()

    def task_body(self, task: _Task) -> None:
        _local.task = task
        _local.baton = self
        task.resume.wait()
        task.resume.clear()
        try:
            task.result = task.call()
        except BaseException as error:  # the invocation's failure is its result
            task.result = error
        finally:
            task.done = True
            self.controller_wake.set()

    def hand_over(self, task: _Task, operation: str) -> None:
        task.next_operation = operation
        self.controller_wake.set()
        task.resume.wait()
        task.resume.clear()


def _hand_over_at_aws_call(model: Any = None, **_: Any) -> None:
    """botocore before-call handler; returns None so the call itself proceeds unchanged."""
    task = getattr(_local, "task", None)
    baton = getattr(_local, "baton", None)
    if task is None or baton is None:
        return
    operation = f"{model.service_model.service_name}:{model.name}" if model is not None else "unknown"
    baton.hand_over(task, operation)


def install() -> None:
    """Register the hand-over on every botocore session (new ones via BUILTIN_HANDLERS). Idempotent."""
    entry = ("before-call", _hand_over_at_aws_call)
    if entry not in botocore.handlers.BUILTIN_HANDLERS:
        botocore.handlers.BUILTIN_HANDLERS.append(entry)
    default_session = boto3.DEFAULT_SESSION
    if default_session is not None:
        events = default_session._session.get_component("event_emitter")
        events.unregister("before-call", _hand_over_at_aws_call)
        events.register("before-call", _hand_over_at_aws_call)


install()


_sessions_by_access_key: dict[str | None, boto3.Session] = {}


def apply_environment(target: Mapping[str, str]) -> None:
    """Make os.environ equal to `target`, touching only the keys that differ.

    boto3's default session caches the credentials it read first, so the default session is swapped
    too: one per access key, as each Lambda function (its own process on AWS) has its own."""
    for key in [key for key in os.environ if key not in target]:
        del os.environ[key]
    for key, value in target.items():
        if os.environ.get(key) != value:
            os.environ[key] = value
    access_key = target.get("AWS_ACCESS_KEY_ID")
    if access_key not in _sessions_by_access_key:
        _sessions_by_access_key[access_key] = boto3.Session()
    boto3.DEFAULT_SESSION = _sessions_by_access_key[access_key]


def in_invocation() -> bool:
    """True inside a thread that runs under the baton."""
    return getattr(_local, "task", None) is not None


def run_concurrently(
    calls: Sequence[Callable[[], Any]],
    rng: random.Random,
    *,
    environments: Sequence[Mapping[str, str]] | None = None,
    trace: list[tuple[int, str]] | None = None,
) -> list[Any]:
    """Run `calls` as concurrent invocations; returns each one's result or the exception it raised.

    `environments[i]` is laid over the current os.environ while call i runs. `trace`, if given, gets one
    `(call index, operation it resumes with)` per turn, "start" for a first turn.
    """
    if environments is not None and len(environments) != len(calls):
        raise ValueError("one environment per call")
    base_environment = dict(os.environ)
    if in_invocation():
        # Nested (an invocation starting others): run them in turn inside the current thread.
        return [_call_capturing(call) for call in calls]

    tasks = [
        _Task(index, call, {**base_environment, **(environments[index] if environments else {})})
        for index, call in enumerate(calls)
    ]
    baton = _Baton(tasks)
    threads = [
        threading.Thread(target=baton.task_body, args=(task,), name=f"invocation-{task.index}", daemon=True)
        for task in tasks
    ]
    for thread in threads:
        thread.start()
    runnable = list(tasks)
    try:
        while runnable:
            task = runnable[rng.randrange(len(runnable))]
            if trace is not None:
                trace.append((task.index, task.next_operation))
            apply_environment(task.environment)
            baton.controller_wake.clear()
            task.resume.set()
            if not baton.controller_wake.wait(HAND_OVER_TIMEOUT_SECONDS):
                raise RuntimeError(
                    f"invocation {task.index} neither finished nor reached an AWS call within "
                    f"{HAND_OVER_TIMEOUT_SECONDS} s (deadlock?)"
                )
            if task.done:
                runnable.remove(task)
    finally:
        apply_environment(base_environment)
    for thread in threads:
        thread.join()
    return [task.result for task in tasks]


def _call_capturing(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception as error:
        return error
