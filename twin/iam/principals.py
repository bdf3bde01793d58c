"""Who makes each call in the twin: one set of credentials per principal, as on AWS.

On AWS a Lambda function gets its execution role's session credentials in its environment, an instance
gets its instance-profile role's credentials from IMDS, and the operator has their own. The twin hands
out one access key per principal so that every botocore call can be attributed to the principal that
would make it on AWS. The twin's own set-up (what `terraform apply` and `sam deploy` do, and AWS's own
services) uses the administrator key and is not checked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from twin.iam.policy import NamedPolicy, Principal

# The twin's own environment ("testing") and moto's mock_aws default ("FOOBARKEY"): the administrator.
ADMIN_ACCESS_KEYS = frozenset({"testing", "FOOBARKEY"})


@dataclass(frozen=True)
class Identity:
    """A principal with the policies AWS would evaluate for it."""

    principal: Principal
    label: str  # how reports name it: "function:Reactor", "node:control-plane", "operator"
    policies: tuple[NamedPolicy, ...]
    boundary: NamedPolicy | None = None


@dataclass
class Directory:
    """Access key -> identity. Keys are derived from the session name, so a seed replays the same keys."""

    account: str
    by_key: dict[str, Identity] = field(default_factory=dict)
    roles: dict[str, tuple[str, tuple[NamedPolicy, ...], NamedPolicy | None]] = field(default_factory=dict)

    def add_role(
        self,
        role_name: str,
        label: str,
        policies: tuple[NamedPolicy, ...],
        boundary: NamedPolicy | None = None,
    ) -> None:
        self.roles[role_name] = (label, policies, boundary)

    def session_key(self, role_name: str, session: str) -> str:
        """The access key of a session of `role_name` (created on first use), as STS would issue it."""
        label, policies, boundary = self.roles[role_name]
        key = "ASIA" + hashlib.sha256(f"{role_name}/{session}".encode()).hexdigest()[:16].upper()
        if key not in self.by_key:
            role_arn = f"arn:aws:iam::{self.account}:role/{role_name}"
            principal = Principal(
                arn=f"arn:aws:sts::{self.account}:assumed-role/{role_name}/{session}",
                account=self.account,
                role_arn=role_arn,
                service=None,
            )
            self.by_key[key] = Identity(principal, label, policies, boundary)
        return key

    def identity(self, access_key: str) -> Identity | None:
        """None for the administrator; raises for a key nobody was given (a call nobody can be held to)."""
        if access_key in ADMIN_ACCESS_KEYS:
            return None
        try:
            return self.by_key[access_key]
        except KeyError:
            raise PermissionError(f"access key {access_key!r} belongs to no principal of the twin") from None


def service_principal(service: str, account: str) -> Principal:
    """An AWS service acting on the account's behalf (EventBridge delivering, CloudWatch publishing)."""
    return Principal(arn=service, account=account, role_arn=None, service=service)
