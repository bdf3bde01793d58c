"""The command lines of the fake node tools, turned into KubeModel and SSM calls.

Only what the node scripts use is supported; anything else fails loudly (exit 64) so a script that
drifts from what the twin understands is caught, not silently "succeeds".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from twin.node.model import KubeError, KubeModel

EXIT_USAGE = 64
# AWS CLI v2: 254 for a service error, 253 for a client configuration error.
EXIT_AWS_SERVICE_ERROR = 254
EXIT_AWS_CONFIG_ERROR = 253


@dataclass(frozen=True)
class ToolResult:
    exit_code: int
    stdout: str = ""
    stderr: str = ""


class UsageError(Exception):
    pass


@dataclass(frozen=True)
class ToolCall:
    tool: str
    argv: list[str]
    env: dict[str, str]
    files: dict[str, str]
    stdin: str = ""

    @property
    def instance_id(self) -> str:
        return self.env.get("KCLUSTER_TWIN_INSTANCE", "")

    def file(self, path: str) -> str:
        if path not in self.files:
            raise KubeError(f"open {path}: no such file or directory")
        return self.files[path]


def split_args(
    argv: list[str], *, value_flags: set[str] = frozenset(), bool_flags: set[str] = frozenset()
) -> tuple[list[str], dict[str, Any]]:
    """Positionals and options (--flag value, --flag=value, boolean --flag); unknown flags are errors."""
    positionals: list[str] = []
    options: dict[str, Any] = {}
    index = 0
    while index < len(argv):
        arg = argv[index]
        name, has_value, inline = arg.partition("=")
        if arg.startswith("-") and arg != "-":
            if name in value_flags:
                if has_value:
                    options[name] = inline
                else:
                    index += 1
                    if index == len(argv):
                        raise UsageError(f"flag needs an argument: {name}")
                    options[name] = argv[index]
            elif arg in bool_flags:
                options[arg] = True
            else:
                raise UsageError(f"unknown flag: {arg}")
        else:
            positionals.append(arg)
        index += 1
    return positionals, options


class NodeTools:
    def __init__(self, model: KubeModel, ssm_client: Callable[[str], Any]) -> None:
        self._model = model
        self._ssm_client = ssm_client
        self._handlers = {
            "kubeadm": self._kubeadm,
            "kubectl": self._kubectl,
            "systemctl": self._systemctl,
            "cloud-init": self._cloud_init,
            "aws": self._aws,
        }

    def handle(self, call: ToolCall) -> ToolResult:
        handler = self._handlers.get(call.tool)
        try:
            if handler is None:
                raise UsageError(f"unknown tool {call.tool}")
            self._model.host(call.instance_id)
            return handler(call)
        except UsageError as error:
            command = " ".join([call.tool, *call.argv[:3]])
            return ToolResult(
                EXIT_USAGE, stderr=f"{call.tool} (kcluster twin): unsupported: {command}: {error}\n"
            )
        except KubeError as error:
            return ToolResult(error.exit_code, stderr=f"{error}\n")

    # ----- kubeadm -----

    def _kubeadm(self, call: ToolCall) -> ToolResult:
        instance = call.instance_id
        args = call.argv
        if args[:1] == ["version"]:
            _, options = split_args(args[1:], value_flags={"-o", "--output"})
            version = self._model.kubeadm_version(instance)
            if options.get("-o", options.get("--output")) == "short":
                return ToolResult(0, f"{version}\n")
            return ToolResult(0, f'kubeadm version: &version.Info{{GitVersion:"{version}"}}\n')
        if args[:3] == ["init", "phase", "upload-certs"]:
            _, options = split_args(args[3:], bool_flags={"--upload-certs"})
            if not options.get("--upload-certs"):
                raise UsageError("upload-certs without --upload-certs does nothing")
            key = self._model.upload_certs(instance)
            stdout = (
                '[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" '
                f"Namespace\n[upload-certs] Using certificate key:\n{key}\n"
            )
            return ToolResult(0, stdout)
        if args[:1] == ["init"]:
            _, options = split_args(args[1:], value_flags={"--config"}, bool_flags={"--upload-certs"})
            config = call.file(self._required(options, "--config"))
            upload = bool(options.get("--upload-certs"))
            return ToolResult(0, self._model.kubeadm_init(instance, config, upload_certs=upload))
        if args[:1] == ["join"]:
            _, options = split_args(args[1:], value_flags={"--config"})
            config = call.file(self._required(options, "--config"))
            return ToolResult(0, self._model.kubeadm_join(instance, config))
        if args[:2] == ["token", "create"]:
            _, options = split_args(args[2:], value_flags={"--ttl"})
            return ToolResult(0, self._model.token_create(instance, options.get("--ttl")) + "\n")
        if args[:1] == ["reset"]:
            _, options = split_args(args[1:], bool_flags={"--force", "-f"})
            if not options:
                raise UsageError("reset asks for confirmation on a terminal; pass --force")
            return ToolResult(0, self._model.kubeadm_reset(instance))
        raise UsageError("subcommand not modelled")

    # ----- kubectl -----

    def _kubectl(self, call: ToolCall) -> ToolResult:
        positionals, options = split_args(
            call.argv,
            value_flags={"--kubeconfig", "--raw", "-o", "--output", "-f", "--filename"},
            bool_flags={"--overwrite"},
        )
        kubeconfig_path = options.get("--kubeconfig") or call.env.get("KUBECONFIG")
        if not kubeconfig_path or kubeconfig_path not in call.files:
            return ToolResult(
                1,
                stderr="The connection to the server localhost:8080 was refused - "
                "did you specify the right host or port?\n",
            )
        kubeconfig = call.files[kubeconfig_path]
        verb = positionals[:1]
        if verb == ["get"] and "--raw" in options:
            if options["--raw"] != "/readyz" or len(positionals) != 1:
                raise UsageError("only get --raw /readyz is modelled")
            if not self._model.api_ready(kubeconfig):
                return ToolResult(
                    1, stderr="Unable to connect to the server: dial tcp: connect: connection refused\n"
                )
            return ToolResult(0, "ok")
        if verb == ["get"] and positionals[1:2] in (["nodes"], ["node"]) and len(positionals) <= 3:
            if options.get("-o", options.get("--output")) != "json":
                raise UsageError("only -o json output is modelled")
            name = positionals[2] if len(positionals) == 3 else None
            return ToolResult(0, json.dumps(self._model.get_nodes(kubeconfig, name), indent=2) + "\n")
        if verb == ["apply"] and len(positionals) == 1:
            source = options.get("-f", options.get("--filename"))
            if not source or not source.startswith("https://"):
                raise UsageError("only apply -f https://... is modelled")
            return ToolResult(0, self._model.apply_manifest(kubeconfig, source))
        if verb == ["label"] and positionals[1:2] in (["node"], ["nodes"]) and len(positionals) >= 4:
            labels: dict[str, str | None] = {}
            for pair in positionals[3:]:
                if pair.endswith("-") and "=" not in pair:
                    labels[pair[:-1]] = None
                else:
                    key, equals, value = pair.partition("=")
                    if not equals:
                        raise UsageError(f"bad label {pair}")
                    labels[key] = value
            overwrite = bool(options.get("--overwrite"))
            return ToolResult(0, self._model.label_node(kubeconfig, positionals[2], labels, overwrite))
        raise UsageError("subcommand not modelled")

    # ----- systemctl -----

    def _systemctl(self, call: ToolCall) -> ToolResult:
        positionals, options = split_args(call.argv, bool_flags={"--quiet", "-q", "--now"})
        if positionals[1:] != ["kubelet"]:
            raise UsageError("only the kubelet unit is modelled")
        instance = call.instance_id
        action = positionals[0]
        if action == "is-active":
            active = self._model.kubelet_active(instance)
            quiet = options.get("--quiet") or options.get("-q")
            return ToolResult(0 if active else 3, "" if quiet else ("active\n" if active else "inactive\n"))
        if action == "enable":
            self._model.kubelet_enable(instance)
            if options.get("--now"):
                self._model.kubelet_restart(instance)
            return ToolResult(0)
        if action in ("restart", "start"):
            self._model.kubelet_restart(instance)
            return ToolResult(0)
        raise UsageError(f"systemctl {action} is not modelled")

    # ----- cloud-init -----

    def _cloud_init(self, call: ToolCall) -> ToolResult:
        positionals, _ = split_args(call.argv)
        host = self._model.host(call.instance_id)
        answers = {
            "v1.instance_id": host.instance_id,
            "v1.availability_zone": host.availability_zone,
            "v1.region": host.region,
            "v1.local_hostname": host.private_dns,
            "v1.local_ipv4": host.private_ip,
            "v1.cloud_name": "aws",
        }
        if len(positionals) != 2 or positionals[0] != "query" or positionals[1] not in answers:
            raise UsageError(
                "only `cloud-init query v1.<instance_id|availability_zone|region|local_hostname>`"
            )
        return ToolResult(0, answers[positionals[1]] + "\n")

    # ----- aws -----

    def _aws(self, call: ToolCall) -> ToolResult:
        positionals, options = split_args(
            call.argv,
            value_flags={"--region", "--name", "--type", "--value", "--tier", "--query", "--output"},
            bool_flags={"--overwrite", "--with-decryption"},
        )
        if positionals[:1] != ["ssm"] or len(positionals) != 2:
            raise UsageError("only aws ssm put-parameter/get-parameter are modelled")
        region = options.get("--region") or call.env.get("AWS_REGION") or call.env.get("AWS_DEFAULT_REGION")
        if not region:
            return ToolResult(EXIT_AWS_CONFIG_ERROR, stderr="\nYou must specify a region.\n")
        client = self._ssm_client(region)
        operation = positionals[1]
        try:
            if operation == "put-parameter":
                return self._put_parameter(call, client, options)
            if operation == "get-parameter":
                return self._get_parameter(client, options)
        except ClientError as error:
            code = error.response["Error"].get("Code", "Unknown")
            message = error.response["Error"].get("Message", "")
            op_name = error.operation_name
            stderr = f"\nAn error occurred ({code}) when calling the {op_name} operation: {message}\n"
            return ToolResult(EXIT_AWS_SERVICE_ERROR, stderr=stderr)
        raise UsageError(f"aws ssm {operation} is not modelled")

    def _put_parameter(self, call: ToolCall, client: Any, options: dict[str, Any]) -> ToolResult:
        value = self._required(options, "--value")
        if value.startswith("file://"):
            # The CLI reads the file verbatim (a trailing newline stays part of the value).
            value = call.file(value[len("file://") :])
        request = {
            "Name": self._required(options, "--name"),
            "Value": value,
            "Type": options.get("--type", "String"),
            "Overwrite": bool(options.get("--overwrite")),
        }
        if "--tier" in options:
            request["Tier"] = options["--tier"]
        response = client.put_parameter(**request)
        return ToolResult(
            0, json.dumps({"Version": response["Version"], "Tier": response.get("Tier", "Standard")}) + "\n"
        )

    def _get_parameter(self, client: Any, options: dict[str, Any]) -> ToolResult:
        response = client.get_parameter(
            Name=self._required(options, "--name"), WithDecryption=bool(options.get("--with-decryption"))
        )
        parameter = response["Parameter"]
        query = options.get("--query")
        if query not in (None, "Parameter.Value"):
            raise UsageError("only --query Parameter.Value is modelled")
        if query is None:
            return ToolResult(0, json.dumps({"Parameter": parameter}, default=str, indent=4) + "\n")
        if options.get("--output", "json") == "text":
            return ToolResult(0, parameter["Value"] + "\n")
        return ToolResult(0, json.dumps(parameter["Value"]) + "\n")

    @staticmethod
    def _required(options: dict[str, Any], flag: str) -> str:
        if flag not in options:
            raise UsageError(f"{flag} is required")
        return options[flag]
