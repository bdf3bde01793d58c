"""What each function invocation costs the product: DynamoDB bytes read and CPU outside AWS calls.

It emulates nothing; `make bench` (twin/bench.py) reads it. Two botocore handlers, added to
BUILTIN_HANDLERS like the recorder's (so every later session has them) and registered on the default
session by `install()`:

* `after-call` on DynamoDB reads (GetItem, BatchGetItem, Query, Scan): the size of the items returned,
  by DynamoDB's item-size rules (attribute names plus values), charged to the invocation the calling
  thread runs (twin/aws/functions.py `current_invocation`). The product reads without filter
  expressions, so what is returned is what was read; a read with one is counted apart (`filtered_reads`)
  so a reader of the numbers sees it.
* `before-call`/`after-call` on every call: the thread CPU time spent inside the call (botocore, the
  twin's IAM check, moto). The invocation's own CPU (InvocationRecord.cpu_seconds) minus that is what
  the function's code spent: the part that would bill on Lambda whatever AWS's latency is.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import boto3
from botocore.handlers import BUILTIN_HANDLERS

from twin.aws.functions import current_invocation

_READS = {"GetItem", "BatchGetItem", "Query", "Scan"}


@dataclass
class InvocationCost:
    dynamodb_bytes_read: int = 0
    dynamodb_reads: int = 0
    filtered_reads: int = 0
    aws_call_cpu_seconds: float = 0.0


class CostProbe:
    def __init__(self) -> None:
        self.by_request: dict[str, InvocationCost] = defaultdict(InvocationCost)

    def cost(self, request_id: str) -> InvocationCost:
        return self.by_request.get(request_id, InvocationCost())


def item_size(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it: UTF-8 attribute names plus their values."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: dict[str, Any]) -> int:
    ((kind, inner),) = value.items()
    sizes: dict[str, Callable[[Any], int]] = {
        "S": lambda v: len(v.encode()),
        "N": _number_size,
        "B": len,
        "BOOL": lambda _: 1,
        "NULL": lambda _: 1,
        "SS": lambda v: sum(len(s.encode()) for s in v),
        "NS": lambda v: sum(_number_size(n) for n in v),
        "BS": lambda v: sum(len(b) for b in v),
        # Lists and maps: 3 bytes, plus 1 per element, plus the elements.
        "L": lambda v: 3 + sum(1 + _value_size(element) for element in v),
        "M": lambda v: 3 + sum(1 + len(k.encode()) + _value_size(element) for k, element in v.items()),
    }
    return sizes[kind](inner)


def _number_size(text: str) -> int:
    """Numbers take about one byte per two significant digits, plus one."""
    digits = Decimal(text).normalize().as_tuple().digits
    return (len(digits) + 1) // 2 + 1


def _items_returned(operation: str, parsed: dict[str, Any]) -> list[dict[str, Any]]:
    if operation == "GetItem":
        return [parsed["Item"]] if parsed.get("Item") else []
    if operation == "BatchGetItem":
        return [item for items in (parsed.get("Responses") or {}).values() for item in items]
    return list(parsed.get("Items") or [])


_active: CostProbe | None = None
_call_started = threading.local()
_HANDLER_IDS = ("kcluster-twin-costs-before", "kcluster-twin-costs-after")


def _before_call(**_: Any) -> None:
    _call_started.at = time.thread_time()


def _after_call(model: Any = None, parsed: Any = None, **_: Any) -> None:
    probe = _active
    started = getattr(_call_started, "at", None)
    _call_started.at = None
    invocation = current_invocation()
    if probe is None or invocation is None or model is None:
        return
    cost = probe.by_request[invocation[1]]
    if started is not None:
        cost.aws_call_cpu_seconds += time.thread_time() - started
    if model.service_model.service_name != "dynamodb" or model.name not in _READS:
        return
    if not isinstance(parsed, dict) or "Error" in parsed:
        return
    cost.dynamodb_reads += 1
    cost.dynamodb_bytes_read += sum(item_size(item) for item in _items_returned(model.name, parsed))


def _filtered(model: Any = None, params: Any = None, **_: Any) -> None:
    probe = _active
    invocation = current_invocation()
    if probe is None or invocation is None or model is None or not isinstance(params, dict):
        return
    if model.service_model.service_name == "dynamodb" and params.get("FilterExpression"):
        probe.by_request[invocation[1]].filtered_reads += 1


BUILTIN_HANDLERS.append(("before-call", _before_call))
BUILTIN_HANDLERS.append(("before-call", _filtered))
BUILTIN_HANDLERS.append(("after-call", _after_call))


def install(probe: CostProbe) -> Callable[[], None]:
    """Make `probe` the one the handlers feed; returns the undo."""
    global _active
    previous = _active
    _active = probe
    if boto3.DEFAULT_SESSION is not None:
        session = boto3.DEFAULT_SESSION._session
        session.register("before-call", _before_call, unique_id=_HANDLER_IDS[0])
        session.register("before-call", _filtered, unique_id=_HANDLER_IDS[0] + "-filter")
        session.register("after-call", _after_call, unique_id=_HANDLER_IDS[1])

    def undo() -> None:
        global _active
        _active = previous

    return undo
