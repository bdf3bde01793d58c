"""The Lambda runtime of the twin: the template's functions run in-process from their Handler strings.

What it emulates, per function of the deployed stack (`twin.aws.cfn.Stack`):
- cold start: the handler module is imported once, under a unique module name, with the layers' content
  folders on sys.path (Lambda's /opt/python) and the function's environment in os.environ;
- the environment: the template's variables (Globals merged by the SAM translator, intrinsics resolved)
  plus what Lambda sets (AWS_LAMBDA_FUNCTION_NAME, AWS_REGION, ...). POWERTOOLS_TRACE_DISABLED=true
  because there is no X-Ray daemon here;
- the context object (`LambdaContext`);
- synchronous and asynchronous invocation; async retries as AWS does them (EventInvokeConfig
  MaximumRetryAttempts, default 2; about 1 min before the first retry, 2 min before the second);
- SQS event source mappings: a poller every second of virtual time while a mapped queue holds messages,
  batches of up to BatchSize (batching window honoured), as many batches per poll as Lambda's scaling
  allows (`twin.aws.lambda_scaling`: five, 300 more a minute while a backlog lasts, bounded by the
  mapping's MaximumConcurrency and the function's reserved concurrency) run concurrently under
  the seeded baton (`twin.aws.concurrency`), messages deleted on success, only the reported failures kept
  with ReportBatchItemFailures, nothing deleted when the handler raises; moto itself moves a message to
  the dead-letter queue on the receive after maxReceiveCount;
- CloudWatch Logs: every line an invocation prints (Powertools Logger and Metrics write JSON lines to
  stdout) is captured through a process-wide stdout tee into the recorder; EMF documents are also kept
  apart and published to CloudWatch (moto) as metric data, as the Lambda log pipeline would; and every
  line becomes a log event in /aws/lambda/<function name> (twin/aws/lambda_logs.py).

- reserved concurrency for asynchronous invocations: an invocation occupies its environment for the
  time `slots.hold` gives the function (none by default: virtual time stands still while it runs); one
  arriving while the reserved concurrency is all occupied is throttled and tried again until its event
  is too old, one arriving without such a bound overlaps the running one (`slots.overlaps`).

Not emulated: function timeouts, memory, the handler's own process isolation (sibling modules of
different functions share sys.modules by plain name).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import itertools
import json
import logging
import os
import random
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import boto3
from moto.sqs.models import sqs_backends

from twin.aws import concurrency
from twin.aws.cfn import EventSourceMappingSpec, FunctionSpec, Stack
from twin.aws.lambda_logs import LambdaLogDelivery
from twin.aws.lambda_scaling import THROTTLE_RETRY_SECONDS, ExecutionSlots, SqsPollerScaling

if TYPE_CHECKING:
    from twin.clock import Scheduler
    from twin.latency import LatencyModel
    from twin.ports import FunctionRoleAuthorizer
    from twin.recorder import Recorder

SQS_POLL_INTERVAL_SECONDS = 1.0
# Async invocation retries: Lambda waits about a minute, then about two, between attempts.
ASYNC_RETRY_DELAYS_SECONDS = (60.0, 120.0)
_SQS_RECEIVE_LIMIT = 10


@dataclass
class LambdaContext:
    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline_epoch_seconds: float

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline_epoch_seconds - time.time()) * 1000))


@dataclass
class InvocationRecord:
    function: str
    request_id: str
    kind: str  # "sync" | "async" | "sqs"
    started_at: float
    ok: bool = False
    error: str | None = None
    # CPU time of the invocation's thread, AWS calls included (twin/costs.py tells them apart).
    cpu_seconds: float = 0.0
    # Events the invocation handled: an SQS batch's records, else one.
    events: int = 1


@dataclass
class LogLine:
    at: float
    function: str
    request_id: str
    text: str


# ------------------------------------------------------------------------------------- stdout capture


@dataclass
class _InvocationScope:
    runtime: FunctionRuntime
    function: str
    request_id: str
    partial: str = ""


_scope = threading.local()


def current_invocation() -> tuple[str, str] | None:
    """(function logical id, request id) of the invocation the calling thread runs, if any."""
    scope: _InvocationScope | None = getattr(_scope, "current", None)
    return None if scope is None or scope.request_id == "init" else (scope.function, scope.request_id)


class _StdoutTee(io.TextIOBase):
    """Process-wide sys.stdout: lines written inside an invocation go to that invocation's runtime;
    anything else passes through to the stdout that was there before.

    Installed once and never removed, because Powertools loggers keep the stream they found at import.
    """

    def __init__(self, passthrough: Any):
        super().__init__()
        self.passthrough = passthrough

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        scope: _InvocationScope | None = getattr(_scope, "current", None)
        if scope is None:
            with contextlib.suppress(ValueError):  # a test framework's capture stream may be closed
                self.passthrough.write(text)
            return len(text)
        scope.partial += text
        *lines, scope.partial = scope.partial.split("\n")
        for line in lines:
            scope.runtime._capture_line(scope.function, scope.request_id, line)
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(ValueError):
            self.passthrough.flush()


_tee_lock = threading.Lock()
_tee: _StdoutTee | None = None


def _ensure_stdout_tee() -> None:
    global _tee
    with _tee_lock:
        if _tee is None:
            _tee = _StdoutTee(sys.stdout)
        if sys.stdout is not _tee:
            # Someone (a test framework) swapped stdout since: keep theirs as the passthrough.
            _tee.passthrough = sys.stdout
            sys.stdout = _tee


def _route_service_logger_to_tee(service: str | None) -> None:
    """Powertools configures the stdlib logger named after the service once per process, on the stream
    stdout was then, and every later Logger() of that service reuses it. In Lambda each function's
    process starts with its own stdout; here the process may have configured it earlier (another test
    importing a handler under a capturing test framework), so point its stream handlers at the tee."""
    if not service or _tee is None:
        return
    for handler in logging.getLogger(service).handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream not in (sys.stderr, sys.__stderr__):
            handler.setStream(_tee)


@contextlib.contextmanager
def _invocation_scope(runtime: FunctionRuntime, function: str, request_id: str) -> Iterator[None]:
    previous = getattr(_scope, "current", None)
    scope = _InvocationScope(runtime, function, request_id)
    _scope.current = scope
    try:
        yield
    finally:
        _scope.current = previous
        if scope.partial:
            runtime._capture_line(function, request_id, scope.partial)


# ------------------------------------------------------------------------------------- the runtime


@dataclass(frozen=True)
class FunctionRuntimeContext:
    """What the Lambda runtime uses. Without a latency model the SQS pollers poll every second; without
    IAM a function runs with the twin's own credentials and the Lambda service may do anything."""

    scheduler: Scheduler  # async retries, SQS polls
    rng: random.Random  # request ids, which concurrent invocation runs next
    recorder: Recorder | None = None  # log lines; the product's API calls are counted inside invocations
    latency: LatencyModel | None = None  # SQS poll interval
    iam: FunctionRoleAuthorizer | None = None  # each function's execution role


class FunctionRuntime:
    """Runs the stack's functions."""

    _instances = itertools.count()

    def __init__(self, context: FunctionRuntimeContext, stack: Stack, *, publish_emf_metrics: bool = True):
        self.context = context
        self.stack = stack
        self.functions: dict[str, FunctionSpec] = dict(stack.functions)
        self.publish_emf_metrics = publish_emf_metrics
        self.logs: list[LogLine] = []
        self.metrics: list[dict[str, Any]] = []
        self.invocations: list[InvocationRecord] = []
        # (logical id, event, error text) of async invocations that exhausted their retries
        self.async_failures: list[tuple[str, dict[str, Any], str]] = []
        self._modules: dict[str, ModuleType] = {}
        self._runtime_id = next(self._instances)
        self._poll_handle: Any = None
        self._batching_started: dict[str, float] = {}
        self._pending_emf: list[dict[str, Any]] = []
        # Lambda's concurrency rules: SQS batches per poll, reserved concurrency of async invocations.
        self.scaling = SqsPollerScaling()
        self.slots = ExecutionSlots()
        self._sqs = boto3.client("sqs", region_name=stack.region)
        self._cloudwatch = boto3.client("cloudwatch", region_name=stack.region)
        self.log_delivery = LambdaLogDelivery(
            boto3.client("logs", region_name=stack.region), self._log_stream_name, self._twin_internal
        )
        _ensure_stdout_tee()

    # ----- environment and cold start

    def environment(self, logical_id: str) -> dict[str, str]:
        spec = self.functions[logical_id]
        return {
            **spec.environment,
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": self._log_stream_name(),
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "AWS_REGION": self.stack.region,
            "AWS_DEFAULT_REGION": self.stack.region,
            "LAMBDA_TASK_ROOT": str(spec.code_path),
            # No X-Ray daemon in the twin: Powertools Tracer must not try to reach one.
            "POWERTOOLS_TRACE_DISABLED": "true",
            # Lambda puts the execution role's session credentials into the environment.
            **self._role_credentials(spec),
        }

    def _role_credentials(self, spec: FunctionSpec) -> dict[str, str]:
        iam = self.context.iam
        if iam is None:
            return {}
        return {
            "AWS_ACCESS_KEY_ID": iam.function_access_key(spec.logical_id),
            "AWS_SECRET_ACCESS_KEY": "twin-execution-role",
            "AWS_SESSION_TOKEN": "twin-execution-role",
        }

    def _log_stream_name(self) -> str:
        return time.strftime("%Y/%m/%d/[$LATEST]", time.gmtime()) + f"twin{self._runtime_id:04d}"

    def handler(self, logical_id: str) -> Callable[[Any, Any], Any]:
        """The function's handler, importing its module on first use (the cold start)."""
        spec = self.functions[logical_id]
        module_path, _, attribute = spec.handler.rpartition(".")
        if logical_id not in self._modules:
            self._modules[logical_id] = self._cold_start(spec, module_path)
        return getattr(self._modules[logical_id], attribute)

    def _cold_start(self, spec: FunctionSpec, module_path: str) -> ModuleType:
        _ensure_stdout_tee()
        for layer_path in spec.layer_paths:
            if str(layer_path) not in sys.path:
                sys.path.append(str(layer_path))
        relative = Path(*module_path.split("."))
        source = spec.code_path / relative.with_suffix(".py")
        if not source.exists():
            source = spec.code_path / relative / "__init__.py"
        if not source.exists():
            raise FileNotFoundError(
                f"{spec.logical_id}: handler module {module_path} not in {spec.code_path}"
            )
        name = f"_twin_lambda_{self._runtime_id}_{spec.logical_id}_{module_path.replace('.', '_')}"
        module_spec = importlib.util.spec_from_file_location(name, source)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        base_environment = dict(os.environ)
        # The code folder comes first on sys.path while the module initialises, as /var/task does.
        sys.path.insert(0, str(spec.code_path))
        concurrency.apply_environment({**base_environment, **self.environment(spec.logical_id)})
        try:
            with _invocation_scope(self, spec.logical_id, "init"):
                sys.modules[name] = module
                module_spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        finally:
            sys.path.remove(str(spec.code_path))
            concurrency.apply_environment(base_environment)
        _route_service_logger_to_tee(self.environment(spec.logical_id).get("POWERTOOLS_SERVICE_NAME"))
        return module

    # ----- invocation

    def _new_request_id(self) -> str:
        return str(uuid.UUID(int=self.context.rng.getrandbits(128), version=4))

    def _context(self, logical_id: str, request_id: str) -> LambdaContext:
        spec = self.functions[logical_id]
        return LambdaContext(
            function_name=spec.name,
            function_version="$LATEST",
            invoked_function_arn=spec.arn,
            memory_limit_in_mb=spec.memory_mb,
            aws_request_id=request_id,
            log_group_name=f"/aws/lambda/{spec.name}",
            log_stream_name=self._log_stream_name(),
            deadline_epoch_seconds=time.time() + spec.timeout_seconds,
        )

    def _prepared_call(self, logical_id: str, event: Any, kind: str) -> Callable[[], Any]:
        """A zero-argument call running one invocation (in whatever thread calls it)."""
        handler = self.handler(logical_id)
        request_id = self._new_request_id()
        record = InvocationRecord(logical_id, request_id, kind, time.time())
        if kind == "sqs" and isinstance(event, dict):
            record.events = len(event.get("Records") or []) or 1
        self.invocations.append(record)
        context = self._context(logical_id, request_id)

        def call() -> Any:
            _ensure_stdout_tee()
            with _invocation_scope(self, logical_id, request_id):
                started = time.thread_time()
                try:
                    result = handler(event, context)
                except Exception as error:
                    record.error = f"{type(error).__name__}: {error}"
                    # What the Lambda runtime logs for an unhandled error.
                    print(
                        json.dumps(
                            {
                                "errorMessage": str(error),
                                "errorType": type(error).__name__,
                                "requestId": request_id,
                                "stackTrace": traceback.format_tb(error.__traceback__),
                            }
                        )
                    )
                    raise
                finally:
                    record.cpu_seconds = time.thread_time() - started
            record.ok = True
            return result

        return call

    def invoke(self, logical_id: str, event: Any) -> Any:
        """Synchronous invoke (RequestResponse): the handler's result, or its exception raised."""
        return self._run_alone(logical_id, event, "sync")

    def invoke_many(self, calls: list[tuple[str, Any]], kind: str = "sync") -> list[Any]:
        """Invocations running concurrently under the seeded baton: each result or exception."""
        prepared = [self._prepared_call(logical_id, event, kind) for logical_id, event in calls]
        environments = [self.environment(logical_id) for logical_id, _ in calls]
        results = concurrency.run_concurrently(prepared, self.context.rng, environments=environments)
        self._publish_pending_emf()
        return results

    def _run_alone(self, logical_id: str, event: Any, kind: str) -> Any:
        # Even alone, an invocation runs under the baton, so the twin can tell the product's AWS calls
        # (made inside an invocation) from its own.
        call = self._prepared_call(logical_id, event, kind)
        (result,) = concurrency.run_concurrently(
            [call], self.context.rng, environments=[self.environment(logical_id)]
        )
        self._publish_pending_emf()
        if isinstance(result, BaseException):
            raise result
        return result

    def invoke_async(self, logical_id: str, event: Any, *, delay_seconds: float = 0.0) -> None:
        """Asynchronous invoke (Event): queued, retried per the function's EventInvokeConfig."""
        spec = self.functions[logical_id]
        first_attempt_at = time.time() + delay_seconds

        def attempt(number: int) -> None:
            age = time.time() - first_attempt_at
            if not self.slots.admit(logical_id, time.time(), spec.reserved_concurrency):
                # Throttled: kept and tried again (not a retry of a failure) while the event is young.
                if age + THROTTLE_RETRY_SECONDS <= spec.maximum_event_age_seconds:
                    self.context.scheduler.after(
                        THROTTLE_RETRY_SECONDS, f"lambda-throttled:{logical_id}", lambda: attempt(number)
                    )
                    return
                failure = "TooManyRequestsException: Rate Exceeded (reserved concurrency)"
                self.async_failures.append((logical_id, event, failure))
                self._send_to_failure_destination(spec, event, failure, number)
                return
            try:
                self._run_alone(logical_id, event, "async")
                return
            except Exception as error:
                failure = f"{type(error).__name__}: {error}"
            retries_done = number - 1
            if retries_done < spec.maximum_retry_attempts:
                delay = ASYNC_RETRY_DELAYS_SECONDS[min(retries_done, len(ASYNC_RETRY_DELAYS_SECONDS) - 1)]
                if age + delay <= spec.maximum_event_age_seconds:
                    self.context.scheduler.after(
                        delay, f"lambda-async-retry:{logical_id}", lambda: attempt(number + 1)
                    )
                    return
            self.async_failures.append((logical_id, event, failure))
            self._send_to_failure_destination(spec, event, failure, number)

        self.context.scheduler.after(delay_seconds, f"lambda-async:{logical_id}", lambda: attempt(1))

    def _send_to_failure_destination(
        self, spec: FunctionSpec, event: Any, failure: str, attempts: int
    ) -> None:
        destination = spec.on_failure_destination
        if not destination:
            return
        if ":sqs:" not in destination:
            raise NotImplementedError(f"{spec.logical_id}: only SQS OnFailure destinations are emulated")
        if not self._role_allows(spec.logical_id, ("sqs:SendMessage",), destination):
            return
        record = {
            "version": "1.0",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "requestContext": {
                "requestId": self._new_request_id(),
                "functionArn": f"{spec.arn}:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": attempts,
            },
            "requestPayload": event,
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "responsePayload": {"errorMessage": failure},
        }
        with self._twin_internal():
            self._sqs.send_message(QueueUrl=self._queue_url(destination), MessageBody=json.dumps(record))

    # ----- logs and metrics

    def _capture_line(self, function: str, request_id: str, text: str) -> None:
        self.logs.append(LogLine(time.time(), function, request_id, text))
        self.log_delivery.add(self.functions[function].name, time.time(), text)
        if self.context.recorder is not None:
            self.context.recorder.record_log_line(text)
        if '"_aws"' not in text:
            return
        try:
            document = json.loads(text)
        except ValueError:
            return
        if isinstance(document, dict) and "CloudWatchMetrics" in (document.get("_aws") or {}):
            self.metrics.append(document)
            self._pending_emf.append(document)

    def _publish_pending_emf(self) -> None:
        self.log_delivery.deliver()
        documents, self._pending_emf = self._pending_emf, []
        if not self.publish_emf_metrics or not documents:
            return
        with self._twin_internal():
            for document in documents:
                for namespace, data in _emf_metric_data(document):
                    for start in range(0, len(data), 1000):
                        self._cloudwatch.put_metric_data(
                            Namespace=namespace, MetricData=data[start : start + 1000]
                        )

    def _twin_internal(self) -> contextlib.AbstractContextManager[None]:
        """Calls the twin makes on AWS's behalf (pollers, log pipeline) stay out of the recorder's counts."""
        recorder = self.context.recorder
        return contextlib.nullcontext() if recorder is None else recorder.paused()

    # ----- SQS event source mappings

    def _queue_url(self, arn: str) -> str:
        try:
            return self.stack.queue_url_by_arn(arn)
        except KeyError:
            account, name = arn.split(":")[4], arn.split(":")[5]
            return self._sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]

    def wake(self) -> None:
        """Something may have landed in a mapped queue: make sure a poll is scheduled."""
        if self._poll_handle is not None:
            return
        latency = self.context.latency
        delay = SQS_POLL_INTERVAL_SECONDS if latency is None else latency.sqs_poll_seconds()
        self._poll_handle = self.context.scheduler.after(delay, "sqs-poll", self._poll_tick)

    def _poll_tick(self) -> None:
        self._poll_handle = None
        self.poll()
        wait = self._seconds_until_receivable()
        if wait is not None:
            # Lambda's pollers receive continuously; the twin polls once a second while a message can
            # be received, and otherwise not before the first in-flight or delayed one becomes
            # receivable again (a failed batch waits out the visibility timeout) -- the same deliveries
            # at a fraction of the cost.
            self._poll_handle = self.context.scheduler.after(
                max(SQS_POLL_INTERVAL_SECONDS, wait), "sqs-poll", self._poll_tick
            )

    def _seconds_until_receivable(self) -> float | None:
        """Seconds until a mapped queue's first message can be received (0 if one can now); None when
        every mapped queue is empty."""
        soonest: float | None = None
        for mapping in self.stack.event_source_mappings:
            if not mapping.enabled:
                continue
            for message in _moto_queue(self._queue_url(mapping.event_source_arn))._messages:
                at = max(message.visible_at, message.delayed_until) / 1000.0
                soonest = at if soonest is None else min(soonest, at)
        return None if soonest is None else max(0.0, soonest - time.time())

    def poll(self) -> int:
        """One poll of every enabled SQS mapping; returns how many messages were handed to functions."""
        batches: list[tuple[EventSourceMappingSpec, list[dict[str, Any]]]] = []
        with self._twin_internal():
            for mapping in self.stack.event_source_mappings:
                if mapping.enabled:
                    batches.extend((mapping, batch) for batch in self._receive_batches(mapping))
        if not batches:
            return 0
        calls = [
            (mapping.function_logical_id, _sqs_event(mapping, messages, self.stack.region))
            for mapping, messages in batches
        ]
        results = self.invoke_many(calls, kind="sqs")
        with self._twin_internal():
            for (mapping, messages), result in zip(batches, results, strict=True):
                self._settle_batch(mapping, messages, result)
        return sum(len(messages) for _, messages in batches)

    def _role_allows(self, logical_id: str, actions: tuple[str, ...], resource: str) -> bool:
        """The Lambda service acts with the function's execution role: an event source mapping polls and
        deletes with it, an OnFailure/dead-letter queue is written with it. A refusal leaves the
        messages where they are, as AWS's mapping does (it keeps retrying and reports the error)."""
        iam = self.context.iam
        if iam is None:
            return True
        for action in actions:
            denial = iam.authorize_function_role(logical_id, action, resource)
            if denial is not None:
                if self.context.recorder is not None:
                    self.context.recorder.count("lambda_service_denied")
                return False
        return True

    def _receive_batches(self, mapping: EventSourceMappingSpec) -> list[list[dict[str, Any]]]:
        polling = ("sqs:ReceiveMessage", "sqs:GetQueueAttributes")
        if not self._role_allows(mapping.function_logical_id, polling, mapping.event_source_arn):
            return []
        url = self._queue_url(mapping.event_source_arn)
        if mapping.maximum_batching_window_seconds > 0 and not self._batching_window_closed(mapping, url):
            return []
        pollers = self.scaling.batches(
            mapping.uuid,
            time.time(),
            backlog=queue_depth(url, in_flight=False) > 0,
            maximum_concurrency=mapping.maximum_concurrency,
            reserved_concurrency=self.functions[mapping.function_logical_id].reserved_concurrency,
        )
        batches = []
        for _ in range(pollers):
            batch: list[dict[str, Any]] = []
            while len(batch) < mapping.batch_size:
                received = self._sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=min(_SQS_RECEIVE_LIMIT, mapping.batch_size - len(batch)),
                    WaitTimeSeconds=0,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
                if not received:
                    break
                batch.extend(received)
            if not batch:
                break
            batches.append(batch)
        self._batching_started.pop(mapping.uuid, None)
        return batches

    def _batching_window_closed(self, mapping: EventSourceMappingSpec, url: str) -> bool:
        """With a batching window the poller waits for a full batch or for the window to pass."""
        visible = queue_depth(url, in_flight=False)
        if visible == 0:
            self._batching_started.pop(mapping.uuid, None)
            return False
        if visible >= mapping.batch_size:
            return True
        started = self._batching_started.setdefault(mapping.uuid, time.time())
        return time.time() - started >= mapping.maximum_batching_window_seconds

    def _settle_batch(
        self, mapping: EventSourceMappingSpec, messages: list[dict[str, Any]], result: Any
    ) -> None:
        if isinstance(result, BaseException):
            return  # the whole batch comes back after the visibility timeout
        succeeded = messages
        if "ReportBatchItemFailures" in mapping.function_response_types:
            failed_ids = _reported_failures(result, {m["MessageId"] for m in messages})
            if failed_ids is None:
                return  # an invalid response fails the whole batch, as Lambda does
            succeeded = [m for m in messages if m["MessageId"] not in failed_ids]
        if not self._role_allows(
            mapping.function_logical_id, ("sqs:DeleteMessage",), mapping.event_source_arn
        ):
            return
        url = self._queue_url(mapping.event_source_arn)
        for start in range(0, len(succeeded), _SQS_RECEIVE_LIMIT):
            chunk = succeeded[start : start + _SQS_RECEIVE_LIMIT]
            self._sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )


def _moto_queue(url: str) -> Any:
    """moto's own queue object behind `url` (the twin reads its state without an API round trip)."""
    account, name = url.rstrip("/").split("/")[-2:]
    region = url.split("sqs.", 1)[1].split(".", 1)[0]
    return sqs_backends[account][region].get_queue(name)


def queue_depth(url: str, *, in_flight: bool = True, ignore: Callable[[str], bool] | None = None) -> int:
    """Messages in the queue: receivable ones (ApproximateNumberOfMessages), plus with `in_flight` the
    in-flight and delayed ones, as the three Approximate* attributes would add up; `ignore(body)` leaves
    some out."""
    return sum(
        1
        for message in _moto_queue(url)._messages
        if (in_flight or (message.visible and not message.delayed))
        and (ignore is None or not ignore(message.body))
    )


def _reported_failures(result: Any, batch_ids: set[str]) -> set[str] | None:
    """The batchItemFailures ids, an empty set for a full success, None when Lambda would fail the batch."""
    if result is None or (isinstance(result, dict) and not result.get("batchItemFailures")):
        return set()
    if not isinstance(result, dict) or not isinstance(result["batchItemFailures"], list):
        return None
    failed: set[str] = set()
    for item in result["batchItemFailures"]:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not identifier or identifier not in batch_ids:
            return None
        failed.add(identifier)
    return failed


def _sqs_event(
    mapping: EventSourceMappingSpec, messages: list[dict[str, Any]], region: str
) -> dict[str, Any]:
    records = []
    for message in messages:
        attributes = message.get("Attributes", {})
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {
                    key: attributes[key]
                    for key in (
                        "ApproximateReceiveCount",
                        "SentTimestamp",
                        "SenderId",
                        "ApproximateFirstReceiveTimestamp",
                        "SequenceNumber",
                        "MessageGroupId",
                        "MessageDeduplicationId",
                        "AWSTraceHeader",
                    )
                    if key in attributes
                },
                "messageAttributes": {
                    name: _lambda_message_attribute(value)
                    for name, value in (message.get("MessageAttributes") or {}).items()
                },
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": mapping.event_source_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


def _lambda_message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    # Lambda's SQS event spells message attributes in camelCase, with list fields always present.
    return {
        "stringValue": value.get("StringValue"),
        "binaryValue": value.get("BinaryValue"),
        "stringListValues": value.get("StringListValues", []),
        "binaryListValues": value.get("BinaryListValues", []),
        "dataType": value["DataType"],
    }


def _emf_metric_data(document: dict[str, Any]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """CloudWatch metric data for one EMF document (what the Lambda log pipeline extracts)."""
    meta = document["_aws"]
    timestamp = meta.get("Timestamp", time.time() * 1000) / 1000.0
    for directive in meta["CloudWatchMetrics"]:
        dimension_sets = directive.get("Dimensions") or [[]]
        data: list[dict[str, Any]] = []
        for metric in directive.get("Metrics", []):
            values = document.get(metric["Name"])
            if values is None:
                continue
            for dimension_names in dimension_sets:
                datum: dict[str, Any] = {
                    "MetricName": metric["Name"],
                    "Timestamp": timestamp,
                    "Dimensions": [{"Name": name, "Value": str(document[name])} for name in dimension_names],
                }
                if isinstance(values, list):
                    datum["Values"] = [float(v) for v in values]
                else:
                    datum["Value"] = float(values)
                if metric.get("Unit"):
                    datum["Unit"] = metric["Unit"]
                data.append(datum)
        yield directive["Namespace"], data
