"""The product's own template.yaml goes through the same mini CloudFormation and runtime as the fixture."""

from __future__ import annotations

import random
from pathlib import Path

from twin.aws.cfn import deploy_template, load_template
from twin.aws.eventbus import schedule_period_seconds
from twin.aws.functions import FunctionRuntime
from twin.recorder import Recorder

REPO_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


class _Twin:
    def __init__(self) -> None:
        self.rng = random.Random(0)
        self.recorder = Recorder()


def test_repo_template_deploys_and_every_handler_cold_starts(aws):
    stack = deploy_template(load_template(REPO_TEMPLATE, {"ClusterName": "demo"}), "kcluster-demo")
    assert stack.functions, "the template declares functions"
    assert stack.iam_findings == []
    runtime = FunctionRuntime(_Twin(), stack)
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
