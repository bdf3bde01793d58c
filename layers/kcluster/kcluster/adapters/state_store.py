"""The DynamoDB state table: one partition per cluster, items CLUSTER / NODE#<id> / CMD#<id> / HEALTH.

Writes are conditional on the version the decision was based on (``attribute_not_exists`` for a new
item), all of a step's records in one transaction, so two deciders cannot both win.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from kcluster.core.models import (
    ClusterState,
    ClusterView,
    CommandRecord,
    HealthSnapshot,
    NodeHealth,
    NodeRecord,
    Record,
)

# Command records and records of gone nodes are kept a week for inspection, then DynamoDB's TTL
# removes them.
COMMAND_RECORD_TTL_SECONDS = 7 * 24 * 3600
MAX_TRANSACTION_ITEMS = 100

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class WriteConflict(Exception):
    """A record changed since it was loaded: reload and decide again."""


def partition_key(cluster: str) -> str:
    return f"CLUSTER#{cluster}"


def sort_key(record: Record) -> str:
    if isinstance(record, ClusterState):
        return "CLUSTER"
    if isinstance(record, NodeRecord):
        return f"NODE#{record.instance_id}"
    if isinstance(record, HealthSnapshot):
        return "HEALTH"
    return f"CMD#{record.command_id}"


class StateStore:
    def __init__(self, table_name: str, cluster: str, client: Any = None) -> None:
        self.table_name = table_name
        self.cluster = cluster
        self._client = client or boto3.client("dynamodb")

    def load(self) -> ClusterView:
        cluster = ClusterState(name=self.cluster)
        nodes: dict[str, NodeRecord] = {}
        commands: dict[str, CommandRecord] = {}
        health: HealthSnapshot | None = None
        paginator = self._client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": partition_key(self.cluster)}},
            ConsistentRead=True,
        )
        for page in pages:
            for raw in page["Items"]:
                item = {key: _plain(_deserializer.deserialize(value)) for key, value in raw.items()}
                kind = item.pop("kind")
                for key in ("pk", "sk", "expires_at"):
                    item.pop(key, None)
                if kind == "cluster":
                    cluster = _record(ClusterState, item)
                elif kind == "node":
                    nodes[item["instance_id"]] = _record(NodeRecord, item)
                elif kind == "health":
                    item["not_ready"] = [NodeHealth(**node) for node in item.get("not_ready", ())]
                    health = _record(HealthSnapshot, item)
                else:
                    commands[item["command_id"]] = _record(CommandRecord, item)
        return ClusterView(cluster, nodes, commands, health)

    def write(self, records: tuple[Record, ...]) -> None:
        """Write records atomically, each only if still at the version before this one."""
        if not records:
            return
        keys = [sort_key(r) for r in records]
        if len(set(keys)) != len(keys):
            raise ValueError(f"a step writes the same record twice: {keys}")
        if len(records) > MAX_TRANSACTION_ITEMS:
            raise ValueError(f"a step writes {len(records)} records; at most {MAX_TRANSACTION_ITEMS}")
        items = [{"Put": self._conditional_put(record)} for record in records]
        try:
            if len(items) == 1:
                self._client.put_item(**items[0]["Put"])
            else:
                self._client.transact_write_items(TransactItems=items)
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                raise WriteConflict(str(error)) from error
            raise

    def _conditional_put(self, record: Record) -> dict:
        item = {k: v for k, v in dataclasses.asdict(record).items() if v is not None}
        item.update(pk=partition_key(self.cluster), sk=sort_key(record), kind=_kind(record))
        if isinstance(record, CommandRecord):
            item["expires_at"] = int(record.sent_at) + COMMAND_RECORD_TTL_SECONDS
        elif isinstance(record, NodeRecord) and record.phase == "gone":
            item["expires_at"] = int(record.updated_at) + COMMAND_RECORD_TTL_SECONDS
        put: dict = {
            "TableName": self.table_name,
            "Item": {key: _serializer.serialize(_dynamo_value(value)) for key, value in item.items()},
        }
        if record.version <= 1:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "#version = :expected"
            put["ExpressionAttributeNames"] = {"#version": "version"}
            put["ExpressionAttributeValues"] = {":expected": {"N": str(record.version - 1)}}
        return put


def _kind(record: Record) -> str:
    if isinstance(record, ClusterState):
        return "cluster"
    if isinstance(record, HealthSnapshot):
        return "health"
    return "node" if isinstance(record, NodeRecord) else "command"


def _record(cls: type, item: dict) -> Any:
    """A record from its item: DynamoDB lists back into the tuples the record declares."""
    tuples = {f.name for f in dataclasses.fields(cls) if str(f.type).startswith("tuple")}
    return cls(**{key: tuple(value) if key in tuples else value for key, value in item.items()})


def _dynamo_value(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, float | int):
        return Decimal(str(value))
    if isinstance(value, tuple | list):
        return [_dynamo_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _dynamo_value(v) for k, v in value.items()}
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
