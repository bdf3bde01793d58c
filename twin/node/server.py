"""The node tools' server: a threaded Unix-socket server in the twin process.

One connection per tool call: the fake binary sends one request and closes its side; the server answers
with exit code, stdout and stderr and closes. Both are netstrings (twin/node/wire.py), written by the
compiled client (bin/_fake_tool.c) or the reference one (bin/_fake_tool.py); the socket lives in a
private directory of the twin, so only its own tools reach it. Concurrent script runs are served by
concurrent threads; KubeModel does its own locking.
"""

from __future__ import annotations

import socketserver
import threading
import traceback
from pathlib import Path

from twin.node import wire
from twin.node.tools import NodeTools, ToolCall

EXIT_INTERNAL = 70


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        raw = self.rfile.read()
        try:
            request = wire.decode_request(raw)
            call = ToolCall(
                tool=request.tool,
                argv=request.argv,
                env=request.env,
                files=request.files,
                stdin=request.stdin,
            )
            result = self.server.tools.handle(call)
            reply = wire.encode_reply(result.exit_code, result.stdout, result.stderr)
        except Exception:  # a bug in the twin must fail the tool loudly, never pass as success
            reply = wire.encode_reply(EXIT_INTERNAL, "", "kcluster twin: " + traceback.format_exc())
        self.wfile.write(reply)


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, socket_path: str, tools: NodeTools) -> None:
        self.tools = tools
        super().__init__(socket_path, _Handler)


class NodeServer:
    def __init__(self, socket_path: Path, tools: NodeTools) -> None:
        self.socket_path = socket_path
        socket_path.unlink(missing_ok=True)
        self._server = _Server(str(socket_path), tools)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="kcluster-node-server", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self.socket_path.unlink(missing_ok=True)
