"""terraform/ as written: it parses, every input and output is documented, the versions are pinned, the
example passes only declared inputs. What Terraform itself checks (references, types, validations) is
checked by real Terraform (test_terraform_real.py)."""

from __future__ import annotations

import re
from pathlib import Path

import hcl2
import pytest

from twin.terraform.hcl import EXAMPLE_DIRS, TERRAFORM_DIR, Configuration, load_configuration, string_literal
from twin.terraform.plan import Planned

CONFIGURATION_DIRS = (TERRAFORM_DIR, *EXAMPLE_DIRS)


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


def test_versions_pin_terraform_and_the_aws_provider_major(twin_plan: Planned):
    configuration = load_configuration(TERRAFORM_DIR)
    (terraform,) = [block for block in configuration.other_blocks if block.type == "terraform"]
    assert string_literal(terraform.attributes["required_version"]) == ">= 1.5.0"
    aws = twin_plan.plan["configuration"]["provider_config"]["aws"]
    assert aws["full_name"] == "registry.terraform.io/hashicorp/aws"
    # "~> N.0" allows every N.x release and nothing of N+1.
    assert re.fullmatch(r"~> [0-9]+\.0", aws["version_constraint"]), aws["version_constraint"]


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
