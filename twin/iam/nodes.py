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
    """role ("control-plane" | "worker") -> (role name, identity policies, permissions boundary).

    Policies are matched to a role by the role they name (an aws_iam_role's id is its name), so an inline
    policy of its own (backup.tf's control_plane_backup) counts as much as the for_each ones of iam.tf."""
    inline: dict[str, list[dict]] = {}
    for policy in applied.of_type("aws_iam_role_policy").values():
        inline.setdefault(policy["role"], []).append(policy)
    attached: dict[str, list[str]] = {}
    for attachment in applied.of_type("aws_iam_role_policy_attachment").values():
        attached.setdefault(attachment["role"], []).append(attachment["policy_arn"])
    found = {}
    for address, role in applied.of_type("aws_iam_role").items():
        key = _key(address)
        if key not in _ROLE_KEYS:
            continue
        name = role["name"]
        policies = [
            NamedPolicy(f"node-{key}/{policy['name']}", json.loads(policy["policy"]))
            for policy in sorted(inline.get(name, []), key=lambda policy: policy["name"])
        ]
        policies += [aws_managed_policy(arn) for arn in attached.get(name, [])]
        boundary_arn = role.get("permissions_boundary")
        boundary = aws_managed_policy(boundary_arn) if boundary_arn else None
        found[_ROLE_KEYS[key]] = (name, tuple(policies), boundary)
    return found
