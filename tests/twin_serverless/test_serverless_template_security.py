"""template.yaml's authorization, read from the deployed (translated, intrinsics resolved) template:
one role per function with only what its code calls, grants by exact names or tags, the alerts key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from twin.aws.cfn import Stack, deploy_template, load_template

REPO_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
BOUNDARY = "arn:aws:iam::123456789012:policy/enterprise-boundary"

EXPECTED_ACTIONS = {
    "ReactorFunction": {
        "ssm:GetParameter", "dynamodb:Query", "dynamodb:PutItem",
        "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
        "ssm:SendCommand", "ssm:CancelCommand", "ssm:GetCommandInvocation",
        "autoscaling:DescribeAutoScalingInstances",
        "autoscaling:CompleteLifecycleAction", "autoscaling:SetInstanceHealth",
        "elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets",
    },
    "ReconcilerFunction": {
        "ssm:GetParameter", "dynamodb:Query", "dynamodb:PutItem",
        "ssm:SendCommand", "ssm:CancelCommand", "ssm:GetCommandInvocation", "ssm:ListCommands",
        "ssm:DescribeInstanceInformation", "autoscaling:DescribeAutoScalingGroups",
        "elasticloadbalancing:DescribeTargetHealth", "autoscaling:CompleteLifecycleAction",
        "autoscaling:RecordLifecycleActionHeartbeat", "autoscaling:SetInstanceHealth", "sns:Publish",
        "elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets",
        "cloudwatch:DescribeAlarms",
        # a rollout's instance refreshes (kcluster/rollout_pass.py, adapters/instance_refresh.py)
        "autoscaling:StartInstanceRefresh", "autoscaling:CancelInstanceRefresh",
        "autoscaling:DescribeInstanceRefreshes",
    },
    "RemediatorFunction": {
        "ssm:GetParameter", "dynamodb:Query", "dynamodb:PutItem",
        "autoscaling:DescribeAutoScalingGroups", "elasticloadbalancing:DescribeTargetHealth",
        "autoscaling:SetInstanceHealth", "sns:Publish", "sqs:SendMessage",
    },
}  # fmt: skip


def deploy(parameters: dict | None = None) -> Stack:
    return deploy_template(
        load_template(REPO_TEMPLATE, {"ClusterName": "demo", **(parameters or {})}), "kcluster-demo"
    )


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def statements_of(stack: Stack, function: str) -> list[dict]:
    """Every statement of the policies attached to a function's role."""
    role_arn = stack.resources[function].properties["Role"]
    (role,) = [
        r for r in stack.resources.values() if r.type == "AWS::IAM::Role" and r.attributes["Arn"] == role_arn
    ]
    found = []
    for resource in stack.resources.values():
        if resource.type == "AWS::IAM::Policy" and role.physical_id in resource.properties["Roles"]:
            found += resource.properties["PolicyDocument"]["Statement"]
    return found


@pytest.fixture
def stack(aws) -> Stack:
    return deploy()


def test_each_function_has_its_own_role_with_only_what_its_code_calls(stack):
    roles = {stack.resources[f].properties["Role"] for f in EXPECTED_ACTIONS}
    assert len(roles) == 3
    for function, expected in EXPECTED_ACTIONS.items():
        actions = {a for s in statements_of(stack, function) for a in as_list(s["Action"])}
        assert actions == expected, function
    assert not [r for r in stack.resources.values() if r.type == "AWS::IAM::ManagedPolicy"]


def test_no_grant_rule_or_check_matches_a_name_prefix_another_cluster_shares(stack):
    for function in EXPECTED_ACTIONS:
        for statement in statements_of(stack, function):
            for resource in as_list(statement["Resource"]):
                assert "kcluster-demo-*" not in resource, (function, statement["Sid"])
    for rule in stack.rules:
        assert '"prefix"' not in (rule.event_pattern or ""), rule.logical_id
    patterns = [json.loads(r.event_pattern) for r in stack.rules if r.event_pattern]
    lifecycle = next(p for p in patterns if p["source"] == ["aws.autoscaling"])
    assert lifecycle["detail"]["AutoScalingGroupName"] == [
        "kcluster-demo-control-plane",
        "kcluster-demo-workers",
    ]


def test_commands_go_only_to_exact_documents_and_tagged_instances_and_groups_by_tag(stack):
    for function in ("ReactorFunction", "ReconcilerFunction"):
        sends = [s for s in statements_of(stack, function) if "ssm:SendCommand" in as_list(s["Action"])]
        documents = [r for s in sends for r in as_list(s["Resource"]) if ":document/" in r]
        assert documents and all(r.rsplit("/", 1)[1].startswith("kcluster-demo-") for r in documents)
        (to_instances,) = [s for s in sends if any(":instance/" in r for r in as_list(s["Resource"]))]
        assert to_instances["Condition"] == {"StringEquals": {"ssm:resourceTag/kcluster:cluster": "demo"}}
    for function in EXPECTED_ACTIONS:
        for statement in statements_of(stack, function):
            if "autoscaling:SetInstanceHealth" in as_list(statement["Action"]):
                assert statement["Condition"] == {
                    "StringEquals": {"autoscaling:ResourceTag/kcluster:cluster": "demo"}
                }


def test_cancel_is_granted_on_star_without_a_condition_that_can_never_match(stack):
    for function in EXPECTED_ACTIONS:
        for statement in statements_of(stack, function):
            if "ssm:CancelCommand" in as_list(statement["Action"]):
                assert statement["Resource"] == "*" and "Condition" not in statement
            assert "ssm:ListCommandInvocations" not in as_list(statement["Action"])


def test_alerts_topic_uses_a_key_cloudwatch_may_use_and_only_our_alarms_may_publish(stack):
    topic = stack.resources["AlertsTopic"]
    key = stack.resources["AlertsKey"]
    assert topic.properties["KmsMasterKeyId"] == key.physical_id
    assert key.properties["EnableKeyRotation"] is True
    by_sid = {s["Sid"]: s for s in key.properties["KeyPolicy"]["Statement"]}
    cloudwatch = by_sid["AlarmActionsOfThisAccountPublish"]
    assert cloudwatch["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert cloudwatch["Condition"] == {"StringEquals": {"aws:SourceAccount": stack.account_id}}
    via_sns = by_sid["FunctionsPublishThroughSnsOnly"]
    assert via_sns["Condition"] == {"StringEquals": {"kms:ViaService": f"sns.{stack.region}.amazonaws.com"}}
    (statement,) = stack.resources["AlertsTopicPolicy"].properties["PolicyDocument"]["Statement"]
    sources = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
    alarms_with_the_topic = {
        r.attributes["Arn"]
        for r in stack.resources.values()
        if r.type == "AWS::CloudWatch::Alarm" and topic.physical_id in r.properties.get("AlarmActions", [])
    }
    assert set(sources) == alarms_with_the_topic


def test_remediator_events_that_fail_go_to_a_queue_only_its_rule_may_send_to(stack):
    queue_arn = stack.resources["RemediatorDeadLetterQueue"].attributes["Arn"]
    (rule,) = [r for r in stack.rules if r.event_pattern and "aws.cloudwatch" in r.event_pattern]
    (target,) = rule.targets
    assert target["DeadLetterConfig"]["Arn"] == queue_arn
    assert stack.resources["RemediatorFunction"].properties["DeadLetterConfig"]["TargetArn"] == queue_arn
    (statement,) = stack.resources["RemediatorDeadLetterQueuePolicy"].properties["PolicyDocument"][
        "Statement"
    ]
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": rule.arn}}


@pytest.mark.parametrize("boundary", ["", BOUNDARY])
def test_every_role_gets_the_permissions_boundary_when_one_is_given(aws, boundary):
    stack = deploy({"PermissionsBoundaryArn": boundary})
    roles = [r for r in stack.resources.values() if r.type == "AWS::IAM::Role"]
    assert len(roles) == 3
    for role in roles:
        assert role.properties.get("PermissionsBoundary") == (boundary or None), role.logical_id
