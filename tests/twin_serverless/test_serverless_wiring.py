"""How the functions are wired for load and failure, read from the deployed template, and what the layer
ships: bounded reactor concurrency, a reconciler that cannot overlap itself, an API alarm that pages
when nothing probes, and the layer's packages pinned to what the tests run."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import boto3
import pytest
from packaging.requirements import Requirement

from twin.aws.cfn import Stack, deploy_template, load_template, read_template_yaml

ROOT = Path(__file__).resolve().parents[2]
REPO_TEMPLATE = ROOT / "template.yaml"
LAYER_REQUIREMENTS = ROOT / "layers/kcluster/requirements.txt"


def deploy(parameters: dict | None = None) -> Stack:
    return deploy_template(
        load_template(REPO_TEMPLATE, {"ClusterName": "demo", **(parameters or {})}), "kcluster-demo"
    )


@pytest.fixture
def stack(aws) -> Stack:
    return deploy()


def test_the_reactor_s_queue_runs_a_bounded_number_of_batches_at_once(stack):
    # Lambda would add pollers while a backlog lasts, up to 1,000 concurrent batches
    (mapping,) = stack.event_source_mappings
    assert mapping.maximum_concurrency == 5


def test_the_bound_is_a_parameter(aws):
    (mapping,) = deploy({"ReactorMaximumConcurrency": "20"}).event_source_mappings
    assert mapping.maximum_concurrency == 20


def test_the_bound_takes_only_what_lambda_takes():
    # ScalingConfig.MaximumConcurrency: 2 to 1000; CloudFormation refuses anything else at deploy
    parameter = read_template_yaml(REPO_TEMPLATE)["Parameters"]["ReactorMaximumConcurrency"]
    assert (parameter["Type"], parameter["MinValue"], parameter["MaxValue"]) == ("Number", 2, 1000)


def test_the_reconciler_never_runs_twice_at_once_and_drops_a_tick_it_could_not_run(stack):
    reconciler = stack.functions["ReconcilerFunction"]
    assert reconciler.reserved_concurrency == 1
    assert (reconciler.maximum_retry_attempts, reconciler.maximum_event_age_seconds) == (0, 60)


def test_the_api_alarm_pages_on_alarm_and_when_its_metric_stops(stack):
    (alarm,) = boto3.client("cloudwatch").describe_alarms(
        AlarmNames=["kcluster-demo-no-ready-control-plane"]
    )["MetricAlarms"]
    topic = stack.physical_id("AlertsTopic")
    assert alarm["AlarmActions"] == [topic] and alarm["InsufficientDataActions"] == [topic]
    assert alarm["TreatMissingData"] == "missing"


def _pins() -> dict[str, str]:
    pins = {}
    for line in LAYER_REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", line
            pins[_key(requirement.name)] = specifier.version
    return pins


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(name: str, extras: tuple[str, ...]) -> set[str]:
    """Every distribution `name[extras]` pulls in, as installed here."""
    seen: set[str] = set()
    todo = [(name, extras)]
    while todo:
        current, wanted = todo.pop()
        if _key(current) in seen:
            continue
        seen.add(_key(current))
        for text in metadata.distribution(current).requires or []:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": extra}) for extra in (*wanted, "")):
                todo.append((requirement.name, tuple(requirement.extras)))
    return seen


def test_the_layer_ships_the_versions_the_tests_run():
    pins = _pins()
    for name, version in pins.items():
        assert metadata.version(name) == version, name
    shipped = _closure("aws-lambda-powertools", ("parser", "tracer"))
    # pydantic comes with the parser extra: the one the tests validate the events with
    assert {"pydantic", "pydantic-core"} <= pins.keys() & shipped
    # a botocore comes with the tracer extra and shadows the runtime's: pinned on purpose, with its boto3
    assert "botocore" in shipped
    assert {"botocore", "boto3"} <= pins.keys()
