"""kcluster's SSM Command documents, built from terraform/documents/ exactly as Terraform builds them.

documents.json is the one description; a document's script is common.sh, a newline, then <key>.sh.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

DOCUMENTS_DIR = Path(__file__).resolve().parent.parent / "terraform" / "documents"
SCHEMA_VERSION = "2.2"


@cache
def load_documents() -> dict:
    """documents.json's "documents" mapping: key -> {description, timeout_seconds, parameters}."""
    return json.loads((DOCUMENTS_DIR / "documents.json").read_text())["documents"]


def _definition(key: str) -> dict:
    documents = load_documents()
    if key not in documents:
        raise KeyError(f"unknown document {key!r}; known: {sorted(documents)}")
    return documents[key]


def script_text(key: str) -> str:
    _definition(key)
    common = (DOCUMENTS_DIR / "common.sh").read_text()
    return common + "\n" + (DOCUMENTS_DIR / f"{key}.sh").read_text()


def step_name(key: str) -> str:
    return key.replace("-", "")


def document_content(key: str) -> dict:
    """The SSM document (schemaVersion 2.2) as a dict, ready for json.dumps as Content."""
    definition = _definition(key)
    return {
        "schemaVersion": SCHEMA_VERSION,
        "description": definition["description"],
        "parameters": {
            name: {
                "type": "String",
                "description": spec["description"],
                "allowedPattern": spec["allowedPattern"],
                "interpolationType": "ENV_VAR",
            }
            for name, spec in definition["parameters"].items()
        },
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": step_name(key),
                "inputs": {
                    "timeoutSeconds": definition["timeout_seconds"],
                    "runCommand": [script_text(key)],
                },
            }
        ],
    }


def validate_parameters(key: str, params: dict[str, list[str]]) -> None:
    """Refuse what SendCommand refuses: a missing, unknown or pattern-violating parameter.

    Values are lists, as SendCommand's Parameters are; each parameter here takes exactly one value.
    """
    declared = _definition(key)["parameters"]
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ValueError(f"document {key}: unknown parameter {unknown[0]}")
    for name, spec in declared.items():
        if name not in params:
            raise ValueError(f"document {key}: parameter {name} is missing")
        values = params[name]
        if not isinstance(values, list) or len(values) != 1 or not isinstance(values[0], str):
            raise ValueError(f"document {key}: parameter {name} must be a list of exactly one string")
        # allowedPattern is matched against the whole value, as SSM does; $ must not accept a newline.
        if re.fullmatch(spec["allowedPattern"].removesuffix("$"), values[0]) is None:
            raise ValueError(f"document {key}: parameter {name} does not match its allowedPattern")
