"""The SSM documents built from terraform/documents/, and the rendered scripts' shellcheck."""

from __future__ import annotations

import subprocess

import pytest

from tests.scripts.conftest import default_parameters
from twin.documents import DOCUMENTS_DIR, document_content, load_documents, script_text, validate_parameters

KEYS = sorted(load_documents())


@pytest.mark.parametrize("key", KEYS)
def test_rendered_script_passes_shellcheck(key: str, tmp_path) -> None:
    rendered = tmp_path / f"{key}.sh"
    rendered.write_text(script_text(key))
    result = subprocess.run(["shellcheck", "-s", "bash", str(rendered)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("key", KEYS)
def test_rendered_script_parses_with_bash_n(key: str, tmp_path) -> None:
    # the script as deployed: common.sh followed by the document's own, exactly what SSM runs
    rendered = tmp_path / f"{key}.sh"
    rendered.write_text(document_content(key)["mainSteps"][0]["inputs"]["runCommand"][0])
    result = subprocess.run(["bash", "-n", str(rendered)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("key", KEYS)
def test_document_content_is_one_shell_step_with_env_var_parameters(key: str) -> None:
    content = document_content(key)
    definition = load_documents()[key]
    assert content["schemaVersion"] == "2.2"
    assert content["description"] == definition["description"]
    assert set(content["parameters"]) == set(definition["parameters"])
    for name, parameter in content["parameters"].items():
        assert parameter == {
            "type": "String",
            "description": definition["parameters"][name]["description"],
            "allowedPattern": definition["parameters"][name]["allowedPattern"],
            "interpolationType": "ENV_VAR",
        }
    (step,) = content["mainSteps"]
    assert step["action"] == "aws:runShellScript"
    assert step["name"] == key.replace("-", "")
    assert step["inputs"]["timeoutSeconds"] == definition["timeout_seconds"]
    common = (DOCUMENTS_DIR / "common.sh").read_text()
    own = (DOCUMENTS_DIR / f"{key}.sh").read_text()
    assert step["inputs"]["runCommand"] == [common + "\n" + own]


@pytest.mark.parametrize("key", KEYS)
def test_the_script_checks_the_same_patterns_as_the_document(key: str) -> None:
    # every allowedPattern appears verbatim in the bash prelude's pattern table
    common = (DOCUMENTS_DIR / "common.sh").read_text()
    for name, spec in load_documents()[key]["parameters"].items():
        assert f"[{name}]='{spec['allowedPattern']}'" in common


@pytest.mark.parametrize("key", KEYS)
def test_validate_parameters_accepts_the_defaults(key: str) -> None:
    validate_parameters(key, {name: [value] for name, value in default_parameters(key).items()})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ClusterName": ["x;touch /tmp/pwned"]}, "ClusterName"),
        ({"ClusterName": ["demo\n"]}, "ClusterName"),
        ({"ClusterName": ["demo", "other"]}, "ClusterName"),
        ({"Surprise": ["1"]}, "Surprise"),
        ({"KubernetesVersion": None}, "KubernetesVersion"),
    ],
)
def test_validate_parameters_names_the_bad_parameter(change: dict, message: str) -> None:
    params = {name: [value] for name, value in default_parameters("join-worker").items()}
    for name, value in change.items():
        if value is None:
            del params[name]
        else:
            params[name] = value
    with pytest.raises(ValueError, match=message):
        validate_parameters("join-worker", params)


def test_unknown_document_is_an_error() -> None:
    with pytest.raises(KeyError):
        document_content("format-disk")
