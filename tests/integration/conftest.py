"""moto-backed fixtures: AWS is mocked in-process before any module under test is imported."""

from __future__ import annotations

import importlib.util
import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from kcluster import contract

REPO = Path(__file__).resolve().parents[2]
CLUSTER = "demo"
TABLE = "kcluster-demo-state"


@dataclass
class LambdaContext:
    function_name: str = "kcluster-reactor"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:kcluster-reactor"
    memory_limit_in_mb: int = 512
    aws_request_id: str = "6f1c0f6e-0000-4000-8000-000000000000"
    log_group_name: str = "/aws/lambda/kcluster-reactor"
    log_stream_name: str = "2026/01/01/[$LATEST]0"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("CLUSTER_NAME", CLUSTER)
    monkeypatch.setenv("STATE_TABLE_NAME", TABLE)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "kcluster")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "kcluster")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    with mock_aws():
        yield


@pytest.fixture
def state_table(aws) -> str:
    boto3.client("dynamodb").create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    )
    return TABLE


def config_document(cluster: str = CLUSTER) -> dict:
    return {
        "cluster_name": cluster,
        "control_plane_endpoint": f"kcluster-{cluster}-nlb.elb.us-east-1.amazonaws.com:6443",
        "node_groups": [
            {"asg_name": f"kcluster-{cluster}-control-plane", "role": "control-plane"},
            {"asg_name": f"kcluster-{cluster}-workers", "role": "worker"},
        ],
        "documents": {
            key.replace("-", "_"): contract.document_name(cluster, key)
            for key in ("init", "join-control-plane", "join-worker", "refresh-join")
        },
    }


@pytest.fixture
def cluster_config(aws) -> dict:
    document = config_document()
    boto3.client("ssm").put_parameter(
        Name=contract.config_parameter_name(CLUSTER), Type="String", Value=json.dumps(document)
    )
    return document


def import_handler(function: str):
    """Import functions/<function>/app.py fresh, as Lambda would on a cold start."""
    path = REPO / "functions" / function / "app.py"
    name = f"kcluster_test_{function}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def eventbridge_event(
    detail_type: str, source: str, detail: dict, resources: list[str] | None = None
) -> dict:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": resources or [],
        "detail": detail,
    }


def sqs_event(*bodies: str | dict) -> dict:
    records = []
    for body in bodies:
        text = body if isinstance(body, str) else json.dumps(body)
        records.append(
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": "handle",
                "body": text,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1767225600000",
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": "1767225600000",
                },
                "messageAttributes": {},
                "md5OfBody": "0" * 32,
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:kcluster-events",
                "awsRegion": "us-east-1",
            }
        )
    return {"Records": records}


class AutoScalingWorld:
    """moto's Auto Scaling client, except DescribeAutoScalingInstances answers from `instances`
    (moto puts every instance straight InService; a lifecycle hook's Pending:Wait / Terminating:Wait is
    set here) and counts its calls."""

    def __init__(self, client) -> None:
        self._client = client
        self.instances: dict[str, tuple[str, str]] = {}  # instance id -> (group, lifecycle state)
        self.describe_calls: list[list[str]] = []
        self.completed: list[dict] = []  # moto does not implement CompleteLifecycleAction

    def put(self, instance_id: str, asg_name: str, lifecycle_state: str) -> None:
        self.instances[instance_id] = (asg_name, lifecycle_state)

    def describe_auto_scaling_instances(self, InstanceIds: list[str], **kwargs) -> dict:
        # The real API's limit, so a batch of ids is proven to be split.
        assert len(InstanceIds) <= 50, "DescribeAutoScalingInstances takes at most 50 ids"
        self.describe_calls.append(list(InstanceIds))
        return {
            "AutoScalingInstances": [
                {"InstanceId": iid, "AutoScalingGroupName": asg, "LifecycleState": state}
                for iid in InstanceIds
                if iid in self.instances
                for asg, state in [self.instances[iid]]
            ]
        }

    def complete_lifecycle_action(self, **kwargs) -> dict:
        self.completed.append(kwargs)
        return {}

    def __getattr__(self, name: str):
        return getattr(self._client, name)


def with_world(handler_module) -> AutoScalingWorld:
    """Give an imported handler an Auto Scaling world the test controls."""
    world = AutoScalingWorld(handler_module.clients.autoscaling)
    handler_module.clients.autoscaling = world
    return world
