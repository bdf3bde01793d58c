"""`aws_iam_policy_document` data sources rendered to policy JSON, as the AWS provider renders them.

The one renderer both the twin (twin/iam/nodes.py: the policies it enforces) and the module's tests
(tests/iac: who may do what) read the module's policies through, so the two cannot disagree about what
terraform/ grants. Static and `dynamic "statement"` blocks are rendered; anything else in a document
raises instead of being dropped, since a silently missing statement would misstate what AWS enforces.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from twin.terraform.evaluator import TerraformEvaluator
from twin.terraform.hcl import Block

__all__ = ["fill", "render_policy_document"]

_LISTS = {
    "actions": "Action",
    "not_actions": "NotAction",
    "resources": "Resource",
    "not_resources": "NotResource",
}
_PRINCIPALS = {"principals": "Principal", "not_principals": "NotPrincipal"}
_ATTRIBUTES = frozenset({"sid", "effect", *_LISTS})
_BLOCKS = frozenset({"condition", *_PRINCIPALS})

Known = Mapping[str, str] | None


def render_policy_document(evaluator: TerraformEvaluator, name: str, known: Known = None) -> dict[str, Any]:
    """data.aws_iam_policy_document.<name> (its one instance when it has count) as policy JSON.

    With `known` (computed placeholder -> real value) every value known only after apply is filled
    in, and a placeholder missing from it raises; without `known` the placeholders stay as they are
    (tests that check which resource a statement names compare them).
    """
    instance = evaluator.resource("aws_iam_policy_document", name, data=True)
    if isinstance(instance, list):
        (instance,) = instance
    statements = [
        _statement(evaluator, block, scope, known)
        for inner in instance.block.blocks
        for block, scope in _statement_blocks(evaluator, inner, name)
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def fill(value: Any, known: Mapping[str, str]) -> Any:
    """Replace every computed placeholder inside `value` (strings, lists, maps) by its known value."""
    if isinstance(value, str):
        for placeholder, real in known.items():
            value = value.replace(placeholder, real)
        if ".computed.invalid" in value:
            raise LookupError(f"a value known only after apply is not known: {value}")
        return value
    if isinstance(value, list):
        return [fill(item, known) for item in value]
    if isinstance(value, dict):
        return {key: fill(item, known) for key, item in value.items()}
    return value


def _statement_blocks(
    evaluator: TerraformEvaluator, inner: Block, document: str
) -> Iterator[tuple[Block, dict[str, Any]]]:
    """(statement body, scope to evaluate it in): a static block once, a dynamic one per element."""
    if inner.type == "statement":
        yield inner, {}
    elif inner.type == "dynamic" and inner.labels == ("statement",) and "iterator" not in inner.attributes:
        collection = evaluator.evaluate(inner.attributes["for_each"], {})
        items = collection.items() if isinstance(collection, dict) else enumerate(collection)
        (content,) = inner.blocks_of("content")
        for key, value in items:
            yield content, {"statement": {"key": key, "value": value}}
    else:
        raise ValueError(f"aws_iam_policy_document.{document}: {inner.type} {inner.labels} is not modelled")


def _values(
    evaluator: TerraformEvaluator, block: Block, scope: Mapping[str, Any], known: Known
) -> dict[str, Any]:
    values = {key: evaluator.evaluate(expr, scope) for key, expr in block.attributes.items()}
    return values if known is None else fill(values, known)


def _statement(
    evaluator: TerraformEvaluator, block: Block, scope: Mapping[str, Any], known: Known
) -> dict[str, Any]:
    values = _values(evaluator, block, scope, known)
    unknown = (set(values) - _ATTRIBUTES) | ({inner.type for inner in block.blocks} - _BLOCKS)
    if unknown:
        raise ValueError(f"statement arguments or blocks not modelled: {sorted(unknown)}")
    statement: dict[str, Any] = {"Effect": values.get("effect", "Allow")}
    if "sid" in values:
        statement["Sid"] = values["sid"]
    for attribute, key in _LISTS.items():
        if attribute in values:
            statement[key] = _set_json(values[attribute])
    for block_type, key in _PRINCIPALS.items():
        if block.blocks_of(block_type):
            principals = _principals(evaluator, block.blocks_of(block_type), scope, known)
            # The provider writes type "*" with identifiers ["*"] as the bare "*" (everyone).
            statement[key] = "*" if principals == {"*": ["*"]} else principals
    if block.blocks_of("condition"):
        statement["Condition"] = _conditions(evaluator, block.blocks_of("condition"), scope, known)
    return statement


def _principals(
    evaluator: TerraformEvaluator, blocks: list[Block], scope: Mapping[str, Any], known: Known
) -> dict[str, list[str]]:
    """type -> identifiers, blocks of the same type merged as the provider merges them."""
    principals: dict[str, list[str]] = {}
    for block in blocks:
        fields = _values(evaluator, block, scope, known)
        principals.setdefault(fields["type"], []).extend(fields["identifiers"])
    return principals


def _conditions(
    evaluator: TerraformEvaluator, blocks: list[Block], scope: Mapping[str, Any], known: Known
) -> dict[str, dict[str, list[str]]]:
    """test -> variable -> values, condition blocks grouped the way the provider groups them."""
    conditions: dict[str, dict[str, list[str]]] = {}
    for block in blocks:
        fields = _values(evaluator, block, scope, known)
        conditions.setdefault(fields["test"], {}).setdefault(fields["variable"], []).extend(fields["values"])
    return conditions


def _set_json(values: list[str]) -> str | list[str]:
    # The provider holds these as sets: sorted in the JSON, and a set of one written as a bare string.
    return values[0] if len(values) == 1 else sorted(values)
