"""A cheaper rollback for moto's DynamoDB TransactWriteItems: the twin's own plumbing, no AWS behaviour.

moto 5.2 deep-copies every table a transaction names before applying it, so it can put the copy back if
any part fails. The product writes its state with a transaction at nearly every decision, so at a
thousand nodes each write copied the whole table: O(N) per event, O(N^2) per scale-out, most of the
twin's time. Here only the items the transaction names are saved (a transaction touches at most 100)
and put back on failure; moto's own code still decides everything else (conditions, errors, the
cancellation reasons). tests/twin/test_fast_transactions.py checks both outcomes against the table.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table

_Saved = tuple[Table, DynamoType, DynamoType | None, Any]


def _key_of(table: Table, op_type: str, op: dict[str, Any]) -> tuple[DynamoType, DynamoType | None] | None:
    attributes = op.get("Item") if op_type == "Put" else op.get("Key")
    if not isinstance(attributes, dict) or table.hash_key_attr not in attributes:
        return None
    hash_key = DynamoType(attributes[table.hash_key_attr])
    if table.range_key_attr is None:
        return hash_key, None
    if table.range_key_attr not in attributes:
        return None
    return hash_key, DynamoType(attributes[table.range_key_attr])


def _save(backend: DynamoDBBackend, transact_items: Any) -> list[_Saved]:
    saved: list[_Saved] = []
    for entry in transact_items if isinstance(transact_items, list) else []:
        if not isinstance(entry, dict) or len(entry) != 1:
            continue  # moto refuses it before changing anything
        ((op_type, op),) = entry.items()
        table = backend.tables.get(op.get("TableName")) if isinstance(op, dict) else None
        key = _key_of(table, op_type, op) if table is not None else None
        if table is None or key is None:
            continue
        hash_key, range_key = key
        current = table.items.get(hash_key)
        if range_key is not None:
            current = current.get(range_key) if isinstance(current, dict) else None
        saved.append((table, hash_key, range_key, copy.deepcopy(current)))
    return saved


def _restore(saved: list[_Saved]) -> None:
    # In reverse: the first saving of a key (its state before the transaction) is put back last.
    for table, hash_key, range_key, item in reversed(saved):
        if range_key is None:
            if item is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = item
            continue
        by_range = table.items[hash_key]
        if item is None:
            by_range.pop(range_key, None)
            if not by_range:
                del table.items[hash_key]
        else:
            by_range[range_key] = item


@contextlib.contextmanager
def _tables_not_copied() -> Iterator[None]:
    """moto's own whole-table backup becomes the table itself (its rollback then puts back nothing)."""
    Table.__deepcopy__ = lambda self, memo: self  # type: ignore[attr-defined]
    try:
        yield
    finally:
        del Table.__deepcopy__  # type: ignore[attr-defined]


def install() -> Callable[[], None]:
    """Patch moto; returns the undo."""
    original = DynamoDBBackend.transact_write_items

    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        saved = _save(self, transact_items)
        try:
            with _tables_not_copied():
                return original(self, transact_items)
        except Exception:
            _restore(saved)
            raise

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]

    def undo() -> None:
        DynamoDBBackend.transact_write_items = original  # type: ignore[method-assign]

    return undo
