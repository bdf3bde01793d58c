"""The module's IAM and KMS key policies rendered as JSON (as the AWS provider renders an
aws_iam_policy_document, dynamic statement blocks included) and a small evaluator of who may do what.

The evaluator follows AWS's rules for what the module uses, and refuses anything else: an explicit
Deny wins; identity policies are Allow/Deny with Action/NotAction, Resource/NotResource (wildcards) and
StringEquals/StringLike/ArnLike conditions (a missing context key fails the condition); a KMS key's
own policy must allow the caller, directly or by naming the account root (then the caller's identity
policies must allow too). Permissions boundaries and SCPs are not modelled.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from twin.terraform.evaluator import TerraformEvaluator
from twin.terraform.hcl import Block

_LISTS = {
    "actions": "Action",
    "not_actions": "NotAction",
    "resources": "Resource",
    "not_resources": "NotResource",
}


def render_policy_document(evaluator: TerraformEvaluator, name: str) -> dict[str, Any]:
    """data.aws_iam_policy_document.<name> (its one instance when it has count) as policy JSON."""
    instance = evaluator.resource("aws_iam_policy_document", name, data=True)
    if isinstance(instance, list):
        (instance,) = instance
    statements = []
    for inner in instance.block.blocks:
        if inner.type == "statement":
            statements.append(_statement(evaluator, inner, {}))
        elif inner.type == "dynamic" and inner.labels == ("statement",):
            collection = evaluator.evaluate(inner.attributes["for_each"], {})
            items = collection.items() if isinstance(collection, dict) else enumerate(collection)
            (content,) = inner.blocks_of("content")
            for key, value in items:
                statements.append(_statement(evaluator, content, {"statement": {"key": key, "value": value}}))
        else:
            raise ValueError(f"unsupported block {inner.type} in aws_iam_policy_document.{name}")
    return {"Version": "2012-10-17", "Statement": statements}


def _statement(evaluator: TerraformEvaluator, block: Block, scope: Mapping[str, Any]) -> dict[str, Any]:
    values = {key: evaluator.evaluate(expr, scope) for key, expr in block.attributes.items()}
    statement: dict[str, Any] = {"Effect": values.get("effect", "Allow")}
    if "sid" in values:
        statement["Sid"] = values["sid"]
    for attribute, key in _LISTS.items():
        if attribute in values:
            statement[key] = list(values[attribute])
    for block_type, key in (("principals", "Principal"), ("not_principals", "NotPrincipal")):
        for principal in block.blocks_of(block_type):
            fields = {k: evaluator.evaluate(e, scope) for k, e in principal.attributes.items()}
            statement.setdefault(key, {}).setdefault(fields["type"], []).extend(fields["identifiers"])
    conditions: dict[str, dict[str, list[str]]] = {}
    for condition in block.blocks_of("condition"):
        fields = {k: evaluator.evaluate(e, scope) for k, e in condition.attributes.items()}
        conditions.setdefault(fields["test"], {}).setdefault(fields["variable"], []).extend(fields["values"])
    if conditions:
        statement["Condition"] = conditions
    unknown = set(values) - {"sid", "effect", *_LISTS}
    if unknown or block.blocks_of("dynamic"):
        raise ValueError(f"statement attributes not modelled: {sorted(unknown)}")
    return statement


@cache
def aws_managed_policy(name: str) -> dict[str, Any]:
    """An AWS managed policy's document, as moto ships it."""
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    return json.loads(aws_managed_policies_data)[name]["Document"]


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _like(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    if ignore_case:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern)


def _conditions_hold(conditions: Mapping[str, Mapping[str, list[str]]], context: Mapping[str, str]) -> bool:
    lowered = {key.lower(): value for key, value in context.items()}
    for operator, tests in conditions.items():
        for key, wanted in tests.items():
            actual = lowered.get(key.lower())
            if actual is None:
                return False
            if operator == "StringEquals":
                ok = actual in wanted
            elif operator in ("StringLike", "ArnLike"):
                ok = any(_like(pattern, actual) for pattern in wanted)
            else:
                raise ValueError(f"condition operator {operator} is not modelled")
            if not ok:
                return False
    return True


def _applies(
    statement: Mapping[str, Any],
    action: str,
    resource: str,
    context: Mapping[str, str],
    principal: str | None,
) -> bool:
    if "Action" in statement:
        if not any(_like(pattern, action, ignore_case=True) for pattern in _as_list(statement["Action"])):
            return False
    elif any(_like(pattern, action, ignore_case=True) for pattern in _as_list(statement["NotAction"])):
        return False
    if "Resource" in statement:
        if not any(_like(pattern, resource) for pattern in _as_list(statement["Resource"])):
            return False
    elif any(_like(pattern, resource) for pattern in _as_list(statement["NotResource"])):
        return False
    if principal is not None:
        if "NotPrincipal" in statement:
            raise ValueError("NotPrincipal is not modelled")
        named = statement.get("Principal", {})
        if named != "*" and principal not in _as_list(named.get("AWS", [])):
            return False
    return _conditions_hold(statement.get("Condition", {}), context)


def decision(
    documents: Iterable[Mapping[str, Any]],
    action: str,
    resource: str,
    context: Mapping[str, str] | None = None,
    principal: str | None = None,
) -> str | None:
    """ "Deny", "Allow" or None (implicit deny) of a set of policies for one request."""
    result = None
    for document in documents:
        for statement in document["Statement"]:
            if _applies(statement, action, resource, context or {}, principal):
                if statement["Effect"] == "Deny":
                    return "Deny"
                result = "Allow"
    return result


def identity_allows(documents: Iterable[Mapping[str, Any]], action: str, resource: str, context=None) -> bool:
    return decision(list(documents), action, resource, context) == "Allow"


def kms_allows(
    key_policy: Mapping[str, Any],
    account_root: str,
    principal: str,
    identity: Iterable[Mapping[str, Any]],
    action: str,
    key_arn: str,
    context: Mapping[str, str],
) -> bool:
    """A KMS request by `principal` (identity policies `identity`) on the key with `key_policy`."""
    identity = list(identity)
    if decision(identity, action, key_arn, context) == "Deny":
        return False
    direct = decision([key_policy], action, key_arn, context, principal=principal)
    if direct == "Deny" or decision([key_policy], action, key_arn, context, principal=account_root) == "Deny":
        return False
    if direct == "Allow":
        return True
    delegated = decision([key_policy], action, key_arn, context, principal=account_root) == "Allow"
    return delegated and decision(identity, action, key_arn, context) == "Allow"
