"""IAM switched on for a twin: every principal kcluster deploys, with its credentials and its policies.

- each function: its execution role from the deployed stack (`identities.function_roles`);
- each node: its instance profile's role as Terraform rendered and the twin deployed it (`nodes.node_roles`);
- the twin itself (what `terraform apply` and `sam deploy` do, AWS's own services' internals): the
  administrator, not checked.

The report (`kcluster simulate --json` under "iam") counts the checked calls, the denied ones, and the
Allow statements of kcluster's own policies that allowed nothing in the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twin.iam import coverage, enforce, identities, nodes
from twin.iam.enforce import Authorizer, Denial
from twin.iam.principals import Directory, Identity

if TYPE_CHECKING:
    from twin.world import Twin


@dataclass
class TwinIam:
    authorizer: Authorizer
    directory: Directory
    function_keys: dict[str, str]
    node_keys: dict[str, str]
    # The person who runs terraform apply and changes desired capacity: an administrator of the account.
    operator_key: str = ""
    undo: Callable[[], None] = field(default=lambda: None)

    def function_access_key(self, logical_id: str) -> str:
        return self.function_keys[logical_id]

    def node_identity(self, role: str) -> Identity:
        return self.directory.by_key[self.node_keys[role]]

    def authorize_service(
        self, service: str, action: str, resource: str, context: dict[str, Any]
    ) -> Denial | None:
        return self.authorizer.authorize_service(service, action, resource, context)

    def authorize_function_role(
        self, logical_id: str, action: str, resource: str, context: dict[str, Any] | None = None
    ) -> Denial | None:
        """What the Lambda service does with a function's execution role (polling its SQS event source,
        sending a failed event to its dead-letter queue): authorized as that role."""
        identity = self.directory.by_key[self.function_keys[logical_id]]
        return self.authorizer.evaluate(identity, action, resource, context or {})

    def authorize_node(self, role: str, action: str, resource: str, context: dict[str, Any]) -> Denial | None:
        """A node's own call that the twin emulates outside botocore (PutEvents from its user data)."""
        return self.authorizer.evaluate(self.node_identity(role), action, resource, context)

    def identities(self) -> list[Identity]:
        keys = [*self.function_keys.values(), *self.node_keys.values()]
        return [self.directory.by_key[key] for key in keys]

    def report(self) -> dict[str, Any]:
        return {
            "calls": self.authorizer.calls,
            "denied": len(self.authorizer.denials),
            "denials": [
                {"principal": d.label, "action": d.action, "resource": d.resource}
                for d in self.authorizer.denials[:20]
            ],
            **self._statements_not_used_here(),
        }

    def _statements_not_used_here(self) -> dict[str, Any]:
        """Statements no call of this run needed: those no exercise of the coverage test needs either
        (`unused_statements`, which must stay empty) and those some other exercise needs, with which."""
        known = coverage.needed_by()
        not_used = self.authorizer.unused_statements(self.identities())
        return {
            "unused_statements": [statement for statement in not_used if statement not in known],
            "exercised_elsewhere": {
                statement: list(known[statement]) for statement in not_used if statement in known
            },
        }


def enforce_for(twin: Twin) -> TwinIam:
    directory = Directory(twin.stack.account_id)
    function_keys = {}
    for logical_id, (role_name, role_logical_id) in identities.function_roles(twin.stack).items():
        policies, boundary = identities.role_policies(twin.stack, role_logical_id)
        directory.add_role(role_name, f"function:{logical_id}", policies, boundary)
        function_keys[logical_id] = directory.session_key(role_name, twin.stack.functions[logical_id].name)
    node_keys = {}
    for role, (role_name, policies, boundary) in nodes.node_roles(twin.deployment.applied).items():
        directory.add_role(role_name, f"node:{role}", policies, boundary)
        node_keys[role] = directory.session_key(role_name, f"{role}-instance")
    twin.fleet.role_access_keys = dict(node_keys)
    operator_policies = (identities.aws_managed_policy("arn:aws:iam::aws:policy/AdministratorAccess"),)
    directory.add_role(nodes.OPERATOR_ROLE_NAME, "operator", operator_policies)
    operator_key = directory.session_key(nodes.OPERATOR_ROLE_NAME, "operator")
    authorizer = Authorizer(directory, twin.stack.account_id)
    authorizer.on_denial = lambda denial: twin.recorder.note(
        "iam", f"AccessDenied: {denial.label} {denial.action} on {denial.resource}"
    )
    iam = TwinIam(authorizer, directory, function_keys, node_keys, operator_key)
    iam.undo = enforce.install(authorizer)
    return iam
