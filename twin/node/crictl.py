"""`crictl` on a twin node: the containers of the static pods kubeadm runs, and `exec` into them.

A kubeadm node has no etcdctl on the host: the etcd image carries the etcdctl that matches the etcd it
runs, and the node scripts run it with `crictl exec` in the etcd container. What that exec sees, and the
twin keeps: the CRI's ExecRequest carries no environment (the container's own has no ETCDCTL_*), the
container's filesystem holds only what kubeadm mounts into the etcd pod (/etc/kubernetes/pki/etcd at the
same path as on the host), and the command runs only where its image has it (etcd's, not the API
server's). `crictl ps` lists running containers by label, as the real one filters them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from twin.node.model import KubeModel
from twin.node.tools import ToolCall, ToolResult, UsageError

# The paths kubeadm's etcd static pod mounts from the host, at the same path in the container.
ETCD_DATA_MOUNT = "/var/lib/etcd/"
ETCD_CONTAINER_MOUNTS = ("/etc/kubernetes/pki/etcd/", ETCD_DATA_MOUNT)
ETCDCTL_FILE_FLAGS = ("--cacert", "--cert", "--key")
# The commands each static pod's image carries (registry.k8s.io/etcd ships etcd, etcdctl and etcdutl).
IMAGE_COMMANDS = {"etcd": {"etcd", "etcdctl", "etcdutl"}, "kube-apiserver": {"kube-apiserver"}}
_NAMESPACE = "kube-system"
_PS_VALUE_FLAGS = {"--state", "-s", "--name", "--label"}
_PS_BOOL_FLAGS = {"--quiet", "-q"}


@dataclass(frozen=True)
class _Container:
    container_id: str
    name: str


def container_id(instance_id: str, name: str) -> str:
    """A stable 64-hex container id for a static pod's container on one instance."""
    return hashlib.sha256(f"{instance_id}/{name}".encode()).hexdigest()


def _ps_options(argv: list[str]) -> tuple[dict[str, str], set[str]]:
    """crictl ps flags: --label may repeat (a string slice); the others are single values or switches."""
    values: dict[str, str] = {}
    labels: set[str] = set()
    index = 0
    while index < len(argv):
        name, has_value, inline = argv[index].partition("=")
        if name in _PS_BOOL_FLAGS and not has_value:
            values[name] = "true"
        elif name in _PS_VALUE_FLAGS:
            if not has_value:
                index += 1
                if index == len(argv):
                    raise UsageError(f"flag needs an argument: {name}")
                inline = argv[index]
            if name == "--label":
                labels.add(inline)
            else:
                values[name] = inline
        else:
            raise UsageError(f"crictl ps {argv[index]} is not modelled")
        index += 1
    return values, labels


class Crictl:
    """crictl ps / exec against the model's static pods; exec runs the twin's etcdctl or etcdutl."""

    def __init__(
        self,
        model: KubeModel,
        etcdctl: Callable[[ToolCall], ToolResult],
        etcdutl: Callable[[ToolCall], ToolResult] | None = None,
    ) -> None:
        self._model = model
        self._inside_etcd = {"etcdctl": etcdctl} | ({"etcdutl": etcdutl} if etcdutl else {})

    def handle(self, call: ToolCall) -> ToolResult:
        command, rest = (call.argv[0], call.argv[1:]) if call.argv else ("", [])
        if command == "ps":
            return self._ps(call, rest)
        if command == "exec":
            return self._exec(call, rest)
        raise UsageError("only crictl ps and crictl exec are modelled")

    def _containers(self, instance_id: str) -> list[_Container]:
        return [
            _Container(container_id(instance_id, name), name)
            for name in self._model.running_static_pods(instance_id)
        ]

    def _ps(self, call: ToolCall, argv: list[str]) -> ToolResult:
        values, labels = _ps_options(argv)
        if "--quiet" not in values and "-q" not in values:
            raise UsageError("only crictl ps --quiet is modelled")
        state = values.get("--state", values.get("-s", "running")).lower()
        wanted: dict[str, str] = {}
        for label in labels:
            key, equals, value = label.partition("=")
            if not equals:
                raise UsageError(f"a label filter is key=value: {label}")
            wanted[key] = value
        selected = []
        for container in self._containers(call.instance_id) if state == "running" else []:
            container_labels = {
                "io.kubernetes.pod.namespace": _NAMESPACE,
                "io.kubernetes.container.name": container.name,
            }
            name_filter = values.get("--name")
            if all(container_labels.get(k) == v for k, v in wanted.items()) and (
                name_filter is None or name_filter in (container.name, f"^{container.name}$")
            ):
                selected.append(container.container_id)
        return ToolResult(0, "".join(f"{cid}\n" for cid in selected))

    def _exec(self, call: ToolCall, argv: list[str]) -> ToolResult:
        if len(argv) < 2 or argv[0].startswith("-"):
            raise UsageError("only `crictl exec CONTAINER-ID COMMAND [ARG...]` is modelled")
        wanted_id, command, args = argv[0], argv[1], argv[2:]
        container = next((c for c in self._containers(call.instance_id) if c.container_id == wanted_id), None)
        if container is None:
            return ToolResult(
                1,
                stderr=f'level=fatal msg="execing command in container {wanted_id}: rpc error: '
                f"code = NotFound desc = an error occurred when try to find container "
                f'\\"{wanted_id}\\": not found"\n',
            )
        if command.rsplit("/", 1)[-1] not in IMAGE_COMMANDS.get(container.name, set()):
            return ToolResult(
                1,
                stderr=f"OCI runtime exec failed: exec failed: unable to start container process: exec: "
                f'"{command}": executable file not found in $PATH: unknown\n',
            )
        tool = command.rsplit("/", 1)[-1]
        if tool not in self._inside_etcd:
            raise UsageError(
                f"only {' and '.join(self._inside_etcd)} are modelled inside the {container.name} container"
            )
        inner = ToolCall(
            tool,
            self._data_paths_on_the_host(call.instance_id, args),
            {"KCLUSTER_TWIN_INSTANCE": call.instance_id},  # CRI exec passes no environment
            self._container_files(call.instance_id, args),
        )
        result = self._inside_etcd[tool](inner)
        if result.exit_code != 0:
            # Streaming exec loses the exact status: crictl ends with its own fatal error, status 1.
            return ToolResult(
                1,
                result.stdout,
                result.stderr
                + f'level=fatal msg="execing command in container {wanted_id}: command terminated '
                f"with non-zero exit code: error executing command [{command} ...], "
                f'exit code {result.exit_code}"\n',
            )
        return result

    def _data_paths_on_the_host(self, instance_id: str, args: list[str]) -> list[str]:
        """Paths under etcd's data mount (/var/lib/etcd, a hostPath at the same path) as the node's own:
        what etcdctl snapshot save or etcdutl write or read there is the node's file."""
        root = self._model.host(instance_id).root
        return [str(root / arg.lstrip("/")) if arg.startswith(ETCD_DATA_MOUNT) else arg for arg in args]

    def _container_files(self, instance_id: str, args: list[str]) -> dict[str, str]:
        """The files etcdctl's flags name, as the container sees them: only kubeadm's mounts exist."""
        root = self._model.host(instance_id).root
        files: dict[str, str] = {}
        for index, arg in enumerate(args):
            name, has_value, value = arg.partition("=")
            if name not in ETCDCTL_FILE_FLAGS:
                continue
            path = value if has_value else (args[index + 1] if index + 1 < len(args) else "")
            if not path.startswith(ETCD_CONTAINER_MOUNTS):
                continue
            try:
                files[path] = (root / path.lstrip("/")).read_text()
            except (OSError, UnicodeDecodeError):
                continue
        return files
