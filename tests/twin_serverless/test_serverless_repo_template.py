"""The product's own template.yaml goes through the same mini CloudFormation and runtime as the fixture."""

from __future__ import annotations

import json
import random
from pathlib import Path

import boto3

from twin.aws.cfn import Stack, TemplateError, deploy_template, load_template
from twin.aws.eventbus import schedule_period_seconds
from twin.aws.functions import FunctionRuntime, FunctionRuntimeContext
from twin.clock import Scheduler, VirtualClock
from twin.recorder import Recorder

REPO_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def test_repo_template_deploys_and_every_handler_cold_starts(aws):
    stack = deploy_template(load_template(REPO_TEMPLATE, {"ClusterName": "demo"}), "kcluster-demo")
    assert stack.functions, "the template declares functions"
    assert stack.iam_findings == []
    clock = VirtualClock()
    try:
        runtime = FunctionRuntime(
            FunctionRuntimeContext(Scheduler(clock), random.Random(0), Recorder()), stack
        )
        _check_handlers(runtime, stack)
    finally:
        clock.close()


def _check_handlers(runtime: FunctionRuntime, stack: Stack) -> None:
    for logical_id, spec in stack.functions.items():
        assert spec.code_path.is_dir()
        assert all(path.is_dir() for path in spec.layer_paths)
        assert callable(runtime.handler(logical_id))
    for mapping in stack.event_source_mappings:
        assert stack.queue_url_by_arn(mapping.event_source_arn)
    for rule in stack.rules:
        if rule.schedule_expression:
            assert schedule_period_seconds(rule.schedule_expression) > 0
        for target in rule.targets:
            service = target["Arn"].split(":")[2]
            if service == "sqs":
                assert stack.queue_url_by_arn(target["Arn"])
            else:
                assert stack.function_by_arn_or_name(target["Arn"]).arn == target["Arn"]


def test_remediation_alarms_page_no_one_and_the_people_alarms_do(aws):
    stack = deploy_template(
        load_template(
            REPO_TEMPLATE,
            {
                "ClusterName": "demo",
                "ApiTargetGroupArnSuffix": "targetgroup/kc-demo-api/0123456789abcdef",
                "ApiLoadBalancerArnSuffix": "net/kc-demo/0123456789abcdef",
            },
        ),
        "kcluster-demo",
    )
    topic = stack.physical_id("AlertsTopic")
    alarms = {a["AlarmName"]: a for a in boto3.client("cloudwatch").describe_alarms()["MetricAlarms"]}
    remediation = {name for name in alarms if name.startswith("kcluster-demo-remediate-")}
    assert remediation == {
        "kcluster-demo-remediate-nodes-not-ready",
        "kcluster-demo-remediate-api-servers-unhealthy",
    }
    for name, alarm in alarms.items():
        actions = alarm["AlarmActions"] + alarm["OKActions"] + alarm["InsufficientDataActions"]
        # a remediation alarm acts through the remediator; every other one is for people, on ALARM only,
        # but for the API one: its metric stopping (the reconciler not running) pages as well
        paged = [topic, topic] if name == "kcluster-demo-no-ready-control-plane" else [topic]
        assert actions == ([] if name in remediation else paged), name
    # the remediator's rule takes exactly the remediation alarms' ALARM and OK changes
    (pattern,) = [
        json.loads(r.event_pattern)
        for r in stack.rules
        if r.event_pattern and "aws.cloudwatch" in r.event_pattern
    ]
    # exact names: a prefix would also take the alarms of a cluster named "demo-x"
    assert pattern["detail"]["alarmName"] == [
        "kcluster-demo-remediate-nodes-not-ready",
        "kcluster-demo-remediate-api-servers-unhealthy",
    ]
    assert pattern["detail"]["state"]["value"] == ["ALARM", "OK"]
    # the dashboard's body, intrinsics resolved, is the JSON CloudWatch wants
    body = boto3.client("cloudwatch").get_dashboard(DashboardName="kcluster-demo")["DashboardBody"]
    widgets = json.loads(body)["widgets"]
    assert {w["properties"]["title"] for w in widgets} >= {
        "Nodes",
        "etcd and the API",
        "Remediation",
        "Alarms",
    }


def test_the_reconcile_schedule_takes_only_what_eventbridge_accepts():
    # Issue 17: `rate(5 minute)` passed the parameter's pattern and failed at deploy time in EventBridge.
    for accepted in ("rate(1 minute)", "rate(2 minutes)", "rate(15 minutes)"):
        assert load_template(REPO_TEMPLATE, {"ClusterName": "demo", "ReconcileSchedule": accepted})
    for refused in (
        "rate(5 minute)",
        "rate(1 minutes)",
        "rate(0 minutes)",
        "rate(01 minute)",
        "cron(* * * * ? *)",
    ):
        try:
            load_template(REPO_TEMPLATE, {"ClusterName": "demo", "ReconcileSchedule": refused})
        except TemplateError as error:
            assert "AllowedPattern" in str(error)
        else:
            raise AssertionError(f"{refused} was accepted")
