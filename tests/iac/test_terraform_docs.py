"""terraform/README.md documents every input and output as they are declared now."""

from __future__ import annotations

from tests.iac.terraform_docs import BEGIN, END, README, rendered_readme, tables
from twin.terraform.hcl import TERRAFORM_DIR, load_configuration


def test_readme_tables_are_up_to_date(twin_plan):
    readme = README.read_text()
    assert readme.count(BEGIN) == 1 and readme.count(END) == 1
    variables = twin_plan.plan["configuration"]["root_module"]["variables"]
    assert rendered_readme(readme, load_configuration(TERRAFORM_DIR), variables) == readme, (
        "run: .venv/bin/python -m tests.iac.terraform_docs --write"
    )


def test_tables_list_every_variable_and_output(twin_plan):
    configuration = load_configuration(TERRAFORM_DIR)
    generated = tables(configuration, twin_plan.plan["configuration"]["root_module"]["variables"])
    for name in [*configuration.variables, *configuration.outputs]:
        assert f"| `{name}` |" in generated, name
    required_rows = [line for line in generated.splitlines() if line.endswith("| yes |")]
    assert sorted(row.split("`")[1] for row in required_rows) == ["cluster_name", "subnet_ids", "vpc_id"]


def test_readme_says_what_was_not_run_against_real_aws():
    assert "## Not run against real AWS" in README.read_text()
