"""`etcdctl snapshot save` and `etcdutl snapshot status` in the twin's node sandboxes.

A twin snapshot is what the model's etcd holds at the moment (the cluster epoch, a revision, the Node
objects) as JSON, padded to a multiple of 512 bytes and followed by the SHA-256 of what precedes it,
the layout a real etcd streams, so backup.sh's trailer check runs unchanged on it. etcdutl reads back
only a twin snapshot whose trailer matches; anything else fails as etcdutl fails on a file that is not a
database. The file is written and read on the instance's own sandbox (the path names it).
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Callable
from pathlib import Path

from twin.node.model import KubeModel
from twin.node.tools import ToolCall, ToolResult, UsageError, instance_path, split_args

MAGIC = "kcluster-twin-etcd-snapshot"
_PAGE = 512
_DIGEST = 32


class EtcdSnapshots:
    def __init__(self, model: KubeModel, sandbox: Callable[[str], Path]) -> None:
        self._model = model
        self._sandbox = sandbox

    def save(self, call: ToolCall, endpoints: list[str], path: str) -> ToolResult:
        """`etcdctl snapshot save PATH` against one endpoint (etcdctl refuses several)."""
        if len(endpoints) != 1:
            return ToolResult(
                1, stderr="Error: snapshot must be requested to one selected node, not multiple\n"
            )
        members = self._model.etcd_member_list(call.instance_id, endpoints)  # raises as etcdctl fails
        body = json.dumps(
            {
                MAGIC: 1,
                "epoch": self._model.current_epoch(),
                "revision": len(self._model.history) + 1,
                "members": len(members["members"]),
                "nodes": sorted(node.name for node in self._model.nodes()),
            },
            sort_keys=True,
        ).encode()
        body += b" " * (-len(body) % _PAGE)
        target = instance_path(self._sandbox(call.instance_id), path)
        part = target.with_name(target.name + ".part")
        part.write_bytes(body + hashlib.sha256(body).digest())
        part.replace(target)
        return ToolResult(0, f"Snapshot saved at {path}\n")

    def status(self, call: ToolCall) -> ToolResult:
        """`etcdutl snapshot status FILE -w json`."""
        positionals, options = split_args(call.argv, value_flags={"-w", "--write-out"})
        if positionals[:2] != ["snapshot", "status"] or len(positionals) != 3:
            raise UsageError("only etcdutl snapshot status FILE is modelled")
        if options.get("-w", options.get("--write-out")) != "json":
            raise UsageError("only -w json is modelled")
        path = instance_path(self._sandbox(call.instance_id), positionals[2])
        if not path.is_file():
            return ToolResult(1, stderr=f"Error: stat {positionals[2]}: no such file or directory\n")
        data = path.read_bytes()
        body = data[:-_DIGEST]
        try:
            if hashlib.sha256(body).digest() != data[-_DIGEST:]:
                raise ValueError("digest")
            content = json.loads(body.decode().rstrip())
            revision = int(content["revision"])
            nodes = list(content["nodes"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return ToolResult(1, stderr="Error: invalid database\n")
        status = {
            "hash": zlib.crc32(body),
            "revision": revision,
            # kubeadm's own objects plus one per Node: never zero for a cluster that was initialized
            "totalKey": 100 + len(nodes),
            "totalSize": len(data),
            "version": "3.6.0",
        }
        return ToolResult(0, json.dumps(status) + "\n")
