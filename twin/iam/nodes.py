"""The node roles' policies as terraform/iam.tf renders them, for the twin to enforce.

Read from the module itself through the offline evaluator (twin/terraform/), never restated: each
`aws_iam_role.node` instance, its inline policy rendered from its `aws_iam_policy_document` by
twin/terraform/policy_documents.py (the renderer the module's own tests read it through too), its
attached AWS managed policies (their real documents, which moto ships) and its permissions boundary.
What only AWS knows at apply time (the account id, the region, ARNs of what the module creates) is
filled in from the twin's deployment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from twin.iam.identities import aws_managed_policy
from twin.iam.policy import NamedPolicy
from twin.terraform.evaluator import ResourceInstance, TerraformEvaluator, computed_placeholder
from twin.terraform.hcl import TERRAFORM_DIR, load_configuration
from twin.terraform.policy_documents import fill, render_policy_document

_ROLE_KEYS = {"control_plane": "control-plane", "worker": "worker"}


@dataclass(frozen=True)
class NodeIamInputs:
    variables: Mapping[str, Any]  # the module's input variables
    known: Mapping[str, str]  # computed placeholder -> the value AWS gave it in the twin


def known_values(account: str, region: str, extra: Mapping[tuple[str, ...], str]) -> dict[str, str]:
    """Placeholders of the data sources every module reads, plus `extra` (address + attribute -> value)."""
    values = {
        ("data", "aws_caller_identity", "current", "account_id"): account,
        ("data", "aws_partition", "current", "partition"): "aws",
        ("data", "aws_region", "current", "name"): region,
        ("data", "aws_region", "current", "region"): region,
        **extra,
    }
    return {computed_placeholder(*address): value for address, value in values.items()}


# The operator's role in the twin: an administrator, named in the module's admin_principal_arns.
OPERATOR_ROLE_NAME = "kcluster-operator"


def operator_role_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:role/{OPERATOR_ROLE_NAME}"


def module_inputs(
    cluster: str,
    account: str,
    region: str,
    vpc_id: str,
    subnet_ids: list[str],
    known_attributes: Mapping[tuple[str, ...], str] | None = None,
) -> NodeIamInputs:
    """The module's inputs as the twin deploys it, and what AWS named what the module creates (the node
    roles, and whatever else the deployment already knows)."""
    variables = {
        "cluster_name": cluster,
        "vpc_id": vpc_id,
        "subnet_ids": list(subnet_ids),
        # As a user deploys it: their administrators' role may decrypt the admin kubeconfig.
        "admin_principal_arns": [operator_role_arn(account)],
    }
    extra = {
        ("aws_iam_role", "node", key, "arn"): f"arn:aws:iam::{account}:role/kcluster-{cluster}-{role}"
        for key, role in _ROLE_KEYS.items()
    }
    extra |= dict(known_attributes or {})
    return NodeIamInputs(variables, known_values(account, region, extra))


def node_roles(inputs: NodeIamInputs) -> dict[str, tuple[str, tuple[NamedPolicy, ...], NamedPolicy | None]]:
    """role ("control-plane" | "worker") -> (role name, identity policies, permissions boundary)."""
    evaluator = TerraformEvaluator(load_configuration(TERRAFORM_DIR), dict(inputs.variables))
    roles: dict[str, ResourceInstance] = evaluator.resource("aws_iam_role", "node")
    inline: dict[str, ResourceInstance] = evaluator.resource("aws_iam_role_policy", "node")
    attachments = _attachments(evaluator)
    found = {}
    for key, role in roles.items():
        name = fill(role.attribute("name"), inputs.known)
        policies = [
            NamedPolicy(
                f"node-{key}/{fill(inline[key].attribute('name'), inputs.known)}",
                _document(evaluator, inline[key].attribute("policy"), inputs.known),
            )
        ]
        policies += [aws_managed_policy(fill(arn, inputs.known)) for arn in attachments.get(key, [])]
        boundary_arn = (
            role.attribute("permissions_boundary")
            if "permissions_boundary" in role.block.attributes
            else None
        )
        boundary = aws_managed_policy(boundary_arn) if boundary_arn else None
        found[_ROLE_KEYS[key]] = (name, tuple(policies), boundary)
    return found


def kms_key_policy(inputs: NodeIamInputs) -> dict[str, Any]:
    """The key policy terraform/kms.tf gives the cluster's own key (the module creates it by default)."""
    evaluator = TerraformEvaluator(load_configuration(TERRAFORM_DIR), dict(inputs.variables))
    return render_policy_document(evaluator, "kms_key", inputs.known)


def _attachments(evaluator: TerraformEvaluator) -> dict[str, list[str]]:
    attached: dict[str, list[str]] = {}
    for (resource_type, name), _block in evaluator.configuration.resources.items():
        if resource_type != "aws_iam_role_policy_attachment":
            continue
        for key, instance in evaluator.resource(resource_type, name).items():
            attached.setdefault(key, []).append(instance.attribute("policy_arn"))
    return attached


def _document(evaluator: TerraformEvaluator, reference: str, known: Mapping[str, str]) -> dict[str, Any]:
    """The JSON of the `aws_iam_policy_document` a `.json` reference names, rendered like the provider."""
    prefix, suffix = "data-aws-iam-policy-document-", "-json.computed.invalid"
    if not (reference.startswith(prefix) and reference.endswith(suffix)):
        raise LookupError(f"policy {reference!r} is not an aws_iam_policy_document's json")
    name = reference[len(prefix) : -len(suffix)].replace("-", "_")
    return render_policy_document(evaluator, name, known)
