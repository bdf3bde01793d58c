"""The inputs and outputs tables of terraform/README.md (like terraform-docs): names, descriptions and
types as written in the HCL, defaults as Terraform evaluates them (its plan's configuration section).

python -m tests.iac.terraform_docs           # print the tables
python -m tests.iac.terraform_docs --write   # replace them in terraform/README.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lark import Token, Tree

from twin.terraform.hcl import TERRAFORM_DIR, Configuration, load_configuration, string_literal

README = TERRAFORM_DIR / "README.md"
BEGIN = "<!-- BEGIN_TF_DOCS -->"
END = "<!-- END_TF_DOCS -->"


def source_text(tree: Tree, file: Path) -> str:
    """The expression exactly as written in file, whitespace collapsed (for the type column)."""
    tokens = list(tree.scan_values(lambda value: isinstance(value, Token)))
    text = file.read_text()[tokens[0].start_pos : tokens[-1].end_pos]
    return " ".join(text.split())


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default(variable: dict[str, Any]) -> str:
    if "default" not in variable:
        return "n/a"
    return f"`{json.dumps(variable['default'])}`"


def planned_variables() -> dict[str, dict[str, Any]]:
    """The module's variables as Terraform reads them (the plan the twin deploys; defaults do not depend on
    the inputs given)."""
    from twin.terraform.deployment import planned_module

    variables: dict[str, dict[str, Any]] = planned_module("demo").plan["configuration"]["root_module"][
        "variables"
    ]
    return variables


def tables(configuration: Configuration, variables: dict[str, dict[str, Any]]) -> str:
    lines = ["## Inputs", "", "| Name | Description | Type | Default | Required |", "|---|---|---|---|:---:|"]
    for name in sorted(configuration.variables):
        block = configuration.variables[name]
        lines.append(
            f"| `{name}` | {_cell(string_literal(block.attributes['description']))} "
            f"| `{_cell(source_text(block.attributes['type'], block.file))}` | {_cell(_default(variables[name]))} "
            f"| {'no' if 'default' in variables[name] else 'yes'} |"
        )
    lines += ["", "## Outputs", "", "| Name | Description |", "|---|---|"]
    for name in sorted(configuration.outputs):
        description = string_literal(configuration.outputs[name].attributes["description"])
        lines.append(f"| `{name}` | {_cell(description)} |")
    return "\n".join(lines)


def rendered_readme(
    readme_text: str, configuration: Configuration, variables: dict[str, dict[str, Any]]
) -> str:
    before, rest = readme_text.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    return f"{before}{BEGIN}\n{tables(configuration, variables)}\n{END}{after}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update terraform/README.md in place")
    arguments = parser.parse_args(argv)
    configuration = load_configuration(TERRAFORM_DIR)
    variables = planned_variables()
    if arguments.write:
        README.write_text(rendered_readme(README.read_text(), configuration, variables))
    else:
        print(tables(configuration, variables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
