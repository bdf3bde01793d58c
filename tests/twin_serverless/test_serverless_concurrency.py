"""Concurrent invocations interleave at AWS calls, chosen by the seed: races are real and replayable."""

from __future__ import annotations

import os
import random

import boto3
import pytest
from botocore.exceptions import ClientError

from twin.aws.concurrency import run_concurrently

TABLE = "race"


@pytest.fixture
def table(aws) -> str:
    boto3.client("dynamodb").create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return TABLE


def _claim_leadership(name: str):
    """What an init election does: look, then claim with a conditional put; True when this one won."""

    def claim() -> bool:
        dynamodb = boto3.client("dynamodb")
        current = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "LEADER"}}).get("Item")
        if current is not None:
            return False
        try:
            dynamodb.put_item(
                TableName=TABLE,
                Item={"pk": {"S": "LEADER"}, "owner": {"S": name}, "seen_by": {"S": os.environ["RACER"]}},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    return claim


def _race(seed: int) -> tuple[list[bool], list[tuple[int, str]], str]:
    dynamodb = boto3.client("dynamodb")
    dynamodb.delete_item(TableName=TABLE, Key={"pk": {"S": "LEADER"}})
    trace: list[tuple[int, str]] = []
    results = run_concurrently(
        [_claim_leadership("a"), _claim_leadership("b")],
        random.Random(seed),
        environments=[{"RACER": "a"}, {"RACER": "b"}],
        trace=trace,
    )
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "LEADER"}})["Item"]
    assert item["seen_by"]["S"] == item["owner"]["S"]  # each call ran with its own environment
    return results, trace, item["owner"]["S"]


def test_exactly_one_wins_and_the_seed_decides_the_interleaving(table: str):
    outcomes = {seed: _race(seed) for seed in range(12)}
    for results, _trace, owner in outcomes.values():
        assert sorted(results) == [False, True]  # exactly one winner, never an exception
        assert results[["a", "b"].index(owner)] is True
    traces = {tuple(trace) for _results, trace, _owner in outcomes.values()}
    assert len(traces) > 1  # different seeds, different interleavings
    assert {owner for *_rest, owner in outcomes.values()} == {"a", "b"}
    # Both really raced in some run: both read before either wrote, so the condition decided.
    assert any(
        [op for _index, op in trace].index("dynamodb:PutItem")
        > max(position for position, (_index, op) in enumerate(trace) if op == "dynamodb:GetItem")
        for _results, trace, _owner in outcomes.values()
    )


def test_the_same_seed_replays_the_same_interleaving(table: str):
    first = _race(5)
    second = _race(5)
    assert first == second


def test_exceptions_are_results_and_the_environment_is_restored(aws):
    before = dict(os.environ)

    def fails():
        boto3.client("sqs").list_queues()
        raise ValueError("boom")

    def reads():
        boto3.client("sqs").list_queues()
        return os.environ["ONLY_HERE"]

    failure, value = run_concurrently(
        [fails, reads], random.Random(0), environments=[{}, {"ONLY_HERE": "yes"}]
    )
    assert isinstance(failure, ValueError)
    assert value == "yes"
    assert dict(os.environ) == before


def test_sqs_batches_of_one_poll_run_concurrently(aws, clock):
    from .conftest import build_twin

    twin = build_twin(clock, seed=11, parameters={"ClusterName": "alpha"})
    twin.bus.put_events(
        [
            {
                "Source": "kcluster.node",
                "DetailType": "Node Provisioned",
                "Detail": f'{{"cluster": "alpha", "instance-id": "i-{n}", "role": "worker"}}',
            }
            for n in range(9)
        ]
    )
    twin.scheduler.run_for(10)
    runs = [r for r in twin.functions.invocations if r.kind == "sqs"]
    assert len(runs) >= 3 and all(r.ok for r in runs)
    # Log lines of the batches' invocations interleave in the order the baton gave them the turn,
    # but each line is attributed to its own invocation.
    finished = [line.request_id for line in twin.functions.logs if '"batch done"' in line.text]
    assert sorted(finished) == sorted(r.request_id for r in runs)
