"""The node roles' policies as Terraform rendered and the twin deployed them, for the twin to enforce.

Read from the deployment (twin/terraform/deployment.py), never restated: each `aws_iam_role.node`
instance, its inline policy (the JSON the provider rendered from `aws_iam_policy_document`, with the
ARNs AWS gave what the module created), its attached AWS managed policies (their real documents, which
moto ships) and its permissions boundary.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from twin.iam.identities import aws_managed_policy
from twin.iam.policy import NamedPolicy
from twin.terraform.deployment import OPERATOR_ROLE_NAME, operator_role_arn

if TYPE_CHECKING:
    from twin.terraform.deploy import Applied

__all__ = ["OPERATOR_ROLE_NAME", "node_roles", "operator_role_arn"]

_ROLE_KEYS = {"control_plane": "control-plane", "worker": "worker"}


def _key(address: str) -> str:
    """The for_each key of an address such as aws_iam_role.node["worker"]."""
    return address.split("[", 1)[1].rstrip("]").strip('"')


def node_roles(applied: Applied) -> dict[str, tuple[str, tuple[NamedPolicy, ...], NamedPolicy | None]]:
    """role ("control-plane" | "worker") -> (role name, identity policies, permissions boundary)."""
    inline = {_key(address): values for address, values in applied.of_type("aws_iam_role_policy").items()}
    attached: dict[str, list[str]] = {}
    for address, values in applied.of_type("aws_iam_role_policy_attachment").items():
        attached.setdefault(_key(address), []).append(values["policy_arn"])
    found = {}
    for address, role in applied.of_type("aws_iam_role").items():
        key = _key(address)
        if key not in _ROLE_KEYS:
            continue
        policy = inline[key]
        policies = [NamedPolicy(f"node-{key}/{policy['name']}", json.loads(policy["policy"]))]
        policies += [aws_managed_policy(arn) for arn in attached.get(key, [])]
        boundary_arn = role.get("permissions_boundary")
        boundary = aws_managed_policy(boundary_arn) if boundary_arn else None
        found[_ROLE_KEYS[key]] = (role["name"], tuple(policies), boundary)
    return found
