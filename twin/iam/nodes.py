"""The node roles' policies as terraform/iam.tf renders them, for the twin to enforce.

Read from the module itself through the offline evaluator (twin/terraform/), never restated: each
`aws_iam_role.node` instance, its inline policy rendered from its `aws_iam_policy_document` as the AWS
provider renders one (statement blocks -> JSON), its attached AWS managed policies (their real
documents, which moto ships) and its permissions boundary. What only AWS knows at apply time (the
account id, the region, ARNs of what the module creates) is filled in from the twin's deployment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from twin.iam.identities import aws_managed_policy
from twin.iam.policy import NamedPolicy
from twin.terraform.evaluator import ResourceInstance, TerraformEvaluator, computed_placeholder
from twin.terraform.hcl import TERRAFORM_DIR, load_configuration

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


def node_roles(inputs: NodeIamInputs) -> dict[str, tuple[str, tuple[NamedPolicy, ...], NamedPolicy | None]]:
    """role ("control-plane" | "worker") -> (role name, identity policies, permissions boundary)."""
    evaluator = TerraformEvaluator(load_configuration(TERRAFORM_DIR), dict(inputs.variables))
    roles: dict[str, ResourceInstance] = evaluator.resource("aws_iam_role", "node")
    inline: dict[str, ResourceInstance] = evaluator.resource("aws_iam_role_policy", "node")
    attachments = _attachments(evaluator)
    found = {}
    for key, role in roles.items():
        name = _fill(role.attribute("name"), inputs.known)
        policies = [
            NamedPolicy(
                f"node-{key}/{_fill(inline[key].attribute('name'), inputs.known)}",
                _document(evaluator, inline[key].attribute("policy"), inputs.known),
            )
        ]
        policies += [aws_managed_policy(_fill(arn, inputs.known)) for arn in attachments.get(key, [])]
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
    (document,) = evaluator.resource("aws_iam_policy_document", "kms_key", data=True)
    return _render(evaluator, document, inputs.known)


def _attachments(evaluator: TerraformEvaluator) -> dict[str, list[str]]:
    attached: dict[str, list[str]] = {}
    for (resource_type, name), _block in evaluator.configuration.resources.items():
        if resource_type != "aws_iam_role_policy_attachment":
            continue
        for key, instance in evaluator.resource(resource_type, name).items():
            attached.setdefault(key, []).append(instance.attribute("policy_arn"))
    return attached


def _fill(value: Any, known: Mapping[str, str]) -> Any:
    """Replace every computed placeholder inside `value` (strings, lists, maps) by its known value."""
    if isinstance(value, str):
        for placeholder, real in known.items():
            value = value.replace(placeholder, real)
        if ".computed.invalid" in value:
            raise LookupError(f"a value known only after apply is not known to the twin: {value}")
        return value
    if isinstance(value, list):
        return [_fill(item, known) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, known) for key, item in value.items()}
    return value


def _document(evaluator: TerraformEvaluator, reference: str, known: Mapping[str, str]) -> dict[str, Any]:
    """The JSON of the `aws_iam_policy_document` a `.json` reference names, rendered like the provider."""
    prefix, suffix = "data-aws-iam-policy-document-", "-json.computed.invalid"
    if not (reference.startswith(prefix) and reference.endswith(suffix)):
        raise LookupError(f"policy {reference!r} is not an aws_iam_policy_document's json")
    name = reference[len(prefix) : -len(suffix)].replace("-", "_")
    return _render(evaluator, evaluator.resource("aws_iam_policy_document", name, data=True), known)


def _render(
    evaluator: TerraformEvaluator, document: ResourceInstance, known: Mapping[str, str]
) -> dict[str, Any]:
    statements = [_statement(evaluator, block, known) for block in document.block.blocks_of("statement")]
    return {"Version": "2012-10-17", "Statement": statements}


_LISTS = {
    "actions": "Action",
    "not_actions": "NotAction",
    "resources": "Resource",
    "not_resources": "NotResource",
}


def _statement(evaluator: TerraformEvaluator, block: Any, known: Mapping[str, str]) -> dict[str, Any]:
    values = {key: _fill(evaluator.evaluate(expr, {}), known) for key, expr in block.attributes.items()}
    statement: dict[str, Any] = {"Effect": values.get("effect", "Allow")}
    if "sid" in values:
        statement["Sid"] = values["sid"]
    for attribute, key in _LISTS.items():
        if attribute in values:
            statement[key] = (
                sorted(values[attribute]) if len(values[attribute]) != 1 else values[attribute][0]
            )
    for block_type, key in (("principals", "Principal"), ("not_principals", "NotPrincipal")):
        for principal in block.blocks_of(block_type):
            fields = {k: _fill(evaluator.evaluate(e, {}), known) for k, e in principal.attributes.items()}
            statement.setdefault(key, {}).setdefault(fields["type"], []).extend(fields["identifiers"])
    conditions: dict[str, dict[str, list[str]]] = {}
    for condition in block.blocks_of("condition"):
        fields = {k: _fill(evaluator.evaluate(e, {}), known) for k, e in condition.attributes.items()}
        conditions.setdefault(fields["test"], {}).setdefault(fields["variable"], []).extend(fields["values"])
    if conditions:
        statement["Condition"] = conditions
    return statement
