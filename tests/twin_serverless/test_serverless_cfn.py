"""The fixture SAM template translates offline and deploys into moto with its intrinsics resolved."""

from __future__ import annotations

import json
import random
from pathlib import Path

import boto3
import pytest

from twin.aws.cfn import TemplateError, deploy_template, load_template

from .conftest import FIXTURE_TEMPLATE, ServerlessTwin

FIXTURES = FIXTURE_TEMPLATE.parent


def test_translation_keeps_local_code_paths_for_every_function_and_layer():
    translated = load_template(FIXTURE_TEMPLATE)
    resources = translated.template["Resources"]
    assert "Transform" not in translated.template
    types = {resource["Type"] for resource in resources.values()}
    assert "AWS::Serverless::Function" not in types
    assert {"AWS::Lambda::Function", "AWS::Lambda::EventSourceMapping", "AWS::Lambda::LayerVersion"} <= types
    assert translated.code_paths == {
        "FixtureLayer": FIXTURES / "layers" / "fixturelib",
        "WorkerFunction": FIXTURES / "functions" / "worker",
        "TickerFunction": FIXTURES / "functions" / "ticker",
        "EchoFunction": FIXTURES / "functions" / "echo",
    }
    assert translated.layer_build_methods == {"FixtureLayer": "python3.13"}
    assert translated.parameters == {"ClusterName": "demo", "Environment": "dev", "MaxReceiveCount": 3}


def test_undeclared_or_disallowed_parameters_are_refused():
    with pytest.raises(TemplateError, match="undeclared"):
        load_template(FIXTURE_TEMPLATE, {"Nope": "x"})
    with pytest.raises(TemplateError, match="AllowedValues"):
        load_template(FIXTURE_TEMPLATE, {"Environment": "staging"})


def test_deployed_resources_exist_in_moto_with_the_template_settings(twin: ServerlessTwin):
    stack = twin.stack
    table_name = stack.physical_id("StateTable")
    assert table_name.startswith("fx-StateTable-")
    dynamodb = boto3.client("dynamodb")
    table = dynamodb.describe_table(TableName=table_name)["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["pk", "sk"]
    ttl = dynamodb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}

    sqs = boto3.client("sqs")
    queue_url = stack.physical_id("EventsQueue")
    assert queue_url.endswith("/fx-events")  # explicit QueueName from !Sub "${AWS::StackName}-events"
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "60"
    assert attributes["MessageRetentionPeriod"] == "345600"
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive == {
        "deadLetterTargetArn": stack.resources["EventsDLQ"].attributes["Arn"],
        "maxReceiveCount": 3,
    }
    assert json.loads(attributes["Policy"])["Statement"][0]["Principal"] == {
        "Service": "events.amazonaws.com"
    }

    alarm = boto3.client("cloudwatch").describe_alarms(AlarmNames=[stack.physical_id("DLQAlarm")])[
        "MetricAlarms"
    ]
    assert alarm[0]["Dimensions"] == [
        {"Name": "QueueName", "Value": stack.resources["EventsDLQ"].attributes["QueueName"]}
    ]
    assert alarm[0]["AlarmActions"] == [stack.physical_id("AlarmTopic")]
    topics = [t["TopicArn"] for t in boto3.client("sns").list_topics()["Topics"]]
    assert topics == [stack.physical_id("AlarmTopic")]  # ProdOnlyTopic skipped by its condition
    assert stack.skipped_by_condition == ["ProdOnlyTopic"]
    assert stack.iam_findings == []
    assert stack.outputs == {"QueueUrl": queue_url, "TableName": table_name, "NotProd": "yes"}


def test_functions_mappings_and_rules_are_kept_as_data(twin: ServerlessTwin):
    stack = twin.stack
    worker = stack.functions["WorkerFunction"]
    assert worker.handler == "app.lambda_handler"
    assert worker.code_path == FIXTURES / "functions" / "worker"
    assert worker.layer_paths == [FIXTURES / "layers" / "fixturelib"]
    assert (worker.timeout_seconds, worker.memory_mb, worker.architectures) == (30, 256, ["arm64"])
    assert worker.environment["TABLE_NAME"] == stack.physical_id("StateTable")
    assert worker.environment["QUEUE_URL"] == stack.physical_id("EventsQueue")
    assert worker.maximum_retry_attempts == 2
    assert stack.functions["EchoFunction"].name == "fx-echo"
    assert stack.functions["EchoFunction"].maximum_retry_attempts == 1
    (mapping,) = stack.event_source_mappings
    assert mapping.function_logical_id == "WorkerFunction"
    assert mapping.event_source_arn == stack.resources["EventsQueue"].attributes["Arn"]
    assert (mapping.batch_size, mapping.function_response_types) == (3, ["ReportBatchItemFailures"])
    rules = {rule.logical_id: rule for rule in stack.rules}
    assert rules["TickerFunctionEveryMinute"].schedule_expression == "rate(1 minute)"
    assert rules["TickerFunctionEveryMinute"].targets[0]["Arn"] == stack.functions["TickerFunction"].arn
    lifecycle_pattern = json.loads(rules["LifecycleRule"].event_pattern)
    assert lifecycle_pattern["detail"]["AutoScalingGroupName"] == [{"prefix": "kcluster-alpha-"}]
    assert rules["DisabledRule"].state == "DISABLED"


def test_conditions_follow_parameters_and_names_follow_the_seed(aws):
    prod = deploy_template(
        load_template(FIXTURE_TEMPLATE, {"Environment": "prod"}), "p1", rng=random.Random(1)
    )
    assert "ProdOnlyTopic" in prod.resources
    assert prod.functions["EchoFunction"].environment["LOG_LEVEL"] == "INFO"
    assert prod.outputs["NotProd"] == "no"
    again = deploy_template(
        load_template(FIXTURE_TEMPLATE, {"Environment": "prod"}), "p2", rng=random.Random(1)
    )
    other = deploy_template(
        load_template(FIXTURE_TEMPLATE, {"Environment": "prod"}), "p3", rng=random.Random(2)
    )
    suffix = lambda stack: stack.physical_id("StateTable").rsplit("-", 1)[1]  # noqa: E731
    assert suffix(prod) == suffix(again)
    assert suffix(prod) != suffix(other)


def _write_template(tmp_path: Path, resources: str) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(
        "AWSTemplateFormatVersion: '2010-09-09'\nTransform: AWS::Serverless-2016-10-31\nResources:\n"
        + resources
    )
    return path


def test_unknown_resource_types_are_listed_in_one_error(aws, tmp_path: Path):
    path = _write_template(
        tmp_path,
        "  Bucket:\n    Type: AWS::S3::Bucket\n  Key:\n    Type: AWS::KMS::Replica\n"
        "  Queue:\n    Type: AWS::SQS::Queue\n",
    )
    with pytest.raises(TemplateError, match=r"\['AWS::KMS::Replica', 'AWS::S3::Bucket'\]"):
        deploy_template(load_template(path), "bad")


def test_a_statement_allowing_everything_on_everything_is_reported(aws, tmp_path: Path):
    path = _write_template(
        tmp_path,
        "  Admin:\n    Type: AWS::IAM::Policy\n    Properties:\n      PolicyName: admin\n"
        "      Roles: [x]\n      PolicyDocument:\n        Statement:\n"
        "          - {Effect: Allow, Action: '*', Resource: '*'}\n"
        "          - {Effect: Allow, Action: 's3:*', Resource: '*'}\n",
    )
    stack = deploy_template(load_template(path), "iam")
    assert stack.iam_findings == ["Admin statement 0: Action * on Resource *"]
