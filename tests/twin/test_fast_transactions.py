"""The twin's cheaper TransactWriteItems rollback leaves tables exactly as moto's whole-table copy does."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models import dynamodb_backends

from twin.aws import fast_transactions

ACCOUNT = "123456789012"


def _create(client: Any, name: str, *, range_key: bool) -> None:
    keys = [("pk", "HASH")] + ([("sk", "RANGE")] if range_key else [])
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k, _ in keys],
        KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in keys],
    )


@pytest.fixture(params=["moto", "twin"])
def client(request) -> Iterator[Any]:
    """Each test runs against moto's own rollback and the twin's: the outcomes must be the same."""
    credentials = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    with mock.patch.dict(os.environ, {"AWS_DEFAULT_REGION": "us-east-1", **credentials}), mock_aws():
        undo = fast_transactions.install() if request.param == "twin" else (lambda: None)
        try:
            dynamodb = boto3.client("dynamodb")
            _create(dynamodb, "state", range_key=True)
            _create(dynamodb, "flat", range_key=False)
            for n in range(5):
                dynamodb.put_item(
                    TableName="state", Item={"pk": {"S": "C"}, "sk": {"S": f"NODE#{n}"}, "v": {"N": "1"}}
                )
            dynamodb.put_item(TableName="flat", Item={"pk": {"S": "lease"}, "v": {"N": "1"}})
            yield dynamodb
        finally:
            undo()


def _table(name: str) -> dict[str, Any]:
    table = dynamodb_backends[ACCOUNT]["us-east-1"].tables[name]
    return {
        str(hash_key): (
            {str(r): item.to_json() for r, item in value.items()}
            if isinstance(value, dict)
            else value.to_json()
        )
        for hash_key, value in table.items.items()
    }


def _put(table: str, sk: str | None, value: str, condition: str | None = None) -> dict[str, Any]:
    item = {"pk": {"S": "C" if sk else "lease"}, "v": {"N": value}} | ({"sk": {"S": sk}} if sk else {})
    put: dict[str, Any] = {"TableName": table, "Item": item}
    if condition:
        put["ConditionExpression"] = condition
    return {"Put": put}


def test_a_failed_transaction_changes_nothing(client) -> None:
    # GIVEN both tables as they are
    before = {name: _table(name) for name in ("state", "flat")}
    # WHEN a transaction updates, creates and deletes items, and its last condition fails
    with pytest.raises(ClientError) as raised:
        client.transact_write_items(
            TransactItems=[
                _put("state", "NODE#1", "2"),
                _put("state", "NODE#9", "1"),
                {"Delete": {"TableName": "state", "Key": {"pk": {"S": "C"}, "sk": {"S": "NODE#2"}}}},
                _put("flat", None, "2"),
                _put("state", "NODE#3", "2", condition="attribute_not_exists(pk)"),
            ]
        )
    # THEN it is cancelled with the reasons, and every table is exactly as before
    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [r["Code"] for r in raised.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "None", "None", "ConditionalCheckFailed"]
    assert {name: _table(name) for name in ("state", "flat")} == before


def test_a_transaction_that_succeeds_applies_every_part(client) -> None:
    client.transact_write_items(
        TransactItems=[
            _put("state", "NODE#1", "2", condition="attribute_exists(pk)"),
            _put("state", "NODE#9", "1", condition="attribute_not_exists(pk)"),
            {"Delete": {"TableName": "state", "Key": {"pk": {"S": "C"}, "sk": {"S": "NODE#2"}}}},
            _put("flat", None, "3"),
        ]
    )
    items = client.query(
        TableName="state", KeyConditionExpression="pk = :c", ExpressionAttributeValues={":c": {"S": "C"}}
    )["Items"]
    assert {i["sk"]["S"]: i["v"]["N"] for i in items} == {
        "NODE#0": "1",
        "NODE#1": "2",
        "NODE#3": "1",
        "NODE#4": "1",
        "NODE#9": "1",
    }
    assert client.get_item(TableName="flat", Key={"pk": {"S": "lease"}})["Item"]["v"] == {"N": "3"}


def test_a_refused_transaction_changes_nothing(client) -> None:
    # Two parts on one item: refused as a whole (a validation error, not a cancellation)
    before = _table("state")
    with pytest.raises(ClientError):
        client.transact_write_items(
            TransactItems=[_put("state", "NODE#1", "5"), _put("state", "NODE#1", "6")]
        )
    assert _table("state") == before
