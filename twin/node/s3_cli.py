"""The node's `aws s3 cp` and `aws s3api head-object`, as the AWS CLI v2 runs them, against (moto's) S3.

Only what the node scripts use: an upload of a local file (with --sse aws:kms --sse-kms-key-id), a
download to a local file or to stdout ("-"), and head-object. The local file is read or written on the
instance's own sandbox only (the CLI runs on the instance); the bytes never pass through the fake
tool's socket. Exit statuses and messages are the CLI's: `s3 cp` fails with 1, `s3api` with 254.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from twin.node.tools import (
    EXIT_AWS_CONFIG_ERROR,
    EXIT_AWS_SERVICE_ERROR,
    ToolCall,
    ToolResult,
    UsageError,
    instance_path,
    split_args,
)

# `aws s3` commands exit 1 when a transfer failed (254 is for s3api and the other services).
EXIT_S3_TRANSFER_FAILED = 1
_CP_VALUE_FLAGS = {"--region", "--sse", "--sse-kms-key-id"}
_CP_BOOL_FLAGS = {"--only-show-errors", "--no-progress", "--quiet"}


def _error_text(error: ClientError) -> str:
    code = error.response["Error"].get("Code", "Unknown")
    message = error.response["Error"].get("Message", "")
    return f"An error occurred ({code}) when calling the {error.operation_name} operation: {message}"


def _split_s3_url(url: str) -> tuple[str, str]:
    bucket, _, key = url[len("s3://") :].partition("/")
    if not bucket or not key:
        raise UsageError(f"only s3://bucket/key objects are modelled: {url}")
    return bucket, key


class S3Cli:
    """`s3_client(region, instance_id)` is the instance's S3 client (its own role's credentials);
    `sandbox(instance_id)` is the directory standing for the instance's root filesystem."""

    def __init__(self, s3_client: Callable[[str, str], Any], sandbox: Callable[[str], Path]) -> None:
        self._s3_client = s3_client
        self._sandbox = sandbox

    def handle(self, call: ToolCall) -> ToolResult:
        if call.argv[:2] == ["s3", "cp"]:
            return self._cp(call)
        if call.argv[:2] == ["s3api", "head-object"]:
            return self._head_object(call)
        raise UsageError("only aws s3 cp and aws s3api head-object are modelled")

    def _client(self, call: ToolCall, options: dict[str, Any]) -> Any | None:
        region = options.get("--region") or call.env.get("AWS_REGION") or call.env.get("AWS_DEFAULT_REGION")
        return self._s3_client(region, call.instance_id) if region else None

    def _cp(self, call: ToolCall) -> ToolResult:
        positionals, options = split_args(
            call.argv[2:], value_flags=_CP_VALUE_FLAGS, bool_flags=_CP_BOOL_FLAGS
        )
        if len(positionals) != 2:
            raise UsageError("s3 cp SOURCE DESTINATION")
        client = self._client(call, options)
        if client is None:
            return ToolResult(EXIT_AWS_CONFIG_ERROR, stderr="\nYou must specify a region.\n")
        source, destination = positionals
        if destination.startswith("s3://") and not source.startswith("s3://"):
            return self._upload(call, client, source, destination, options)
        if source.startswith("s3://") and not destination.startswith("s3://"):
            return self._download(call, client, source, destination, options)
        raise UsageError("only uploads and downloads are modelled")

    def _upload(
        self, call: ToolCall, client: Any, source: str, destination: str, options: dict[str, Any]
    ) -> ToolResult:
        bucket, key = _split_s3_url(destination)
        path = instance_path(self._sandbox(call.instance_id), source)
        if not path.is_file():
            return ToolResult(255, stderr=f"\nThe user-provided path {source} does not exist.\n")
        request: dict[str, Any] = {"Bucket": bucket, "Key": key, "Body": path.read_bytes()}
        if "--sse" in options:
            request["ServerSideEncryption"] = options["--sse"]
        if "--sse-kms-key-id" in options:
            request["SSEKMSKeyId"] = options["--sse-kms-key-id"]
        try:
            client.put_object(**request)
        except ClientError as error:
            return ToolResult(
                EXIT_S3_TRANSFER_FAILED,
                stderr=f"upload failed: {source} to {destination} {_error_text(error)}\n",
            )
        quiet = options.get("--only-show-errors") or options.get("--quiet")
        return ToolResult(0, "" if quiet else f"upload: {source} to {destination}\n")

    def _download(
        self, call: ToolCall, client: Any, source: str, destination: str, options: dict[str, Any]
    ) -> ToolResult:
        bucket, key = _split_s3_url(source)
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as error:
            return ToolResult(
                EXIT_S3_TRANSFER_FAILED,
                stderr=f"download failed: {source} to {destination} {_error_text(error)}\n",
            )
        if destination == "-":
            try:
                return ToolResult(0, body.decode("utf-8"))
            except UnicodeDecodeError:
                raise UsageError("only text objects are modelled on stdout") from None
        path = instance_path(self._sandbox(call.instance_id), destination)
        path.write_bytes(body)
        quiet = options.get("--only-show-errors") or options.get("--quiet")
        return ToolResult(0, "" if quiet else f"download: {source} to {destination}\n")

    def _head_object(self, call: ToolCall) -> ToolResult:
        positionals, options = split_args(
            call.argv[2:], value_flags={"--region", "--bucket", "--key", "--query", "--output"}
        )
        if positionals or "--bucket" not in options or "--key" not in options:
            raise UsageError("s3api head-object --bucket B --key K")
        client = self._client(call, options)
        if client is None:
            return ToolResult(EXIT_AWS_CONFIG_ERROR, stderr="\nYou must specify a region.\n")
        try:
            response = client.head_object(Bucket=options["--bucket"], Key=options["--key"])
        except ClientError as error:
            # HeadObject has no body: the CLI shows the HTTP status as the code ("(404) ... Not Found").
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "Unknown")
            message = error.response["Error"].get("Message") or (
                "Not Found" if status == 404 else "Forbidden"
            )
            return ToolResult(
                EXIT_AWS_SERVICE_ERROR,
                stderr=f"\nAn error occurred ({status}) when calling the HeadObject operation: {message}\n",
            )
        response.pop("ResponseMetadata", None)
        return ToolResult(0, json.dumps(response, default=str, indent=4) + "\n")
