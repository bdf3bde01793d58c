"""The SSM documents as Terraform planned them (twin/terraform/documents.py): the scripts the nodes run,
and the parameters SendCommand accepts for them. terraform/documents/ is read here only to check that
the plan carries those files unchanged."""

from __future__ import annotations

import json
import subprocess

import pytest
from moto.ssm.exceptions import SSMException

from tests.scripts.conftest import default_parameters
from twin.aws.runcommand import _validate_parameters as send_command_checks
from twin.terraform.documents import document_content, rendered_documents, script_text
from twin.terraform.runner import TERRAFORM_DIR

DOCUMENTS_DIR = TERRAFORM_DIR / "documents"
KEYS = sorted(json.loads((DOCUMENTS_DIR / "documents.json").read_text())["documents"])


def test_terraform_plans_one_document_per_definition() -> None:
    assert sorted(rendered_documents()) == KEYS


@pytest.mark.parametrize("key", KEYS)
def test_planned_script_parses_with_bash_n(key: str, tmp_path) -> None:
    # exactly what SSM runs (shellcheck of the same scripts: tests/iac/test_terraform_nodes.py)
    rendered = tmp_path / f"{key}.sh"
    rendered.write_text(script_text(key))
    result = subprocess.run(["bash", "-n", str(rendered)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("key", KEYS)
def test_planned_content_is_one_shell_step_of_the_script_files_with_env_var_parameters(key: str) -> None:
    content = document_content(key)
    assert content["schemaVersion"] == "2.2"
    assert content["parameters"]
    for name, parameter in content["parameters"].items():
        assert parameter["type"] == "String", name
        assert parameter["interpolationType"] == "ENV_VAR", name
        assert parameter["allowedPattern"].startswith("^") and parameter["allowedPattern"].endswith("$"), name
    (step,) = content["mainSteps"]
    assert step["action"] == "aws:runShellScript"
    assert step["name"] == key.replace("-", "")
    assert step["inputs"]["timeoutSeconds"] > 0
    # the files as written: the shared prelude, then the document's own script
    common = (DOCUMENTS_DIR / "common.sh").read_text()
    own = (DOCUMENTS_DIR / f"{key}.sh").read_text()
    assert script_text(key) == common + "\n" + own


@pytest.mark.parametrize("key", KEYS)
def test_the_script_checks_the_same_patterns_as_the_document(key: str) -> None:
    # every allowedPattern SendCommand checks appears verbatim in the bash prelude's pattern table
    script = script_text(key)
    for name, parameter in document_content(key)["parameters"].items():
        assert f"[{name}]='{parameter['allowedPattern']}'" in script


@pytest.mark.parametrize("key", KEYS)
def test_send_command_accepts_the_parameters_the_script_tests_give(key: str) -> None:
    given = {name: [value] for name, value in default_parameters(key).items()}
    assert send_command_checks(document_content(key)["parameters"], given) == given


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ClusterName": ["x;touch /tmp/pwned"]}, "ClusterName"),
        ({"ClusterName": ["demo\n"]}, "ClusterName"),
        ({"Surprise": ["1"]}, "Surprise"),
        ({"KubernetesVersion": None}, "KubernetesVersion"),
    ],
)
def test_send_command_refuses_a_bad_parameter_by_name(change: dict, message: str) -> None:
    params = {name: [value] for name, value in default_parameters("join-worker").items()}
    for name, value in change.items():
        if value is None:
            del params[name]
        else:
            params[name] = value
    with pytest.raises(SSMException, match=message) as refused:
        send_command_checks(document_content("join-worker")["parameters"], params)
    assert refused.value.code == "InvalidParameters"


def test_unknown_document_is_an_error() -> None:
    with pytest.raises(KeyError, match="format-disk"):
        document_content("format-disk")
