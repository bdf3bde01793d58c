"""The policies of each principal kcluster deploys, read from what was deployed, never restated.

Functions: each function's execution role as the SAM translator wrote it into the deployed stack (inline
policies with SAM's policy templates expanded, the template's own managed policies, AWS managed
policies, the permissions boundary). AWS managed policies are their real documents, which moto ships.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from moto.iam.aws_managed_policies import aws_managed_policies_data

from twin.aws.cfn import Stack
from twin.iam.policy import NamedPolicy

_AWS_MANAGED_PREFIX = "arn:aws:iam::aws:policy/"


@cache
def _aws_managed() -> dict[str, Any]:
    return json.loads(aws_managed_policies_data)


def aws_managed_policy(arn: str) -> NamedPolicy:
    """The real document of an AWS managed policy (as moto ships it); raises for one it does not have."""
    name = arn.rsplit("/", 1)[1]
    try:
        document = _aws_managed()[name]["Document"]
    except KeyError:
        raise LookupError(f"no document for the AWS managed policy {arn}") from None
    return NamedPolicy(f"aws-managed:{name}", document)


def _managed(stack: Stack, arn: str) -> NamedPolicy:
    if arn.startswith(_AWS_MANAGED_PREFIX):
        return aws_managed_policy(arn)
    for resource in stack.resources.values():
        if resource.type == "AWS::IAM::ManagedPolicy" and resource.physical_id == arn:
            return NamedPolicy(resource.logical_id, resource.properties["PolicyDocument"])
    raise LookupError(f"managed policy {arn} is neither AWS managed nor in stack {stack.name}")


def role_policies(stack: Stack, role_logical_id: str) -> tuple[tuple[NamedPolicy, ...], NamedPolicy | None]:
    """(identity policies, permissions boundary) of a role of the stack."""
    role = stack.resources[role_logical_id]
    properties = role.properties
    policies = [
        NamedPolicy(f"{role_logical_id}/{inline['PolicyName']}", inline["PolicyDocument"])
        for inline in properties.get("Policies") or []
    ]
    policies += [_managed(stack, arn) for arn in properties.get("ManagedPolicyArns") or []]
    for resource in stack.resources.values():
        attached = resource.properties.get("Roles") or []
        if resource.type == "AWS::IAM::Policy" and role.physical_id in attached:
            policies.append(NamedPolicy(resource.logical_id, resource.properties["PolicyDocument"]))
    boundary_arn = properties.get("PermissionsBoundary")
    boundary = _managed(stack, boundary_arn) if boundary_arn else None
    return tuple(policies), boundary


def function_roles(stack: Stack) -> dict[str, tuple[str, str]]:
    """Function logical id -> (role name, role logical id), from each function's Role ARN."""
    by_arn = {
        resource.attributes.get("Arn"): resource
        for resource in stack.resources.values()
        if resource.type == "AWS::IAM::Role"
    }
    roles = {}
    for logical_id in stack.functions:
        role_arn = stack.resources[logical_id].properties.get("Role")
        role = by_arn.get(role_arn)
        if role is None:
            raise LookupError(f"function {logical_id}: its role {role_arn} is not in stack {stack.name}")
        roles[logical_id] = (role.physical_id, role.logical_id)
    return roles
