"""The command lines of the fake node tools, turned into KubeModel and SSM calls.

Only what the node scripts use is supported; anything else fails loudly (exit 64) so a script that
drifts from what the twin understands is caught, not silently "succeeds".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jmespath
import yaml
from botocore.exceptions import ClientError

from twin.node.model import KubeError, KubeModel

if TYPE_CHECKING:
    from twin.node.etcd_snapshot import EtcdSnapshots

EXIT_USAGE = 64
# Where a control plane's own kube-apiserver listens (kubeadm's default bind port).
LOCAL_APISERVER = "https://127.0.0.1:6443"
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


def instance_path(sandbox_root: Path, path: str) -> Path:
    """A local path as the instance sees it; refused outside the instance's own sandbox."""
    root = sandbox_root.resolve()
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(root):
        raise UsageError(f"{path} is outside the instance's filesystem")
    return resolved


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


def aws_text(value: Any) -> str:
    """The AWS CLI's --output text rendering of a --query result."""
    if value is None:
        return "None\n"
    if not isinstance(value, list):
        return f"{value}\n"
    if all(not isinstance(item, list) for item in value):
        return "\t".join("None" if item is None else str(item) for item in value) + ("\n" if value else "")
    return "".join(aws_text(item) for item in value)


def _images(node: Any) -> Iterator[str]:
    """Every container image a manifest's objects name (any `image:` under containers lists)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image" and isinstance(value, str):
                yield value
            else:
                yield from _images(value)
    elif isinstance(node, list):
        for item in node:
            yield from _images(item)


def _aws_filters(raw: list[str]) -> list[dict]:
    """--filters Name=x,Values=a,b (shorthand syntax) as the API's Filters."""
    filters = []
    for item in raw:
        name, separator, values = item.partition(",Values=")
        if not name.startswith("Name=") or not separator:
            raise UsageError(f"only Name=...,Values=... filters are modelled: {item}")
        filters.append({"Name": name[len("Name=") :], "Values": values.split(",")})
    return filters


class NodeTools:
    def __init__(
        self,
        model: KubeModel,
        ssm_client: Callable[[str, str], Any],
        ec2_client: Callable[[str, str], Any] | None = None,
        s3: Callable[[ToolCall], ToolResult] | None = None,
        snapshots: EtcdSnapshots | None = None,
    ) -> None:
        self._model = model
        self._ssm_client = ssm_client
        self._ec2_client = ec2_client
        # `aws s3 cp` / `aws s3api head-object` (twin/node/s3_cli.py), when the fleet gives an S3 client.
        self._s3 = s3
        # etcdctl snapshot save and etcdutl (twin/node/etcd_snapshot.py), when the fleet gives sandboxes.
        self._snapshots = snapshots
        self._handlers = {
            "kubeadm": self._kubeadm,
            "kubectl": self._kubectl,
            "systemctl": self._systemctl,
            "aws": self._aws,
            "sleep": self._sleep,
            "etcdutl": self._etcdutl,
        }
        # No etcdctl on the host (no package installs one): the scripts reach etcd's own through crictl.
        from twin.node.crictl import Crictl  # crictl.py builds on this module's types

        self._handlers["crictl"] = Crictl(model, self._etcdctl, self._etcdutl).handle

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
            return ToolResult(error.exit_code, stdout=error.stdout, stderr=f"{error}\n")

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
            value_flags={"--kubeconfig", "--raw", "-o", "--output", "-f", "--filename"}
            | {"-l", "--selector", "--timeout", "--request-timeout", "--server", "--tls-server-name"},
            bool_flags={"--overwrite", "--ignore-daemonsets", "--delete-emptydir-data", "--force"}
            | {"--ignore-not-found"},
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
        if "--server" in options:
            return self._local_readyz(call, kubeconfig, positionals, options)
        if verb == ["get"] and "--raw" in options:
            if options["--raw"] != "/readyz" or len(positionals) != 1:
                raise UsageError("only get --raw /readyz is modelled")
            if not self._model.api_ready(kubeconfig, call.instance_id):
                return ToolResult(
                    1, stderr="Unable to connect to the server: dial tcp: connect: connection refused\n"
                )
            return ToolResult(0, "ok")
        if self._model.local_apiserver_down(call.instance_id):
            return ToolResult(
                1,
                stderr="The connection to the server was refused - did you specify the right host or port?\n",
            )
        if verb == ["get"] and positionals[1:2] in (["nodes"], ["node"]) and len(positionals) <= 3:
            if options.get("-o", options.get("--output")) != "json":
                raise UsageError("only -o json output is modelled")
            name = positionals[2] if len(positionals) == 3 else None
            answer = self._model.get_nodes(kubeconfig, name)
            selector = options.get("-l", options.get("--selector"))
            if selector is not None:
                if name is not None:
                    raise UsageError("a name and a selector together are not modelled")
                wanted = dict(pair.split("=", 1) for pair in selector.split(",") if "=" in pair)
                if len(wanted) != len(selector.split(",")):
                    raise UsageError("only key=value label selectors are modelled")
                answer["items"] = [
                    item
                    for item in answer["items"]
                    if all(item["metadata"]["labels"].get(k) == v for k, v in wanted.items())
                ]
            return ToolResult(0, json.dumps(answer, indent=2) + "\n")
        if verb == ["cordon"] and len(positionals) == 2:
            return ToolResult(0, self._model.cordon(kubeconfig, positionals[1]))
        if verb == ["drain"] and len(positionals) == 2:
            if not options.get("--force"):
                raise UsageError("drain without --force is not modelled (pods are all controller-managed)")
            timeout = options.get("--timeout")
            if timeout is None:
                raise UsageError("drain without --timeout waits forever; not modelled")
            stdout = self._model.drain(
                kubeconfig,
                positionals[1],
                ignore_daemonsets=bool(options.get("--ignore-daemonsets")),
                delete_emptydir_data=bool(options.get("--delete-emptydir-data")),
                timeout=timeout,
            )
            return ToolResult(0, stdout)
        if verb == ["delete"] and positionals[1:2] in (["node"], ["nodes"]) and len(positionals) == 3:
            ignore = bool(options.get("--ignore-not-found"))
            return ToolResult(0, self._model.delete_node(kubeconfig, positionals[2], ignore_not_found=ignore))
        if verb == ["apply"] and len(positionals) == 1:
            source = options.get("-f", options.get("--filename"))
            if source and source in call.files:
                return ToolResult(0, self._apply_file(kubeconfig, call.files[source]))
            if not source or not source.startswith("https://"):
                raise UsageError("only apply -f https://... or -f FILE is modelled")
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

    def _apply_file(self, kubeconfig: str, text: str) -> str:
        """`kubectl apply -f FILE` of a CNI manifest: the model learns the images its pods would pull."""
        try:
            documents = [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]
        except yaml.YAMLError as error:
            raise KubeError(f"error: error parsing manifest: {error}") from None
        images = tuple(sorted(set(_images(documents))))
        key = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
        return self._model.apply_manifest(kubeconfig, key, images)

    def _local_readyz(
        self, call: ToolCall, kubeconfig: str, positionals: list[str], options: dict[str, Any]
    ) -> ToolResult:
        """`kubectl --server https://127.0.0.1:6443 --tls-server-name kubernetes get --raw /readyz`: the
        control plane's own kube-apiserver, not whichever one the load balancer picks."""
        if (
            options["--server"] != LOCAL_APISERVER
            or options.get("--tls-server-name") != "kubernetes"
            or positionals != ["get"]
            or options.get("--raw") != "/readyz"
        ):
            raise UsageError(
                f"only --server {LOCAL_APISERVER} --tls-server-name kubernetes get --raw /readyz"
            )
        if not self._model.apiserver_running(call.instance_id):
            return ToolResult(
                1,
                stderr="The connection to the server 127.0.0.1:6443 was refused - "
                "did you specify the right host or port?\n",
            )
        if not self._model.api_ready(kubeconfig, call.instance_id):
            return ToolResult(
                1, stderr='Error from server (InternalError): an error on the server ("[-]etcd failed")\n'
            )
        return ToolResult(0, "ok")

    # ----- etcdctl (v3 API, etcd 3.4 output shapes) -----

    def _etcdctl(self, call: ToolCall) -> ToolResult:
        if call.env.get("ETCDCTL_API", "3") != "3":
            raise UsageError("only ETCDCTL_API=3 is modelled")
        positionals, options = split_args(
            call.argv,
            value_flags={"-w", "--write-out", "--endpoints", "--cacert", "--cert", "--key"}
            | {"--dial-timeout", "--command-timeout"},
            bool_flags={"--cluster", "--hex"},
        )
        for flag in ("--cacert", "--cert", "--key", "--endpoints", "--dial-timeout", "--command-timeout"):
            variable = "ETCDCTL_" + flag[2:].replace("-", "_").upper()
            if flag in options and variable in call.env:
                return ToolResult(
                    1,
                    stderr=f'Error: conflicting environment variable "{variable}" is shadowed by '
                    "corresponding command-line flag (either unset environment variable or disable flag)\n",
                )
            path = options.get(flag, call.env.get(variable))
            if flag not in ("--cacert", "--cert", "--key"):
                continue
            if not path:
                # kubeadm's etcd serves TLS only and demands a client certificate
                return ToolResult(
                    1, stderr=f"Error: context deadline exceeded ({flag} not given: etcd serves TLS only)\n"
                )
            if path not in call.files:
                return ToolResult(1, stderr=f"Error: open {path}: no such file or directory\n")
        raw_endpoints = options.get("--endpoints") or call.env.get("ETCDCTL_ENDPOINTS") or "127.0.0.1:2379"
        endpoints = raw_endpoints.split(",")
        output = options.get("-w", options.get("--write-out", "simple"))
        instance = call.instance_id
        command = positionals[:2]
        if command == ["member", "list"] and len(positionals) == 2:
            if output != "json":
                raise UsageError("only member list -w json is modelled")
            return ToolResult(
                0, json.dumps(self._model.etcd_member_list(instance, endpoints), separators=(",", ":")) + "\n"
            )
        if command == ["endpoint", "health"] and options.get("--cluster") and output == "json":
            answers = self._model.etcd_endpoint_health(instance, endpoints)
            healthy = all(answer["health"] for answer in answers)
            stderr = "" if healthy else "Error: unhealthy cluster\n"
            return ToolResult(0 if healthy else 1, json.dumps(answers, separators=(",", ":")) + "\n", stderr)
        if command == ["endpoint", "status"] and options.get("--cluster") and output == "json":
            statuses, failed = self._model.etcd_endpoint_status(instance, endpoints)
            stderr = "".join(
                f"Failed to get the status of endpoint {url} (context deadline exceeded)\n" for url in failed
            )
            return ToolResult(1 if failed else 0, json.dumps(statuses, separators=(",", ":")) + "\n", stderr)
        if command == ["endpoint", "health"] and not options.get("--cluster") and len(positionals) == 2:
            return self._etcd_local_health(call, endpoints)
        if command == ["snapshot", "save"] and len(positionals) == 3 and self._snapshots is not None:
            return self._snapshots.save(call, endpoints, positionals[2])
        if positionals[:1] == ["move-leader"] and len(positionals) == 2:
            return ToolResult(0, self._model.etcd_move_leader(instance, endpoints, positionals[1]))
        if command == ["member", "remove"] and len(positionals) == 3:
            return ToolResult(0, self._model.etcd_member_remove(instance, endpoints, positionals[2]))
        raise UsageError("subcommand not modelled")

    def _etcd_local_health(self, call: ToolCall, endpoints: list[str]) -> ToolResult:
        """`endpoint health` without --cluster: the members asked answer and a proposal commits (quorum)."""
        lines = []
        for url in endpoints:
            try:
                answers = self._model.etcd_endpoint_health(call.instance_id, [url])
            except KubeError:
                answers = []
            if not any(answer["health"] for answer in answers):
                return ToolResult(
                    1,
                    stderr=f"{url} is unhealthy: failed to commit proposal: context deadline exceeded\n"
                    "Error: unhealthy cluster\n",
                )
            lines.append(f"{url} is healthy: successfully committed proposal: took = 2.315ms\n")
        return ToolResult(0, "".join(lines))

    def _etcdutl(self, call: ToolCall) -> ToolResult:
        if self._snapshots is None:
            raise UsageError("this fleet has no sandboxes for etcdutl")
        return self._snapshots.status(call)

    # ----- sleep (instant; the model counts it as time etcd had to settle) -----

    def _sleep(self, call: ToolCall) -> ToolResult:
        positionals, _ = split_args(call.argv)
        try:
            (seconds,) = (float(text) for text in positionals)
        except ValueError:
            raise UsageError("only `sleep SECONDS` is modelled") from None
        self._model.script_slept(call.instance_id, seconds)
        return ToolResult(0)

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

    # ----- aws -----

    def _aws(self, call: ToolCall) -> ToolResult:
        if call.argv[:2] == ["ec2", "describe-instances"]:
            return self._describe_instances(call)
        if call.argv[:1] in (["s3"], ["s3api"]) and self._s3 is not None:
            return self._s3(call)
        positionals, options = split_args(
            call.argv,
            value_flags={
                "--region",
                "--name",
                "--type",
                "--value",
                "--tier",
                "--key-id",
                "--query",
                "--output",
            },
            bool_flags={"--overwrite", "--with-decryption"},
        )
        if positionals[:1] != ["ssm"] or len(positionals) != 2:
            raise UsageError("only aws ssm put-parameter/get-parameter are modelled")
        region = options.get("--region") or call.env.get("AWS_REGION") or call.env.get("AWS_DEFAULT_REGION")
        if not region:
            return ToolResult(EXIT_AWS_CONFIG_ERROR, stderr="\nYou must specify a region.\n")
        client = self._ssm_client(region, call.instance_id)
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

    def _describe_instances(self, call: ToolCall) -> ToolResult:
        list_flags = {"--instance-ids", "--filters"}
        lists: dict[str, list[str]] = {}
        rest: list[str] = []
        current: str | None = None
        for arg in call.argv[2:]:
            if arg in list_flags:
                current = arg
                lists[arg] = []
            elif current is not None and not arg.startswith("--"):
                lists[current].append(arg)
            else:
                current = None
                rest.append(arg)
        positionals, options = split_args(rest, value_flags={"--region", "--query", "--output"})
        if positionals:
            raise UsageError(f"unexpected arguments {positionals}")
        region = options.get("--region") or call.env.get("AWS_REGION") or call.env.get("AWS_DEFAULT_REGION")
        if not region:
            return ToolResult(EXIT_AWS_CONFIG_ERROR, stderr="\nYou must specify a region.\n")
        if self._ec2_client is None:
            raise UsageError("this fleet has no EC2 client")
        request: dict[str, Any] = {}
        if "--instance-ids" in lists:
            request["InstanceIds"] = lists["--instance-ids"]
        if "--filters" in lists:
            request["Filters"] = _aws_filters(lists["--filters"])
        try:
            # The AWS CLI follows NextToken itself and prints one merged answer.
            paginator = self._ec2_client(region, call.instance_id).get_paginator("describe_instances")
            response = paginator.paginate(**request).build_full_result()
        except ClientError as error:
            code = error.response["Error"].get("Code", "Unknown")
            message = error.response["Error"].get("Message", "")
            stderr = f"\nAn error occurred ({code}) when calling the DescribeInstances operation: {message}\n"
            return ToolResult(EXIT_AWS_SERVICE_ERROR, stderr=stderr)
        response.pop("ResponseMetadata", None)
        result = jmespath.search(options["--query"], response) if "--query" in options else response
        if options.get("--output", "json") == "text":
            return ToolResult(0, aws_text(result))
        return ToolResult(0, json.dumps(result, default=str, indent=4) + "\n")

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
        if "--key-id" in options:
            request["KeyId"] = options["--key-id"]
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
