"""The DynamoDB state table: one partition per cluster, items CLUSTER / REMEDIATION / NODE#<id> /
CMD#<id> / HEALTH / BACKUP / ROLLOUT.

Writes are conditional on the version the decision was based on (``attribute_not_exists`` for a new
item), all of a step's records in one transaction, so two deciders cannot both win.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from kcluster.core.models import (
    BackupState,
    ClusterState,
    ClusterView,
    CommandRecord,
    HealthSnapshot,
    NodeHealth,
    NodeRecord,
    Record,
    RemediationState,
)
from kcluster.core.rollout_model import RolloutState

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

StoredT = TypeVar("StoredT", bound="DataclassInstance")

# Command records and records of gone nodes are kept a week for inspection, then DynamoDB's TTL
# removes them.
COMMAND_RECORD_TTL_SECONDS = 7 * 24 * 3600
MAX_TRANSACTION_ITEMS = 100

_LEGACY_REMEDIATION_FIELDS = (
    "alarms_in_alarm",
    "remediating",
    "remediating_since",
    "remediations",
    "notified_at",
)
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class WriteConflict(Exception):
    """A record changed since it was loaded: reload and decide again."""


def partition_key(cluster: str) -> str:
    return f"CLUSTER#{cluster}"


# Sort key and kind of each record type: the cluster record, remediation's own record (so remediation
# writes never contend with joins for the cluster record), the latest health snapshot, nodes, commands.
def sort_key(record: Record | RolloutState) -> str:
    match record:
        case RolloutState():
            return "ROLLOUT"
        case ClusterState():
            return "CLUSTER"
        case RemediationState():
            return "REMEDIATION"
        case HealthSnapshot():
            return "HEALTH"
        case BackupState():
            return "BACKUP"
        case NodeRecord():
            return f"NODE#{record.instance_id}"
        case CommandRecord():
            return f"CMD#{record.command_id}"


def _kind(record: Record | RolloutState) -> str:
    match record:
        case RolloutState():
            return "rollout"
        case ClusterState():
            return "cluster"
        case RemediationState():
            return "remediation"
        case HealthSnapshot():
            return "health"
        case BackupState():
            return "backup"
        case NodeRecord():
            return "node"
        case CommandRecord():
            return "command"


class StateStore:
    def __init__(self, table_name: str, cluster: str, client: Any = None) -> None:
        self.table_name = table_name
        self.cluster = cluster
        self._client = client or boto3.client("dynamodb")
        # The rollout record (core/rollout_model.py) as of the last load: an item of its own, so a
        # rollout's writes never contend with joins and removals.
        self.loaded_rollout: RolloutState | None = None

    def load(self) -> ClusterView:
        """The cluster's records; the rollout record, on the same query, is kept aside as
        `loaded_rollout` (the pure decisions on the view never see it, and no call is added)."""
        items = [
            {key: _plain(_deserializer.deserialize(value)) for key, value in raw.items()}
            for page in self._client.get_paginator("query").paginate(
                TableName=self.table_name,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": partition_key(self.cluster)}},
                ConsistentRead=True,
            )
            for raw in page["Items"]
        ]
        rollouts = [item for item in items if item.get("kind") == "rollout"]
        self.loaded_rollout = _rollout(rollouts[0]) if rollouts else None
        view = ClusterView(ClusterState(name=self.cluster))
        return view.with_records(_from_item(item) for item in items if item.get("kind") != "rollout")

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

    def write_rollout(self, record: RolloutState, based_on: RolloutState | None) -> None:
        """Write the rollout record only if the stored one is still `based_on` (None: there was none);
        WriteConflict if not. One decision may move the record more than once (a refusal after a
        phase change), so the condition names the version loaded, not the one before `record`'s."""
        put = self._conditional_put(record)
        if based_on is not None:
            put["ConditionExpression"] = "#version = :expected"
            put["ExpressionAttributeNames"] = {"#version": "version"}
            put["ExpressionAttributeValues"] = {":expected": {"N": str(based_on.version)}}
        else:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
            put.pop("ExpressionAttributeNames", None)
            put.pop("ExpressionAttributeValues", None)
        try:
            self._client.put_item(**put)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise WriteConflict(str(error)) from error
            raise

    def _conditional_put(self, record: Record | RolloutState) -> dict[str, Any]:
        item = {k: v for k, v in dataclasses.asdict(record).items() if v is not None}
        item.update(pk=partition_key(self.cluster), sk=sort_key(record), kind=_kind(record))
        if isinstance(record, CommandRecord):
            item["expires_at"] = int(record.sent_at) + COMMAND_RECORD_TTL_SECONDS
        elif isinstance(record, NodeRecord) and record.phase == "gone":
            item["expires_at"] = int(record.updated_at) + COMMAND_RECORD_TTL_SECONDS
        put: dict[str, Any] = {
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


def _from_item(item: dict[str, Any]) -> Record:
    kind = item.pop("kind")
    for key in ("pk", "sk", "expires_at"):
        item.pop(key, None)
    match kind:
        case "cluster":
            # Items written before remediation had its own record carry its fields; they are dropped
            # (a standing alarm is remembered again at its next state change).
            for key in _LEGACY_REMEDIATION_FIELDS:
                item.pop(key, None)
            return _record(ClusterState, item)
        case "remediation":
            return _record(RemediationState, item)
        case "node":
            return _record(NodeRecord, item)
        case "health":
            item["not_ready"] = [NodeHealth(**node) for node in item.get("not_ready", ())]
            return _record(HealthSnapshot, item)
        case "backup":
            return _record(BackupState, item)
        case _:
            return _record(CommandRecord, item)


def _rollout(item: dict[str, Any]) -> RolloutState:
    return _record(RolloutState, {k: v for k, v in item.items() if k not in ("pk", "sk", "kind")})


def _record(cls: type[StoredT], item: dict[str, Any]) -> StoredT:
    """A record from its item: DynamoDB lists back into the tuples the record declares."""
    tuples = {f.name for f in dataclasses.fields(cls) if str(f.type).startswith("tuple")}
    values: dict[str, Any] = {key: tuple(value) if key in tuples else value for key, value in item.items()}
    return cls(**values)


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
