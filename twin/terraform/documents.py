"""kcluster's SSM Command documents as Terraform rendered them: the `content` of aws_ssm_document.node
in the module's applied plan (twin/terraform/plan.py).

The twin deploys this content (deploy.py) and its nodes run it through Run Command; the node-script
tests run the same scripts from here. Nothing re-renders terraform/documents/: what common.sh,
<key>.sh and documents.json become is Terraform's business (ssm.tf), read back from its plan.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from twin.terraform.deployment import planned_module
from twin.terraform.plan import Planned

# The cluster the node-script tests plan for; the documents' content does not depend on the name.
DEFAULT_CLUSTER = "demo"


def planned_documents(planned: Planned) -> dict[str, dict[str, Any]]:
    """Document key (the for_each key) -> the parsed content Terraform planned for it."""
    return {
        str(resource["index"]): json.loads(resource["values"]["content"])
        for resource in planned.resources()
        if (resource["mode"], resource["type"], resource["name"]) == ("managed", "aws_ssm_document", "node")
    }


@cache
def rendered_documents(cluster: str = DEFAULT_CLUSTER) -> dict[str, dict[str, Any]]:
    """The documents of the twin's plan for `cluster` (the plan is cached per module contents)."""
    return planned_documents(planned_module(cluster))


def document_content(key: str, cluster: str = DEFAULT_CLUSTER) -> dict[str, Any]:
    documents = rendered_documents(cluster)
    if key not in documents:
        raise KeyError(f"unknown document {key!r}; Terraform planned {sorted(documents)}")
    return documents[key]


def script_text(key: str, cluster: str = DEFAULT_CLUSTER) -> str:
    """The one shell step's script, as Run Command hands it to the instance (runCommand lines joined)."""
    (step,) = document_content(key, cluster)["mainSteps"]
    commands: list[str] = step["inputs"]["runCommand"]
    return "\n".join(commands)
