"""SSM Run Command: send our documents, read an invocation's result line, ask which agents are online."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from kcluster import contract
from kcluster.core.models import FoundCommand


class SendRefused(Exception):
    """SendCommand refused the call (e.g. InvalidInstanceId: an agent that has not registered yet)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass(frozen=True)
class InvocationResult:
    status: str
    result: dict[str, Any] | None  # the script's JSON result line, if its last stdout line is one


class Commands:
    def __init__(self, client: Any = None) -> None:
        self._client = client or boto3.client("ssm")

    def send(
        self,
        document_name: str,
        targets: tuple[str, ...],
        parameters: dict[str, str],
        timeout_seconds: int,
        comment: str,
    ) -> str:
        if not 1 <= len(targets) <= contract.MAX_INSTANCES_PER_COMMAND:
            raise ValueError(f"SendCommand takes 1..{contract.MAX_INSTANCES_PER_COMMAND} instances")
        try:
            response = self._client.send_command(
                DocumentName=document_name,
                InstanceIds=list(targets),
                Parameters={name: [value] for name, value in parameters.items()},
                TimeoutSeconds=timeout_seconds,
                Comment=comment[:100],
            )
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code in ("InvalidInstanceId", "InvalidDocument", "InvalidParameters"):
                raise SendRefused(code, error.response["Error"].get("Message", "")) from error
            raise
        return str(response["Command"]["CommandId"])

    def invocation(self, command_id: str, instance_id: str) -> InvocationResult | None:
        """The invocation's status and result line; None while SSM does not know it yet."""
        try:
            response = self._client.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("InvocationDoesNotExist", "InvalidCommandId"):
                return None
            raise
        return InvocationResult(
            response["Status"], parse_result_line(response.get("StandardOutputContent", ""))
        )

    def cancel(self, command_id: str, instance_id: str) -> str | None:
        """Best effort, and never raises for an AWS error: None when cancelled (or already finished),
        else the error code. Cancelling only narrows a race (a join still running on a leaving
        instance); nothing after it (completing the lifecycle action) may wait on it."""
        try:
            self._client.cancel_command(CommandId=command_id, InstanceIds=[instance_id])
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code in ("InvalidCommandId", "InvalidInstanceId", "DuplicateInstanceId"):
                return None  # already finished, or the instance is gone: nothing to cancel
            return str(code)
        except BotoCoreError as error:  # e.g. the endpoint unreachable after botocore's own retries
            return type(error).__name__
        return None

    def sent_since(self, document_name: str, instance_id: str, since: float) -> list[FoundCommand]:
        """Commands of `document_name` sent to `instance_id` at or after `since` (epoch seconds), newest
        first: what a function that died between SendCommand and recording its id did send."""
        after = datetime.fromtimestamp(since, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        found = []
        paginator = self._client.get_paginator("list_commands")
        pages = paginator.paginate(
            InstanceId=instance_id,
            Filters=[
                {"key": "DocumentName", "value": document_name},
                {"key": "InvokedAfter", "value": after},
            ],
        )
        for page in pages:
            for command in page["Commands"]:
                parameters = {
                    name: values[0] for name, values in command.get("Parameters", {}).items() if values
                }
                found.append(
                    FoundCommand(command["CommandId"], tuple(command.get("InstanceIds", ())), parameters)
                )
        return found

    def online_agents(self, instance_ids: list[str]) -> set[str]:
        online: set[str] = set()
        for start in range(0, len(instance_ids), contract.MAX_INSTANCES_PER_COMMAND):
            chunk = instance_ids[start : start + contract.MAX_INSTANCES_PER_COMMAND]
            paginator = self._client.get_paginator("describe_instance_information")
            for page in paginator.paginate(Filters=[{"Key": "InstanceIds", "Values": chunk}]):
                online.update(
                    info["InstanceId"]
                    for info in page["InstanceInformationList"]
                    if info.get("PingStatus") == "Online"
                )
        return online


def parse_result_line(stdout: str) -> dict[str, Any] | None:
    """The node scripts end with one JSON object on stdout; anything else is no result."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if not line:
            continue
        try:
            value = json.loads(line)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None
    return None
