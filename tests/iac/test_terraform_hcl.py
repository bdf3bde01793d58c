"""terraform/ without a Terraform binary: it parses, is documented, and every name it uses is declared."""

from __future__ import annotations

import re
from pathlib import Path

import hcl2
import pytest

from twin.terraform.evaluator import TerraformEvaluator
from twin.terraform.hcl import (
    EXAMPLE_DIRS,
    TERRAFORM_DIR,
    Configuration,
    Reference,
    block_references,
    iter_references,
    load_configuration,
    string_literal,
)

CONFIGURATION_DIRS = (TERRAFORM_DIR, *EXAMPLE_DIRS)
ALWAYS_DEFINED_ROOTS = {"path", "terraform"}


def _configuration_id(directory: Path) -> str:
    return str(directory.relative_to(TERRAFORM_DIR.parent))


@pytest.fixture(params=CONFIGURATION_DIRS, ids=_configuration_id)
def configuration(request) -> Configuration:
    return load_configuration(request.param)


def test_every_terraform_file_parses_with_python_hcl2():
    files = sorted(TERRAFORM_DIR.rglob("*.tf"))
    assert len(files) >= 8
    for path in files:
        with path.open() as handle:
            parsed = hcl2.load(handle)
        assert parsed, f"{path} is empty"


def test_versions_pin_terraform_and_the_aws_provider_major(configuration: Configuration):
    (terraform,) = [block for block in configuration.other_blocks if block.type == "terraform"]
    assert string_literal(terraform.attributes["required_version"]) == ">= 1.5.0"
    (providers,) = terraform.blocks_of("required_providers")
    aws = TerraformEvaluator(configuration).evaluate(providers.attributes["aws"], {})
    assert aws["source"] == "hashicorp/aws"
    # "~> N.0" allows every N.x release and nothing of N+1.
    assert re.fullmatch(r"~> [0-9]+\.0", aws["version"]), aws["version"]


def test_every_variable_has_a_description_and_a_type(configuration: Configuration):
    assert configuration.variables
    for name, block in configuration.variables.items():
        description = (
            string_literal(block.attributes.get("description")) if "description" in block.attributes else None
        )
        assert description and description.strip(), f"variable {name} has no description"
        assert "type" in block.attributes, f"variable {name} has no type"


def test_every_output_has_a_description(configuration: Configuration):
    assert configuration.outputs
    for name, block in configuration.outputs.items():
        assert "description" in block.attributes, f"output {name} has no description"
        assert string_literal(block.attributes["description"]), f"output {name}: description is not a string"


def _unresolved(configuration: Configuration, reference: Reference, *, in_for_each: bool) -> str | None:
    root, attributes = reference.root, reference.attributes
    first = attributes[0] if attributes else None
    if root == "var":
        return None if first in configuration.variables else f"undeclared variable {reference}"
    if root == "local":
        return None if first in configuration.locals else f"undeclared local {reference}"
    if root == "module":
        return None if first in configuration.modules else f"undeclared module {reference}"
    if root == "data":
        key = tuple(attributes[:2])
        return None if key in configuration.data else f"undeclared data source {reference}"
    if root == "each":
        return None if in_for_each else f"{reference} outside a for_each block"
    if root in ALWAYS_DEFINED_ROOTS:
        return None
    if (root, first) in configuration.resources:
        return None
    return f"{reference} names nothing declared"


def test_every_reference_resolves(configuration: Configuration):
    problems = []
    for block in configuration.all_blocks():
        in_for_each = "for_each" in block.attributes
        for reference in block_references(block):
            problem = _unresolved(configuration, reference, in_for_each=in_for_each)
            if problem:
                problems.append(f"{reference.file.name}: {problem}")
    for name, expression in configuration.locals.items():
        for reference in iter_references(expression, frozenset(), configuration.directory):
            problem = _unresolved(configuration, reference, in_for_each=False)
            if problem:
                problems.append(f"local.{name}: {problem}")
    assert problems == []


def test_reference_check_catches_a_misspelt_name(tmp_path: Path):
    (tmp_path / "main.tf").write_text(
        'variable "name" {\n  description = "d"\n  type = string\n}\n'
        'resource "aws_sqs_queue" "q" {\n  name = "${var.nmae}-${local.missing}"\n'
        "  tags = { for k, v in var.name : k => aws_sns_topic.t.arn }\n}\n"
    )
    configuration = load_configuration(tmp_path)
    found = [
        _unresolved(configuration, reference, in_for_each=False)
        for block in configuration.all_blocks()
        for reference in block_references(block)
    ]
    assert sorted(problem for problem in found if problem) == [
        "aws_sns_topic.t.arn names nothing declared",
        "undeclared local local.missing",
        "undeclared variable var.nmae",
    ]


@pytest.mark.parametrize("example", EXAMPLE_DIRS, ids=_configuration_id)
def test_example_passes_only_declared_inputs_and_every_required_one(example: Path):
    module_configuration = load_configuration(TERRAFORM_DIR)
    required = {
        name for name, block in module_configuration.variables.items() if "default" not in block.attributes
    }
    example_configuration = load_configuration(example)
    (module,) = example_configuration.modules.values()
    source = string_literal(module.attributes["source"])
    assert (example / source).resolve() == TERRAFORM_DIR
    inputs = set(module.attributes) - {"source", "version", "providers", "depends_on", "count", "for_each"}
    assert inputs - set(module_configuration.variables) == set()
    assert required - inputs == set()


VALID_INPUTS = {
    "cluster_name": "demo",
    "vpc_id": "vpc-0123456789abcdef0",
    "subnet_ids": ["subnet-0000000000000000a", "subnet-0000000000000000b", "subnet-0000000000000000c"],
}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("cluster_name", "Demo_Cluster"),
        ("cluster_name", "a"),
        ("cluster_name", "x" * 33),
        ("kubernetes_version", "v1.33.5"),
        ("kubernetes_version", "1.33"),
        ("control_plane_desired_capacity", 2),
        ("control_plane_desired_capacity", 0),
        ("worker_desired_capacity", 0),
        ("control_plane_min_size", 0),
        ("pod_cidr", "10.244.0.1/16"),
        ("service_cidr", "not-a-cidr"),
        ("api_allowed_cidrs", ["10.0.0.0/8", "300.0.0.0/8"]),
        ("subnet_ids", ["subnet-0000000000000000a", "subnet-0000000000000000b"]),
        ("subnet_ids", ["subnet-0000000000000000a", "subnet-0000000000000000a", "subnet-0000000000000000b"]),
        ("vpc_id", "my-vpc"),
        ("cni_version", "3.29.1"),
        ("cni_manifest_url", "http://example.com/calico.yaml"),
        ("join_token_ttl", "15s"),
        ("max_attempts", 0),
        ("worker_batch_size", 51),
        ("architecture", "x86_64"),
        ("timeouts", {"heartbeat_interval_seconds": 900}),
        ("timeouts", {"lease_seconds": 60}),
    ],
)
def test_variable_validation_rejects_what_users_get_wrong(variable: str, value):
    configuration = load_configuration(TERRAFORM_DIR)
    evaluator = TerraformEvaluator(configuration, {**VALID_INPUTS, variable: value})
    assert evaluator.validation_errors(variable), f"{variable}={value!r} was accepted"


def test_variable_validation_accepts_the_defaults_and_sensible_values():
    configuration = load_configuration(TERRAFORM_DIR)
    overrides = {
        **VALID_INPUTS,
        "control_plane_desired_capacity": 5,
        "api_allowed_cidrs": ["203.0.113.0/24"],
        "timeouts": {"drain_seconds": 600},
        "kubernetes_version": "1.32.10",
    }
    evaluator = TerraformEvaluator(configuration, overrides)
    assert {name: evaluator.validation_errors(name) for name in configuration.variables} == {
        name: [] for name in configuration.variables
    }
