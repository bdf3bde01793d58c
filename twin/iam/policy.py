"""A pure evaluator of IAM policies for one request, following AWS's documented logic.

The twin runs kcluster against moto, which does not enforce IAM. Evaluating the real
policies (the ones the Terraform/SAM templates attach) against each emulated call is
how a missing permission shows up in a test instead of in production. The evaluator
therefore errs loudly: anything it cannot evaluate the way AWS would raises
`UnsupportedPolicy` rather than quietly allowing or denying.

Scope: a single account (the twin's). No SCPs/RCPs, session policies, or cross-account
rules. Same-account rules as documented in the IAM User Guide ("Policy evaluation for
requests within a single account"), including the role-ARN/session-ARN distinction for
resource policies versus permissions boundaries, and the KMS key-policy rule that IAM
policies count only when the key policy delegates to the account.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from functools import cache
from typing import Any, Literal

from twin.iam import catalog

__all__ = [
    "ContextValue",
    "Decision",
    "NamedPolicy",
    "Principal",
    "Reason",
    "Request",
    "ResourcePolicyKind",
    "StatementRef",
    "UnsupportedPolicy",
    "evaluate",
]

ContextValue = str | list[str] | bool | int
Reason = Literal["allowed", "explicit-deny", "implicit-deny", "boundary-deny", "kms-key-policy-deny"]
ResourcePolicyKind = Literal["ordinary", "kms-key-policy"]
PolicyKind = Literal["identity", "boundary", "resource"]
SetOperator = Literal["ForAnyValue", "ForAllValues"]

_CURRENT_VERSION = "2012-10-17"
_VERSIONS = frozenset({"2012-10-17", "2008-10-17"})
_DOCUMENT_KEYS = frozenset({"Version", "Id", "Statement"})
_STATEMENT_KEYS = frozenset(
    {
        "Sid",
        "Effect",
        "Principal",
        "NotPrincipal",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
    }
)
_ROOT_ARN = re.compile(r"arn:[a-z-]+:iam::(\d{12}):root")
_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class UnsupportedPolicy(ValueError):
    """The policy is malformed, or uses something this evaluator cannot evaluate faithfully."""


# --- the request and the answer -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling.

    `role_arn` matters because a resource policy naming the role (not the session) is still
    limited by the role's permissions boundary; `service` is set when an AWS service acts
    as itself (EventBridge delivering to SQS), which only a Service principal can match.
    """

    arn: str
    account: str
    role_arn: str | None = None
    service: str | None = None


@dataclass(frozen=True, slots=True)
class Request:
    """One authorization question: may `principal` perform `action` on `resource`?"""

    principal: Principal
    action: str
    resource: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NamedPolicy:
    """A policy document plus the name reports use to point at it."""

    name: str
    document: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class StatementRef:
    """A statement by policy name and Sid (or its 0-based index when it has no Sid)."""

    policy: str
    sid_or_index: str


_DENY_PLACE: dict[PolicyKind, str] = {
    "identity": "an identity-based policy",
    "boundary": "a permissions boundary",
    "resource": "a resource-based policy",
}
_NO_ALLOW_PLACE: dict[Reason, str] = {
    "implicit-deny": "identity-based policy",
    "boundary-deny": "permissions boundary",
    "kms-key-policy-deny": "resource-based policy",
}


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict, plus every Allow/Deny statement that matched (for coverage reports)."""

    request: Request
    allowed: bool
    reason: Reason
    allowing: tuple[StatementRef, ...] = ()
    denying: tuple[StatementRef, ...] = ()
    denied_in: PolicyKind | None = None

    def message(self) -> str:
        """Worded like AWS's AccessDenied text so twin failures read like production ones."""
        req = self.request
        what = f"perform: {req.action} on resource: {req.resource}"
        if self.allowed:
            return f"User: {req.principal.arn} is authorized to {what}"
        head = f"User: {req.principal.arn} is not authorized to {what}"
        if self.reason == "explicit-deny":
            return f"{head} with an explicit deny in {_DENY_PLACE[self.denied_in or 'identity']}"
        return f"{head} because no {_NO_ALLOW_PLACE[self.reason]} allows the {req.action} action"


# --- the request context ----------------------------------------------------------------------


def _as_text(value: object) -> str:
    """Context and policy values compare as text; JSON true/false become AWS's "true"/"false"."""
    match value:
        case bool():
            return "true" if value else "false"
        case int() | float() | str():
            return str(value)
        case _:
            raise UnsupportedPolicy(f"cannot use {value!r} as a condition value")


def _as_texts(value: object) -> tuple[str, ...]:
    match value:
        case list() | tuple():
            return tuple(_as_text(item) for item in value)
        case _:
            return (_as_text(value),)


class _Context:
    """Condition keys, lower-cased (AWS compares key names, tag keys included, case-insensitively)."""

    def __init__(self, values: Mapping[str, tuple[str, ...]]) -> None:
        self._values = values

    @classmethod
    def of(cls, request: Request) -> _Context:
        values = _implied_keys(request.principal)
        values.update({key.lower(): _as_texts(value) for key, value in request.context.items()})
        return cls(values)

    def get(self, key: str) -> tuple[str, ...] | None:
        """The key's values; an empty multi-valued key counts as absent, as in AWS."""
        found = self._values.get(key.lower())
        return found if found else None


def _implied_keys(principal: Principal) -> dict[str, tuple[str, ...]]:
    """Keys AWS puts in every request context from the caller alone (explicit context wins)."""
    if principal.service:
        return {"aws:principalservicename": (principal.service,), "aws:principalisawsservice": ("true",)}
    keys: dict[str, tuple[str, ...]] = {
        "aws:principalarn": (principal.role_arn or principal.arn,),
        "aws:principalaccount": (principal.account,),
        "aws:principalisawsservice": ("false",),
    }
    if ":user/" in principal.arn:
        keys["aws:username"] = (principal.arn.rsplit("/", 1)[-1],)
    return keys


# --- policy variables and wildcards -----------------------------------------------------------


class _MissingVariable(Exception):
    """A ${key} whose key the request lacks: the statement then cannot match."""


@dataclass(frozen=True, slots=True)
class _Piece:
    """Text from the policy (its * and ? are wildcards) or from a variable (always literal)."""

    text: str
    literal: bool


def _expand(value: str, ctx: _Context, version: str) -> tuple[_Piece, ...]:
    """Substitute ${...}; policies without Version 2012-10-17 treat "${" as plain text (AWS does)."""
    if version != _CURRENT_VERSION or "${" not in value:
        return (_Piece(value, literal=False),)
    pieces: list[_Piece] = []
    position = 0
    for found in _VARIABLE.finditer(value):
        pieces.append(_Piece(value[position : found.start()], literal=False))
        pieces.append(_Piece(_variable_value(found.group(1), ctx), literal=True))
        position = found.end()
    pieces.append(_Piece(value[position:], literal=False))
    return tuple(piece for piece in pieces if piece.text)


def _variable_value(inner: str, ctx: _Context) -> str:
    if inner in ("*", "?", "$"):
        return inner
    key, _, default = (part.strip() for part in inner.partition(","))
    if not catalog.is_known_condition_key(key):
        raise UnsupportedPolicy(f"policy variable ${{{inner}}} names no documented condition key")
    values = ctx.get(key)
    if values is None:
        if default.startswith("'") and default.endswith("'") and len(default) >= 2:
            return default[1:-1]
        raise _MissingVariable(key)
    if len(values) != 1:
        raise UnsupportedPolicy(f"policy variable ${{{key}}} is multi-valued in this request")
    return values[0]


def _joined(pieces: Iterable[_Piece]) -> str:
    return "".join(piece.text for piece in pieces)


def _wildcard_regex(pieces: Iterable[_Piece], any_char: str = ".") -> str:
    """`*` is any run and `?` one character, both crossing ":" and "/" unless any_char says not."""
    out: list[str] = []
    for piece in pieces:
        if piece.literal:
            out.append(re.escape(piece.text))
            continue
        out.extend(_wildcard_char(char, any_char) for char in piece.text)
    return "".join(out)


def _wildcard_char(char: str, any_char: str) -> str:
    match char:
        case "*":
            return f"{any_char}*"
        case "?":
            return any_char
        case _:
            return re.escape(char)


@cache
def _compiled(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _wildcard_match(pieces: Sequence[_Piece], text: str, ignore_case: bool = False) -> bool:
    return _compiled(_wildcard_regex(pieces), ignore_case).fullmatch(text) is not None


def _arn_match(pieces: Sequence[_Piece], arn: str) -> bool:
    """ArnLike/ArnEquals: wildcards stay inside each of the first five ":"-separated fields.

    An "arn:" pattern with fewer fields matches no ARN; a pattern that is not an ARN at all
    (typically "*") is matched as a plain wildcard string, so "*" still means "any ARN".
    """
    text = _joined(pieces)
    if text.count(":") < 5:
        return not text.startswith("arn:") and _wildcard_match(pieces, arn)
    regex: list[str] = []
    colons = 0
    for piece in pieces:
        for char in piece.text:
            in_fields = colons < 5
            regex.append(
                re.escape(char) if piece.literal else _wildcard_char(char, "[^:]" if in_fields else ".")
            )
            colons += char == ":"
    return _compiled("".join(regex), False).fullmatch(arn) is not None


# --- condition operators --------------------------------------------------------------------

Pieces = tuple[_Piece, ...]
Test = Callable[[str, Pieces], bool]


def _on_text(check: Callable[[str, str], bool]) -> Test:
    """Most operators see the policy value as plain text once variables are substituted."""

    def test(actual: str, expected: Pieces) -> bool:
        return check(actual, _joined(expected))

    return test


@dataclass(frozen=True, slots=True)
class _Spec:
    """One base operator: `test(context_value, policy_value)` is its positive form."""

    test: Test
    negated: bool = False
    variables: bool = False
    validate: Callable[[str], object] | None = None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _instant(text: str) -> float | None:
    """Dates compare as instants; AWS accepts ISO 8601 or epoch seconds on either side."""
    number = _number(text)
    if number is not None:
        return number
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _compare(parse: Callable[[str], float | None], check: Callable[[float, float], bool]) -> Test:
    def test(actual: str, expected: str) -> bool:
        left, right = parse(actual), parse(expected)
        return left is not None and right is not None and check(left, right)

    return _on_text(test)


def _require(parse: Callable[[str], object | None], what: str) -> Callable[[str], object]:
    def validate(value: str) -> object:
        if parse(value) is None:
            raise UnsupportedPolicy(f"{value!r} is not {what}")
        return value

    return validate


def _bool_value(text: str) -> bool | None:
    return {"true": True, "false": False}.get(text.lower())


def _in_network(actual: str, expected: str) -> bool:
    try:
        return ipaddress.ip_address(actual) in ipaddress.ip_network(expected, strict=False)
    except ValueError:
        return False


def _network(text: str) -> object | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _string_like(actual: str, expected: Pieces) -> bool:
    return _wildcard_match(expected, actual)


def _arn_like(actual: str, expected: Pieces) -> bool:
    return _arn_match(expected, actual)


def _equal(actual: str, expected: str) -> bool:
    return actual == expected


def _equal_ignore_case(actual: str, expected: str) -> bool:
    return actual.casefold() == expected.casefold()


def _bool_equal(actual: str, expected: str) -> bool:
    return _bool_value(actual) == _bool_value(expected)


_NUMERIC_CHECKS: dict[str, Callable[[float, float], bool]] = {
    "Equals": lambda a, b: a == b,
    "LessThan": lambda a, b: a < b,
    "LessThanEquals": lambda a, b: a <= b,
    "GreaterThan": lambda a, b: a > b,
    "GreaterThanEquals": lambda a, b: a >= b,
}


def _operator_table() -> dict[str, _Spec]:
    """Positive operators and their negations; negated ones are NOT(positive) over the same values."""
    table: dict[str, _Spec] = {
        "StringEquals": _Spec(_on_text(_equal), variables=True),
        "StringNotEquals": _Spec(_on_text(_equal), negated=True, variables=True),
        "StringEqualsIgnoreCase": _Spec(_on_text(_equal_ignore_case), variables=True),
        "StringNotEqualsIgnoreCase": _Spec(_on_text(_equal_ignore_case), negated=True, variables=True),
        "StringLike": _Spec(_string_like, variables=True),
        "StringNotLike": _Spec(_string_like, negated=True, variables=True),
        "Bool": _Spec(_on_text(_bool_equal), validate=_require(_bool_value, "true or false")),
        "BinaryEquals": _Spec(_on_text(_equal)),
        "IpAddress": _Spec(_on_text(_in_network), validate=_require(_network, "an IP address or CIDR")),
        "NotIpAddress": _Spec(
            _on_text(_in_network), negated=True, validate=_require(_network, "an IP address or CIDR")
        ),
    }
    for family, parse, what in (("Numeric", _number, "a number"), ("Date", _instant, "a date")):
        for suffix, check in _NUMERIC_CHECKS.items():
            table[family + suffix] = _Spec(_compare(parse, check), validate=_require(parse, what))
        table[family + "NotEquals"] = _Spec(
            _compare(parse, _NUMERIC_CHECKS["Equals"]), negated=True, validate=_require(parse, what)
        )
    for name in ("ArnEquals", "ArnLike"):
        table[name] = _Spec(_arn_like, variables=True)
        table[name.replace("Arn", "ArnNot")] = _Spec(_arn_like, negated=True, variables=True)
    return table


_OPERATORS = _operator_table()


@dataclass(frozen=True, slots=True)
class _Operator:
    name: str
    base: str
    set_operator: SetOperator | None
    if_exists: bool


def _parse_operator(name: str) -> _Operator:
    """Split "ForAnyValue:StringLikeIfExists" into its parts; operator names are case-sensitive."""
    set_operator: SetOperator | None = None
    base = name
    for prefix in ("ForAnyValue", "ForAllValues"):
        if name.startswith(prefix + ":"):
            set_operator = "ForAnyValue" if prefix == "ForAnyValue" else "ForAllValues"
            base = name[len(prefix) + 1 :]
    if_exists = base.endswith("IfExists") and base != "IfExists"
    if if_exists:
        base = base.removesuffix("IfExists")
    if base == "Null" and (if_exists or set_operator):
        raise UnsupportedPolicy(f"condition operator {name!r} is not valid: Null takes no prefix or suffix")
    if base != "Null" and base not in _OPERATORS:
        raise UnsupportedPolicy(f"unknown condition operator {name!r}")
    return _Operator(name, base, set_operator, if_exists)


# --- conditions ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Condition:
    operator: _Operator
    key: str
    values: tuple[str, ...]


def _parse_conditions(block: object) -> tuple[_Condition, ...]:
    if not isinstance(block, Mapping):
        raise UnsupportedPolicy("Condition must be an object of operator -> {key: values}")
    parsed: list[_Condition] = []
    for operator_name, keys in block.items():
        operator = _parse_operator(str(operator_name))
        if not isinstance(keys, Mapping) or not keys:
            raise UnsupportedPolicy(f"condition operator {operator_name!r} needs an object of keys")
        parsed.extend(_parse_condition(operator, str(key), values) for key, values in keys.items())
    return tuple(parsed)


def _parse_condition(operator: _Operator, key: str, raw: object) -> _Condition:
    if not catalog.is_known_condition_key(key):
        raise UnsupportedPolicy(f"condition key {key!r} is not one AWS documents (operator {operator.name})")
    values = _as_texts(raw)
    if not values:
        raise UnsupportedPolicy(f"condition {operator.name} on {key!r} has no values")
    validate = _bool_value if operator.base == "Null" else _OPERATORS[operator.base].validate
    for value in values:
        if validate is not None and validate(value) is None:
            raise UnsupportedPolicy(f"{operator.name} on {key!r}: bad value {value!r}")
    return _Condition(operator, key, values)


def _condition_holds(condition: _Condition, ctx: _Context, version: str) -> bool:
    """All keys of all blocks are ANDed by the caller; here the key's policy values are ORed."""
    actual = ctx.get(condition.key)
    if condition.operator.base == "Null":
        return any(_bool_value(value) == (actual is None) for value in condition.values)
    if actual is None:
        return _missing_key_result(condition.operator)
    spec = _OPERATORS[condition.operator.base]
    expected = tuple(_policy_value(value, spec, ctx, version) for value in condition.values)

    def matches(value: str) -> bool:
        return any(spec.test(value, candidate) for candidate in expected)

    match condition.operator.set_operator:
        case "ForAnyValue":
            return any(matches(value) != spec.negated for value in actual)
        case "ForAllValues":
            return all(matches(value) != spec.negated for value in actual)
        case _:
            return any(matches(value) for value in actual) != spec.negated


def _missing_key_result(operator: _Operator) -> bool:
    """AWS: ForAllValues and IfExists hold on an absent key, ForAnyValue and positive operators
    do not, and negated operators (StringNotEquals, ArnNotLike, ...) do."""
    if operator.set_operator == "ForAllValues" or operator.if_exists:
        return True
    if operator.set_operator == "ForAnyValue":
        return False
    return _OPERATORS[operator.base].negated


def _policy_value(value: str, spec: _Spec, ctx: _Context, version: str) -> Pieces:
    """Policy variables apply only to the string and ARN operators, as AWS documents."""
    if not spec.variables:
        return (_Piece(value, literal=False),)
    return _expand(value, ctx, version)


# --- statements ---------------------------------------------------------------------------------


class _Match(IntEnum):
    """How a resource policy's Principal covers the caller, weakest first."""

    NONE = 0
    ACCOUNT = 1  # the caller's account: delegation to IAM, grants nothing alone
    ROLE = 2  # the role behind the session, or "*": still limited by a permissions boundary
    DIRECT = 3  # the session/user ARN itself, or a service principal


@dataclass(frozen=True, slots=True)
class _Statement:
    ref: StatementRef
    effect: Literal["Allow", "Deny"]
    actions: tuple[str, ...]
    not_action: bool
    resources: tuple[str, ...]
    not_resource: bool
    principal: object
    conditions: tuple[_Condition, ...]


def _strings(value: object, element: str) -> tuple[str, ...]:
    match value:
        case str():
            return (value,)
        case list() if value and all(isinstance(item, str) for item in value):
            return tuple(value)
        case _:
            raise UnsupportedPolicy(f"{element} must be a string or a non-empty list of strings")


def _either(
    statement: Mapping[str, Any], positive: str, negative: str, where: str
) -> tuple[tuple[str, ...], bool]:
    """Exactly one of Action/NotAction (Resource/NotResource) must be present, as AWS requires."""
    has_positive, has_negative = positive in statement, negative in statement
    if has_positive == has_negative:
        raise UnsupportedPolicy(f"{where}: needs exactly one of {positive} and {negative}")
    name = positive if has_positive else negative
    return _strings(statement[name], f"{where}: {name}"), has_negative


def _effect(statement: Mapping[str, Any], where: str) -> Literal["Allow", "Deny"]:
    match statement.get("Effect"):
        case "Allow":
            return "Allow"
        case "Deny":
            return "Deny"
        case None:
            raise UnsupportedPolicy(f"{where}: has no Effect")
        case other:
            raise UnsupportedPolicy(f"{where}: unknown Effect {other!r}")


def _parse_statement(raw: object, ref: StatementRef, kind: PolicyKind) -> _Statement:
    where = f"{ref.policy} statement {ref.sid_or_index}"
    if not isinstance(raw, Mapping):
        raise UnsupportedPolicy(f"{where}: a statement must be an object")
    unknown = set(raw) - _STATEMENT_KEYS
    if unknown:
        raise UnsupportedPolicy(f"{where}: unknown element(s) {sorted(unknown)}")
    if "NotPrincipal" in raw:
        raise UnsupportedPolicy(f"{where}: NotPrincipal is not supported (AWS discourages it)")
    _check_principal_presence(raw, kind, where)
    actions, not_action = _either(raw, "Action", "NotAction", where)
    resources, not_resource = _either(raw, "Resource", "NotResource", where)
    conditions = _parse_conditions(raw["Condition"]) if "Condition" in raw else ()
    return _Statement(
        ref,
        _effect(raw, where),
        actions,
        not_action,
        resources,
        not_resource,
        raw.get("Principal"),
        conditions,
    )


def _check_principal_presence(raw: Mapping[str, Any], kind: PolicyKind, where: str) -> None:
    """IAM rejects Principal in identity policies and boundaries; resource policies need one."""
    if kind == "resource" and "Principal" not in raw:
        raise UnsupportedPolicy(f"{where}: a resource-based policy statement needs a Principal")
    if kind != "resource" and "Principal" in raw:
        raise UnsupportedPolicy(f"{where}: Principal is not allowed in an identity policy or boundary")


def _parse_policy(policy: NamedPolicy, kind: PolicyKind) -> tuple[str, tuple[_Statement, ...]]:
    document = policy.document
    if not isinstance(document, Mapping) or "Statement" not in document:
        raise UnsupportedPolicy(f"{policy.name}: a policy document needs a Statement")
    unknown = set(document) - _DOCUMENT_KEYS
    if unknown:
        raise UnsupportedPolicy(f"{policy.name}: unknown top-level element(s) {sorted(unknown)}")
    version = document.get("Version", "2008-10-17")
    if version not in _VERSIONS:
        raise UnsupportedPolicy(f"{policy.name}: unknown Version {version!r}")
    raw_statements = document["Statement"]
    if isinstance(raw_statements, Mapping):
        raw_statements = [raw_statements]
    if not isinstance(raw_statements, list):
        raise UnsupportedPolicy(f"{policy.name}: Statement must be an object or a list")
    statements = tuple(
        _parse_statement(raw, StatementRef(policy.name, _label(raw, index)), kind)
        for index, raw in enumerate(raw_statements)
    )
    return version, statements


def _label(raw: object, index: int) -> str:
    sid = raw.get("Sid") if isinstance(raw, Mapping) else None
    return str(sid) if sid else str(index)


def _action_matches(statement: _Statement, action: str) -> bool:
    hit = any(
        _wildcard_match((_Piece(pattern, literal=False),), action, True) for pattern in statement.actions
    )
    return hit != statement.not_action


def _resource_matches(statement: _Statement, resource: str, ctx: _Context, version: str) -> bool:
    hit = any(_wildcard_match(_expand(pattern, ctx, version), resource) for pattern in statement.resources)
    return hit != statement.not_resource


def _statement_applies(statement: _Statement, request: Request, ctx: _Context, version: str) -> bool:
    """Action, resource and every condition must match; a missing policy variable means no match."""
    try:
        return (
            _action_matches(statement, request.action)
            and _resource_matches(statement, request.resource, ctx, version)
            and all(_condition_holds(condition, ctx, version) for condition in statement.conditions)
        )
    except _MissingVariable:
        return False


# --- principals ---------------------------------------------------------------------------------


def _principal_entries(principal: object) -> Iterator[tuple[str, str]]:
    match principal:
        case "*":
            yield "AWS", "*"
        case Mapping():
            for kind, values in principal.items():
                for value in _strings(values, f"Principal.{kind}"):
                    yield str(kind), value
        case _:
            raise UnsupportedPolicy(f'Principal must be "*" or an object, not {principal!r}')


def _principal_match(principal: object, caller: Principal) -> _Match:
    """The strongest way any entry of Principal names the caller."""
    return max(
        (_entry_match(kind, value, caller) for kind, value in _principal_entries(principal)),
        default=_Match.NONE,
    )


def _entry_match(kind: str, value: str, caller: Principal) -> _Match:
    match kind:
        case "AWS":
            return _aws_entry_match(value, caller)
        case "Service":
            return _Match.DIRECT if caller.service is not None and value == caller.service else _Match.NONE
        case _:
            raise UnsupportedPolicy(f"Principal type {kind!r} is not supported by the twin's evaluator")


def _aws_entry_match(value: str, caller: Principal) -> _Match:
    if value == "*":
        return _Match.ROLE if caller.role_arn else _Match.DIRECT
    if caller.service is not None:
        return _Match.NONE
    if value == caller.arn:
        return _Match.DIRECT
    if caller.role_arn is not None and value == caller.role_arn:
        return _Match.ROLE
    root = _ROOT_ARN.fullmatch(value)
    account = root.group(1) if root else value
    return _Match.ACCOUNT if account == caller.account else _Match.NONE


# --- evaluation ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Hit:
    kind: PolicyKind
    statement: _Statement
    principal: _Match


def _hits(request: Request, ctx: _Context, policies: Iterable[tuple[PolicyKind, NamedPolicy]]) -> list[_Hit]:
    """Every statement that applies, across all policies: no short-circuit, for coverage."""
    found: list[_Hit] = []
    for kind, policy in policies:
        version, statements = _parse_policy(policy, kind)
        for statement in statements:
            match_ = (
                _principal_match(statement.principal, request.principal)
                if kind == "resource"
                else _Match.DIRECT
            )
            if match_ is not _Match.NONE and _statement_applies(statement, request, ctx, version):
                found.append(_Hit(kind, statement, match_))
    return found


def _policies(
    identity: Sequence[NamedPolicy], boundary: NamedPolicy | None, resource_policy: NamedPolicy | None
) -> list[tuple[PolicyKind, NamedPolicy]]:
    policies: list[tuple[PolicyKind, NamedPolicy]] = [("identity", policy) for policy in identity]
    if boundary is not None:
        policies.append(("boundary", boundary))
    if resource_policy is not None:
        policies.append(("resource", resource_policy))
    return policies


@dataclass(frozen=True, slots=True)
class _Grants:
    """What the matching Allow statements add up to."""

    identity: bool
    boundary: bool
    resource: frozenset[_Match]

    def via_resource(self) -> bool:
        """Session/user/service grants stand alone; a role-ARN or "*" grant must pass the boundary."""
        return _Match.DIRECT in self.resource or (_Match.ROLE in self.resource and self.boundary)

    def via_identity(self) -> bool:
        return self.identity and self.boundary

    def cut_by_boundary(self) -> bool:
        return not self.boundary and (self.identity or _Match.ROLE in self.resource)


def _ordinary(grants: _Grants) -> Reason:
    if grants.via_identity() or grants.via_resource():
        return "allowed"
    return "boundary-deny" if grants.cut_by_boundary() else "implicit-deny"


def _kms(grants: _Grants) -> Reason:
    """A KMS key is reachable only through its key policy; IAM counts only if the policy delegates."""
    if grants.via_resource():
        return "allowed"
    if _Match.ACCOUNT in grants.resource:
        return _ordinary(_Grants(grants.identity, grants.boundary, frozenset()))
    if _Match.ROLE in grants.resource:
        return "boundary-deny"
    return "kms-key-policy-deny"


def evaluate(
    request: Request,
    identity: Sequence[NamedPolicy],
    boundary: NamedPolicy | None = None,
    resource_policy: NamedPolicy | None = None,
    resource_policy_kind: ResourcePolicyKind = "ordinary",
) -> Decision:
    """Decide one same-account request the way AWS does.

    Raises `catalog.UnknownAction` for an action AWS does not have (a typo in the twin would
    otherwise make every policy look too narrow) and `UnsupportedPolicy` for policies it
    cannot judge faithfully.
    """
    catalog.action_info(request.action)
    ctx = _Context.of(request)
    hits = _hits(request, ctx, _policies(identity, boundary, resource_policy))
    allowing = tuple(hit.statement.ref for hit in hits if hit.statement.effect == "Allow")
    denies = [hit for hit in hits if hit.statement.effect == "Deny"]
    if denies:
        refs = tuple(hit.statement.ref for hit in denies)
        return Decision(request, False, "explicit-deny", allowing, refs, denied_in=denies[0].kind)
    allows = [hit for hit in hits if hit.statement.effect == "Allow"]
    grants = _Grants(
        identity=any(hit.kind == "identity" for hit in allows),
        boundary=boundary is None or any(hit.kind == "boundary" for hit in allows),
        resource=frozenset(hit.principal for hit in allows if hit.kind == "resource"),
    )
    reason = _kms(grants) if resource_policy_kind == "kms-key-policy" else _ordinary(grants)
    return Decision(request, reason == "allowed", reason, allowing)
