"""A faster path for moto's DynamoDB read responses: the twin's own plumbing, no AWS behaviour.

moto 5.2 serializes every response by walking the operation's output shape; for a DynamoDB Query over a
few hundred items that costs ~10 times the rest of the call, and the product loads its state with such
a Query at every decision. The items moto returns are already in DynamoDB's JSON wire form (typed
AttributeValues), so for the JSON protocol's read operations the body is that dict as JSON: the same
bytes a botocore client parses into the same response (tests/twin/test_fast_responses.py compares the
two). Anything that does not serialize as plain JSON (binary attribute values) takes moto's own path.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from moto.core import responses as moto_responses

_FAST_OPERATIONS = frozenset({"Query", "Scan", "GetItem"})
_CONTENT_TYPE = "application/x-amz-json-1.0"


def install() -> Callable[[], None]:
    """Patch moto; returns the undo."""
    original = moto_responses.ActionResult.execute_result

    def execute_result(self: Any, context: Any) -> Any:
        if (
            context.service_model.service_name == "dynamodb"
            and context.operation_model.name in _FAST_OPERATIONS
            and isinstance(self.result, dict)
        ):
            try:
                return 200, {"Content-Type": _CONTENT_TYPE}, json.dumps(self.result)
            except TypeError:  # bytes (a binary attribute): moto's serializer base64-encodes them
                pass
        return original(self, context)

    moto_responses.ActionResult.execute_result = execute_result

    def undo() -> None:
        moto_responses.ActionResult.execute_result = original

    return undo
