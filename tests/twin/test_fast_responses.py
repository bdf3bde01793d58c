"""The twin's fast path for DynamoDB reads answers exactly what moto's own serializer answers."""

from __future__ import annotations

import base64

import boto3
import pytest
from moto import mock_aws

from twin.aws import fast_responses

ITEM = {
    "pk": {"S": "CLUSTER#demo"},
    "count": {"N": "3"},
    "at": {"N": "1767225600.125"},
    "flag": {"BOOL": True},
    "nothing": {"NULL": True},
    "names": {"L": [{"S": "a"}, {"N": "1.5"}, {"M": {"k": {"S": "v"}}}]},
    "map": {"M": {"nested": {"SS": ["x", "y"]}, "numbers": {"NS": ["1", "2"]}}},
}


@pytest.fixture
def table(monkeypatch):
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("dynamodb")
        client.create_table(
            TableName="t",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
        )
        for n in range(25):
            client.put_item(TableName="t", Item={**ITEM, "sk": {"S": f"NODE#{n:03d}"}})
        client.put_item(
            TableName="t", Item={**ITEM, "sk": {"S": "BLOB"}, "b": {"B": base64.b64decode("AAEC")}}
        )
        yield client


def reads(client) -> list[dict]:
    query = {
        "TableName": "t",
        "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": {"S": "CLUSTER#demo"}},
    }
    answers = [
        client.query(**query, ConsistentRead=True),
        client.query(**query, Limit=7),  # paginated: LastEvaluatedKey
        client.scan(TableName="t"),
        client.get_item(TableName="t", Key={"pk": {"S": "CLUSTER#demo"}, "sk": {"S": "NODE#004"}}),
        client.get_item(TableName="t", Key={"pk": {"S": "CLUSTER#demo"}, "sk": {"S": "BLOB"}}),
        client.get_item(TableName="t", Key={"pk": {"S": "CLUSTER#demo"}, "sk": {"S": "MISSING"}}),
    ]
    for answer in answers:
        answer.pop("ResponseMetadata")
    return answers


def test_the_fast_path_parses_to_the_same_responses_binary_values_included(table):
    slow = reads(table)
    undo = fast_responses.install()
    try:
        fast = reads(table)
    finally:
        undo()
    assert fast == slow
    assert slow[1]["LastEvaluatedKey"] and slow[4]["Item"]["b"]["B"] == b"\x00\x01\x02"
