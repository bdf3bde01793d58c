"""The fake node tools' two clients (compiled C and reference Python) send the same call and relay the
same reply, through the real wrappers and the real node server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from twin.node import toolclient, wire
from twin.node.fleet import FAKE_BIN_DIR
from twin.node.server import EXIT_INTERNAL, NodeServer
from twin.node.tools import ToolCall, ToolResult


class EchoTools:
    """Stands in for NodeTools: keeps each call and answers with what the test asks for."""

    def __init__(self) -> None:
        self.calls: list[ToolCall] = []
        self.reply = ToolResult(0)

    def handle(self, call: ToolCall) -> ToolResult:
        self.calls.append(call)
        return self.reply


CLIENTS = ["compiled", "python"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[NodeServer, EchoTools]]:
    tools = EchoTools()
    node_server = NodeServer(tmp_path / "node.sock", tools)  # type: ignore[arg-type]
    yield node_server, tools
    node_server.close()


def _environment(client: str, socket_path: Path, home: Path) -> dict[str, str]:
    environment = {
        "PATH": f"{FAKE_BIN_DIR}:/usr/bin:/bin",
        "HOME": str(home),
        "KCLUSTER_TWIN_SOCKET": str(socket_path),
        "KCLUSTER_TWIN_INSTANCE": "i-0123456789abcdef0",
        "KCLUSTER_TWIN_PYTHON": sys.executable,
        "UNRELATED": "not sent",
    }
    if client == "compiled":
        built = toolclient.compiled_client()
        if built is None:
            pytest.fail("no C compiler on this machine: make sysdeps installs one")
        environment["KCLUSTER_TWIN_TOOL"] = str(built)
    return environment


def _run(
    command: str, environment: dict[str, str], cwd: Path, stdin: str = ""
) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", command],
        env=environment,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("client", CLIENTS)
def test_a_call_carries_argv_environment_named_files_and_stdin(client: str, server, tmp_path: Path) -> None:
    # GIVEN files named by every form the scripts use, and a kubeconfig named by the environment
    node_server, tools = server
    (tmp_path / "join.yaml").write_text('kind: JoinConfiguration\nname: "é"\n\n')
    (tmp_path / "admin.conf").write_text("admin\n")
    (tmp_path / "doc.json").write_text('{"a": 1}')
    environment = {
        **_environment(client, node_server.socket_path, tmp_path),
        "KUBECONFIG": str(tmp_path / "admin.conf"),
    }
    # WHEN a script calls a tool with them, and stdin for "-"
    _run(
        f"kubeadm join --config {tmp_path}/join.yaml --kubeconfig={tmp_path}/admin.conf "
        f"file://{tmp_path}/doc.json -f - --filename {tmp_path}/missing 'two words'",
        environment,
        tmp_path,
        stdin="from stdin\n",
    )
    # THEN the server sees exactly that call
    (call,) = tools.calls
    assert call.tool == "kubeadm"
    assert call.argv == [
        "join",
        "--config",
        f"{tmp_path}/join.yaml",
        f"--kubeconfig={tmp_path}/admin.conf",
        f"file://{tmp_path}/doc.json",
        "-f",
        "-",
        "--filename",
        f"{tmp_path}/missing",
        "two words",
    ]
    assert call.files == {
        f"{tmp_path}/join.yaml": 'kind: JoinConfiguration\nname: "é"\n\n',
        f"{tmp_path}/admin.conf": "admin\n",
        f"{tmp_path}/doc.json": '{"a": 1}',
    }
    assert call.stdin == "from stdin\n"
    assert call.instance_id == "i-0123456789abcdef0"
    assert "UNRELATED" not in call.env and "PATH" not in call.env
    assert call.env["HOME"] == str(tmp_path) and call.env["KUBECONFIG"] == str(tmp_path / "admin.conf")


@pytest.mark.parametrize("client", CLIENTS)
def test_stdin_is_read_only_when_a_tool_is_given_dash(client: str, server, tmp_path: Path) -> None:
    node_server, tools = server
    _run(
        "kubectl get nodes",
        _environment(client, node_server.socket_path, tmp_path),
        tmp_path,
        stdin="ignored",
    )
    assert tools.calls[0].stdin == ""
    assert tools.calls[0].files == {}


@pytest.mark.parametrize("client", CLIENTS)
def test_the_reply_is_relayed_whole(client: str, server, tmp_path: Path) -> None:
    # GIVEN a reply with a large stdout (a thousand nodes' listing), non-ASCII text and a failure status
    node_server, tools = server
    big = "".join(f"i-{n:017x}\t10.0.{n // 250}.{n % 250}\tnode-ü-{n}\n" for n in range(20_000))
    tools.reply = ToolResult(3, stdout=big, stderr="error: ß\n")
    # WHEN a script runs the tool
    completed = _run(
        "aws ec2 describe-instances", _environment(client, node_server.socket_path, tmp_path), tmp_path
    )
    # THEN stdout, stderr and the exit status come through unchanged
    assert completed.returncode == 3
    assert completed.stdout == big
    assert completed.stderr == "error: ß\n"


@pytest.mark.parametrize("client", CLIENTS)
def test_without_the_socket_the_tool_fails_loudly(client: str, tmp_path: Path) -> None:
    environment = _environment(client, tmp_path / "absent.sock", tmp_path)
    environment.pop("KCLUSTER_TWIN_SOCKET")
    completed = _run("systemctl is-active kubelet", environment, tmp_path)
    assert completed.returncode == EXIT_INTERNAL
    assert "KCLUSTER_TWIN_SOCKET is not set" in completed.stderr


def test_a_malformed_request_fails_the_tool_and_reaches_no_tool(server) -> None:
    node_server, tools = server
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(str(node_server.socket_path))
        connection.sendall(b"7:kubeadm,3:/tmp,0:,2:join,")  # a count that is not one, cut short
        connection.shutdown(socket.SHUT_WR)
        raw = b"".join(iter(lambda: connection.recv(65536), b""))
    assert raw.startswith(b"2:70,0:,")
    assert b"WireError" in raw
    assert tools.calls == []


def test_the_wire_format_round_trips() -> None:
    request = (
        b"".join(
            wire.netstring(part) for part in ["kubectl", "/", "in", "2", "get", "nodes", "1", "HOME", "/root"]
        )
        + wire.netstring("1")
        + wire.netstring("/etc/kubernetes/admin.conf")
        + wire.netstring("ca: ü\n")
    )
    decoded = wire.decode_request(request)
    assert decoded == wire.Request(
        tool="kubectl",
        cwd="/",
        stdin="in",
        argv=["get", "nodes"],
        env={"HOME": "/root"},
        files={"/etc/kubernetes/admin.conf": "ca: ü\n"},
    )
    with pytest.raises(wire.WireError):
        wire.decode_request(request + b"x")


def test_the_compiled_client_is_built_once_per_source_version(tmp_path: Path, monkeypatch) -> None:
    # GIVEN an empty cache
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    toolclient.compiled_client.cache_clear()
    try:
        built = toolclient.compiled_client()
        assert built is not None and built.parent == tmp_path / "kcluster" / "twin"
        assert os.access(built, os.X_OK)
        modified = built.stat().st_mtime_ns
        # WHEN another process asks again, THEN the build in the cache serves
        toolclient.compiled_client.cache_clear()
        assert toolclient.compiled_client() == built
        assert built.stat().st_mtime_ns == modified
        assert [p.name for p in built.parent.iterdir()] == [built.name]
    finally:
        toolclient.compiled_client.cache_clear()
