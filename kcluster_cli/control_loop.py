"""Where the cluster's control loop is: the SAM stack writes its state table and function names to one
SSM parameter (template.yaml's ControlLoopParameter), as Terraform writes the cluster's configuration."""

from __future__ import annotations

import json
from dataclasses import dataclass

from botocore.exceptions import ClientError

from kcluster import contract
from kcluster_cli.aws import Cluster, aws_errors
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
    with aws_errors(f"reading {name}"):
        try:
            value = cluster.client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
        except ClientError as error:
            if error.response["Error"]["Code"] != "ParameterNotFound":
                raise
            raise OperatorError(
                f"cluster {cluster.name!r} has no control loop in {cluster.region}: there is no parameter "
                f"{name}. Deploy it with `sam deploy --parameter-overrides ClusterName={cluster.name}`"
            ) from error
    try:
        document = json.loads(value)
        functions = {role: str(document["functions"][role]) for role in FUNCTION_ROLES}
        return ControlLoop(str(document["stack"]), str(document["state_table"]), functions)
    except (ValueError, KeyError, TypeError) as error:
        raise OperatorError(f"{name} does not describe a kcluster control loop ({error})") from error
