"""Where the cluster's control loop is: the SAM stack writes its state table and function names to one
SSM parameter (template.yaml's ControlLoopParameter), as Terraform writes the cluster's configuration."""

from __future__ import annotations

import json
from dataclasses import dataclass

from kcluster import contract
from kcluster_cli.aws import Cluster, read_parameter
from kcluster_cli.errors import OperatorError

FUNCTION_ROLES = ("reactor", "reconciler", "remediator")


@dataclass(frozen=True)
class ControlLoop:
    stack: str
    state_table: str
    functions: dict[str, str]  # role (reactor, reconciler, remediator) -> function name

    def log_group(self, role: str) -> str:
        # Lambda's default log group; the template sets no other.
        return f"/aws/lambda/{self.functions[role]}"


def find_control_loop(cluster: Cluster) -> ControlLoop:
    name = contract.control_loop_parameter_name(cluster.name)
    value = read_parameter(
        cluster.client("ssm"),
        name,
        missing=f"cluster {cluster.name!r} has no control loop in {cluster.region}: there is no parameter "
        f"{name}. Deploy it with `sam deploy --parameter-overrides ClusterName={cluster.name}`",
    )
    try:
        document = json.loads(value)
        functions = {role: str(document["functions"][role]) for role in FUNCTION_ROLES}
        return ControlLoop(str(document["stack"]), str(document["state_table"]), functions)
    except (ValueError, KeyError, TypeError) as error:
        raise OperatorError(f"{name} does not describe a kcluster control loop ({error})") from error
