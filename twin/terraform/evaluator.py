"""Evaluate the expressions of a Terraform configuration the way `terraform plan` would, offline.

Enough of Terraform's language for what kcluster's module computes before apply: literals, templates,
operators, conditionals, for expressions, variables (defaults and object-type optional() defaults,
overridable), locals, resource and data attributes, each.key/each.value, dynamic blocks and the
functions the module calls (templatefile() included). What only AWS knows at apply time (an NLB's DNS
name, an ARN, a data source's answer) evaluates to a `computed_placeholder` string, so a value built
from it still has the right shape. An unsupported construct raises: the checks never guess.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
from lark import Token, Tree

from twin.terraform.hcl import Block, Configuration, children, unescape


class EvaluationError(Exception):
    pass


def computed_placeholder(*path: str) -> str:
    """A stand-in for a value known only after apply; DNS-name shaped so patterns still apply."""
    return "-".join(part.replace("_", "-") for part in path) + ".computed.invalid"


@dataclass
class ResourceInstance:
    """One instance of a resource or data source: arguments evaluate, other attributes are computed."""

    evaluator: TerraformEvaluator
    block: Block
    each: dict[str, Any] | None
    address: tuple[str, ...]

    def attribute(self, name: str) -> Any:
        if name in self.block.attributes:
            return self.evaluator.evaluate(self.block.attributes[name], self.scope())
        return computed_placeholder(*self.address, name)

    def scope(self) -> dict[str, Any]:
        return {"each": self.each} if self.each is not None else {}


def _setproduct(*collections: list) -> list[list]:
    result: list[list] = [[]]
    for collection in collections:
        result = [[*prefix, item] for prefix in result for item in collection]
    return result


def _coalesce(*values: Any) -> Any:
    for value in values:
        if value is not None and value != "":
            return value
    raise EvaluationError("coalesce: no non-null argument")


def _slice(values: list, start: int, end: int) -> list:
    return list(values)[start:end]


def _regex(pattern: str, text: str) -> str:
    # Terraform's regex() fails when nothing matches; can(regex(...)) turns that into false.
    match = re.search(pattern, text)
    if match is None:
        raise EvaluationError(f"regex {pattern!r} does not match {text!r}")
    return match.group(0)


def _cidrhost(prefix: str, host: int) -> str:
    network = ipaddress.ip_network(prefix, strict=False)
    return str(network.network_address + host)


def _cidrsubnet(prefix: str, newbits: int, netnum: int) -> str:
    network = ipaddress.ip_network(prefix, strict=False)
    return str(list(network.subnets(prefixlen_diff=newbits))[netnum]) if newbits else str(network)


def _toset(values: list) -> list:
    # Terraform sets of strings iterate in lexical order.
    return sorted(set(values))


_BINARY = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "%": operator.mod,
}

# The root names a reference may start with besides resource types and in-scope names.
REFERENCE_ROOTS = ("var", "local", "data", "module", "each", "count", "path", "self", "terraform")


class TerraformEvaluator:
    def __init__(self, configuration: Configuration, variables: Mapping[str, Any] | None = None):
        self.configuration = configuration
        self.overrides = dict(variables or {})
        unknown = set(self.overrides) - set(configuration.variables)
        if unknown:
            raise EvaluationError(f"no such variables: {sorted(unknown)}")
        self._locals: dict[str, Any] = {}
        self._evaluating: set[str] = set()
        self.functions: dict[str, Callable[..., Any]] = {
            "coalesce": _coalesce,
            "replace": lambda text, old, new: text.replace(old, new),
            "join": lambda separator, values: separator.join(values),
            "split": lambda separator, text: text.split(separator),
            "slice": _slice,
            "merge": lambda *maps: {key: value for mapping in maps for key, value in mapping.items()},
            "jsondecode": json.loads,
            "jsonencode": lambda value: json.dumps(value, separators=(",", ":")),
            "base64encode": lambda text: base64.b64encode(text.encode()).decode(),
            "file": self._file,
            "templatefile": self._templatefile,
            "nonsensitive": lambda value: value,
            "distinct": lambda values: list(dict.fromkeys(values)),
            "length": len,
            "toset": _toset,
            "tostring": str,
            "lower": str.lower,
            "keys": lambda mapping: sorted(mapping),
            "setproduct": _setproduct,
            "alltrue": lambda values: all(values),
            "contains": lambda values, value: value in values,
            "regex": _regex,
            "cidrhost": _cidrhost,
            "cidrsubnet": _cidrsubnet,
            "floor": math.floor,
        }

    # -- values of the configuration ------------------------------------------------------------

    def variable(self, name: str) -> Any:
        block = self.configuration.variables.get(name)
        if block is None:
            raise EvaluationError(f"undeclared variable var.{name}")
        if name in self.overrides:
            value = self.overrides[name]
        elif "default" in block.attributes:
            value = self.evaluate(block.attributes["default"], {})
        else:
            raise EvaluationError(f"variable {name} has no default and no value was given")
        if "type" in block.attributes and value is not None:
            value = self._apply_type_defaults(block.attributes["type"], value)
        return value

    def local(self, name: str) -> Any:
        if name not in self._locals:
            if name not in self.configuration.locals:
                raise EvaluationError(f"undeclared local.{name}")
            if name in self._evaluating:
                raise EvaluationError(f"local.{name} refers to itself")
            self._evaluating.add(name)
            try:
                self._locals[name] = self.evaluate(self.configuration.locals[name], {})
            finally:
                self._evaluating.discard(name)
        return self._locals[name]

    def resource(self, resource_type: str, name: str, *, data: bool = False) -> Any:
        index = self.configuration.data if data else self.configuration.resources
        block = index.get((resource_type, name))
        if block is None:
            kind = "data source" if data else "resource"
            raise EvaluationError(f"undeclared {kind} {resource_type}.{name}")
        address = ("data", resource_type, name) if data else (resource_type, name)
        if "for_each" in block.attributes:
            collection = self.evaluate(block.attributes["for_each"], {})
            items = collection.items() if isinstance(collection, dict) else ((k, k) for k in collection)
            return {
                key: ResourceInstance(self, block, {"key": key, "value": value}, (*address, key))
                for key, value in items
            }
        if "count" in block.attributes:
            count = self.evaluate(block.attributes["count"], {})
            return [ResourceInstance(self, block, None, (*address, str(i))) for i in range(count)]
        return ResourceInstance(self, block, None, address)

    def dynamic_blocks(self, block: Block, block_type: str, scope: dict[str, Any]) -> list[dict[str, Any]]:
        """The attribute values of every `dynamic "<block_type>"` instance in block (content only)."""
        instances = []
        for dynamic in block.blocks_of("dynamic"):
            if dynamic.labels != (block_type,):
                continue
            iterator = block_type
            if "iterator" in dynamic.attributes:
                iterator = self._identifier(dynamic.attributes["iterator"])
            collection = self.evaluate(dynamic.attributes["for_each"], scope)
            items = collection.items() if isinstance(collection, dict) else enumerate(collection)
            (content,) = dynamic.blocks_of("content")
            for key, value in items:
                inner = {**scope, iterator: {"key": key, "value": value}}
                instances.append(
                    {name: self.evaluate(expr, inner) for name, expr in content.attributes.items()}
                )
        return instances

    def validation_errors(self, name: str) -> list[str]:
        """The error messages of variable `name`'s validation blocks its value fails, as plan reports them."""
        block = self.configuration.variables[name]
        value = self.variable(name)
        scope = {"var": {name: value}}
        failures = []
        for validation in block.blocks_of("validation"):
            if not self.evaluate(validation.attributes["condition"], scope):
                failures.append(self.evaluate(validation.attributes["error_message"], {}))
        return failures

    # -- functions that read files ----------------------------------------------------------------

    def _path(self, path: str) -> Path:
        return Path(path) if Path(path).is_absolute() else self.configuration.directory / path

    def _file(self, path: str) -> str:
        return self._path(path).read_text()

    def _templatefile(self, path: str, variables: dict[str, Any]) -> str:
        return render_template(self._path(path).read_text(), lambda tree: self.evaluate(tree, variables))

    # -- expressions --------------------------------------------------------------------------------

    def evaluate(self, tree: Tree | Token, scope: Mapping[str, Any]) -> Any:
        if isinstance(tree, Token):
            raise EvaluationError(f"unexpected token {tree!r}")
        handler = getattr(self, f"_eval_{tree.data}", None)
        if handler is None:
            raise EvaluationError(f"unsupported expression {tree.data}")
        return handler(tree, scope)

    def _eval_expr_term(self, tree: Tree, scope: Mapping[str, Any]) -> Any:
        (inner,) = children(tree)
        return self.evaluate(inner, scope)

    def _eval_int_lit(self, tree: Tree, scope: Mapping[str, Any]) -> int:
        return int(tree.children[0])

    def _eval_float_lit(self, tree: Tree, scope: Mapping[str, Any]) -> float:
        return float(tree.children[0])

    def _eval_literal_value(self, tree: Tree, scope: Mapping[str, Any]) -> Any:
        return {"true": True, "false": False, "null": None}[str(tree.children[0])]

    def _eval_string(self, tree: Tree, scope: Mapping[str, Any]) -> str:
        parts = []
        for part in children(tree):
            (inner,) = part.children
            if isinstance(inner, Token) and inner.type == "STRING_CHARS":
                parts.append(unescape(str(inner)))
            elif isinstance(inner, Token) and inner.type == "ESCAPED_INTERPOLATION":
                parts.append(str(inner)[1:])
            elif isinstance(inner, Tree) and inner.data == "interpolation":
                (expression,) = children(inner)
                parts.append(_to_template_text(self.evaluate(expression, scope)))
            else:
                raise EvaluationError(f"unsupported string part {inner!r}")
        return "".join(parts)

    def _eval_tuple(self, tree: Tree, scope: Mapping[str, Any]) -> list:
        return [self.evaluate(item, scope) for item in children(tree)]

    def _eval_object(self, tree: Tree, scope: Mapping[str, Any]) -> dict:
        result = {}
        for element in children(tree):
            key_node, value_node = children(element)
            (key_expression,) = children(key_node)
            key = self._object_key(key_expression, scope)
            result[key] = self.evaluate(value_node, scope)
        return result

    def _object_key(self, expression: Tree, scope: Mapping[str, Any]) -> str:
        # A bare name is a literal key; (expr) or a string is evaluated.
        inner = expression
        if (
            inner.data == "expr_term"
            and len(children(inner)) == 1
            and children(inner)[0].data == "identifier"
        ):
            return str(children(inner)[0].children[0])
        if inner.data == "keyword":
            return str(inner.children[0])
        return str(self.evaluate(expression, scope))

    def _eval_identifier(self, tree: Tree, scope: Mapping[str, Any]) -> Any:
        name = str(tree.children[0])
        if name in scope:
            return scope[name]
        if name in ("var", "local", "data", "path", "module"):
            return _Namespace(self, name)
        if any(name == resource_type for resource_type, _ in self.configuration.resources):
            return _Namespace(self, "resource", name)
        raise EvaluationError(f"unknown name {name}")

    def _eval_get_attr_expr_term(self, tree: Tree, scope: Mapping[str, Any]) -> Any:
        target, get_attr = children(tree)
        value = self.evaluate(target, scope)
        (name_node,) = children(get_attr)
        return _get(value, str(name_node.children[0]))

    def _eval_index_expr_term(self, tree: Tree, scope: Mapping[str, Any]) -> Any:
        target, index = children(tree)
        value = self.evaluate(target, scope)
        if index.data == "short_index":
            key: Any = int(index.children[1])
        else:
            (expression,) = children(index)
            key = self.evaluate(expression, scope)
        return _get(value, key)

    def _eval_function_call(self, tree: Tree, scope: Mapping[str, Any]) -> Any:
        parts = children(tree)
        name = str(parts[0].children[0])
        if name == "can":
            # can() is lazy: an argument that fails to evaluate makes it false.
            (argument,) = children(parts[1])
            try:
                self.evaluate(argument, scope)
            except (EvaluationError, ValueError, TypeError, IndexError, KeyError):
                return False
            return True
        arguments: list[Any] = []
        expand_last = False
        if len(parts) > 1:
            arguments_tree = parts[1]
            arguments = [self.evaluate(argument, scope) for argument in children(arguments_tree)]
            expand_last = any(
                isinstance(token, Token) and token.type == "ELLIPSIS" for token in arguments_tree.children
            )
        if expand_last:
            arguments = [*arguments[:-1], *arguments[-1]]
        function = self.functions.get(name)
        if function is None:
            raise EvaluationError(f"function {name}() is not supported by the evaluator")
        return function(*arguments)

    def _eval_conditional(self, tree: Tree, scope: Mapping[str, Any]) -> Any:
        condition, if_true, if_false = children(tree)
        return self.evaluate(if_true if self.evaluate(condition, scope) else if_false, scope)

    def _eval_binary_op(self, tree: Tree, scope: Mapping[str, Any]) -> Any:
        left, term = children(tree)
        operator_node, right = children(term)
        symbol = str(operator_node.children[0])
        left_value = self.evaluate(left, scope)
        if symbol == "&&":
            return bool(left_value) and bool(self.evaluate(right, scope))
        if symbol == "||":
            return bool(left_value) or bool(self.evaluate(right, scope))
        return _BINARY[symbol](left_value, self.evaluate(right, scope))

    def _eval_unary_op(self, tree: Tree, scope: Mapping[str, Any]) -> Any:
        symbol = str(tree.children[0])
        value = self.evaluate(children(tree)[0], scope)
        return not value if symbol == "!" else -value

    def _for_items(self, intro: Tree, scope: Mapping[str, Any]) -> list[dict[str, Any]]:
        parts = children(intro)
        names = [str(part.children[0]) for part in parts[:-1]]
        collection = self.evaluate(parts[-1], scope)
        items = list(collection.items()) if isinstance(collection, dict) else list(enumerate(collection))
        if len(names) == 1:
            return [{**scope, names[0]: value} for _, value in items]
        return [{**scope, names[0]: key, names[1]: value} for key, value in items]

    def _eval_for_tuple_expr(self, tree: Tree, scope: Mapping[str, Any]) -> list:
        intro, expression, *condition = children(tree)
        result = []
        for inner in self._for_items(intro, scope):
            if condition and not self.evaluate(children(condition[0])[0], inner):
                continue
            result.append(self.evaluate(expression, inner))
        return result

    def _eval_for_object_expr(self, tree: Tree, scope: Mapping[str, Any]) -> dict:
        if any(isinstance(token, Token) and token.type == "ELLIPSIS" for token in tree.children):
            raise EvaluationError("grouping for expressions (...) are not supported")
        intro, key_expression, value_expression, *condition = children(tree)
        result = {}
        for inner in self._for_items(intro, scope):
            if condition and not self.evaluate(children(condition[0])[0], inner):
                continue
            key = self.evaluate(key_expression, inner)
            if key in result:
                raise EvaluationError(f"for expression produced key {key!r} twice")
            result[key] = self.evaluate(value_expression, inner)
        return result

    # -- helpers ------------------------------------------------------------------------------------

    @staticmethod
    def _identifier(tree: Tree) -> str:
        while tree.data == "expr_term":
            (tree,) = children(tree)
        if tree.data != "identifier":
            raise EvaluationError("expected a bare name")
        return str(tree.children[0])

    def _apply_type_defaults(self, type_tree: Tree, value: Any) -> Any:
        """object({a = optional(T, default)}) fills omitted attributes, as Terraform does."""
        inner = type_tree
        while inner.data == "expr_term":
            (inner,) = children(inner)
        if inner.data != "function_call" or str(children(inner)[0].children[0]) != "object":
            return value
        (attributes_tree,) = children(children(inner)[1])
        while attributes_tree.data == "expr_term":
            (attributes_tree,) = children(attributes_tree)
        result = dict(value)
        for element in children(attributes_tree):
            key_node, type_node = children(element)
            key = self._object_key(children(key_node)[0], {})
            while type_node.data == "expr_term":
                (type_node,) = children(type_node)
            is_optional = (
                type_node.data == "function_call" and str(children(type_node)[0].children[0]) == "optional"
            )
            if key in result:
                continue
            if not is_optional:
                raise EvaluationError(f"object attribute {key} is required")
            optional_arguments = children(children(type_node)[1])
            result[key] = self.evaluate(optional_arguments[1], {}) if len(optional_arguments) > 1 else None
        return result


class _Namespace:
    """var, local, data, path, module and resource-type roots of a reference."""

    def __init__(self, evaluator: TerraformEvaluator, kind: str, *prefix: str):
        self.evaluator, self.kind, self.prefix = evaluator, kind, prefix

    def get(self, name: str) -> Any:
        evaluator = self.evaluator
        if self.kind == "var":
            return evaluator.variable(name)
        if self.kind == "local":
            return evaluator.local(name)
        if self.kind == "path":
            if name in ("module", "root", "cwd"):
                return str(evaluator.configuration.directory)
            raise EvaluationError(f"path.{name}")
        if self.kind == "resource":
            return evaluator.resource(self.prefix[0], name)
        if self.kind == "data":
            if not self.prefix:
                return _Namespace(evaluator, "data", name)
            return evaluator.resource(self.prefix[0], name, data=True)
        raise EvaluationError(f"{self.kind}.{name} cannot be evaluated offline")


def _get(value: Any, key: Any) -> Any:
    if isinstance(value, _Namespace):
        return value.get(key)
    if isinstance(value, ResourceInstance):
        return value.attribute(key)
    if isinstance(value, dict):
        if key not in value:
            raise EvaluationError(f"no key {key!r} in object with keys {sorted(value)}")
        return value[key]
    if isinstance(value, list):
        return value[int(key)]
    raise EvaluationError(f"cannot index {type(value).__name__} with {key!r}")


def _to_template_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise EvaluationError(f"cannot interpolate a {type(value).__name__} into a string")


def _expression_end(text: str, start: int) -> int:
    """Index of the brace closing the interpolation whose expression starts at `start`."""
    depth, index, in_string = 0, start, False
    while index < len(text):
        char = text[index]
        if in_string:
            if char == "\\":
                index += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return index
            depth -= 1
        index += 1
    raise EvaluationError("unterminated interpolation in template")


def parse_expression(text: str) -> Tree:
    tree = hcl2.parses_to_tree(f"expression = {text}\n")
    (body,) = children(tree)
    (attribute,) = children(body)
    return children(attribute)[1]


def render_template(text: str, evaluate: Callable[[Tree], Any]) -> str:
    """Render a Terraform template (templatefile's syntax): $${ is a literal ${, %%{ a literal %{.

    Directives (%{if}, %{for}) are refused: kcluster's templates do not use them.
    """
    out, index = [], 0
    while index < len(text):
        if text.startswith("$${", index) or text.startswith("%%{", index):
            out.append(text[index + 1 : index + 3])
            index += 3
        elif text.startswith("${", index):
            end = _expression_end(text, index + 2)
            out.append(_to_template_text(evaluate(parse_expression(text[index + 2 : end]))))
            index = end + 1
        elif text.startswith("%{", index):
            raise EvaluationError("template directives are not supported")
        else:
            out.append(text[index])
            index += 1
    return "".join(out)
