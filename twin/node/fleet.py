"""Each instance's sandbox, and running an SSM document's script in it the way the SSM agent does.

A sandbox is a directory standing for the instance's root filesystem (the scripts prefix absolute paths
with $KCLUSTER_ROOT). Its PATH holds exactly the commands an instance has (twin/node/commands.py); the
fake kubeadm/kubectl/crictl/systemctl/cloud-init/aws/sleep among them
talk to one KubeModel through the fleet's Unix socket; `aws ssm` and `aws ec2 describe-instances`
go to (moto's) SSM and EC2 through the client factories.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from twin.node.commands import build_node_bin
from twin.node.etcd_snapshot import EtcdSnapshots
from twin.node.model import KubeModel
from twin.node.s3_cli import S3Cli
from twin.node.server import NodeServer
from twin.node.toolclient import compiled_client
from twin.node.tools import NodeTools

FAKE_BIN_DIR = Path(__file__).resolve().parent / "bin"
PROVISIONED_MARKER = "var/lib/kcluster/provisioned"
# A Unix socket path must fit in sun_path (108 bytes on Linux).
_MAX_SOCKET_PATH = 100
# A guard against a hung script, in real seconds; document timeouts are the runcommand layer's job.
_SCRIPT_WALL_CLOCK_LIMIT = 300


@dataclass(frozen=True)
class ScriptResult:
    exit_code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class ScriptRun:
    time: float
    instance_id: str
    exit_code: int


class NodeFleet:
    """The instances' sandboxes. `ssm_client_factory(region_name)` returns a boto3 SSM client;
    `ec2_client_factory(region_name)` an EC2 one (default: boto3's, i.e. moto's inside mock_aws)."""

    def __init__(
        self,
        workdir: Path,
        model: KubeModel,
        ssm_client_factory: Callable[[str], Any],
        now: Callable[[], float],
        *,
        ec2_client_factory: Callable[[str], Any] | None = None,
        s3_client_factory: Callable[[str], Any] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.model = model
        self._now = now
        self._ssm_client_factory = ssm_client_factory
        self._ec2_client_factory = ec2_client_factory or (
            lambda region: boto3.client("ec2", region_name=region)
        )
        self._s3_client_factory = s3_client_factory or (lambda region: boto3.client("s3", region_name=region))
        self._clients: dict[tuple[str, str, str | None], Any] = {}
        self._clients_lock = threading.Lock()
        # Role of each instance, and the access key of each role's instance profile (set by the twin when
        # IAM is enforced: an instance's `aws` CLI then calls with its own role's credentials, as on EC2).
        self._instance_roles: dict[str, str] = {}
        self.role_access_keys: dict[str, str] = {}
        self.runs: list[ScriptRun] = []
        self._sandboxes: dict[str, Path] = {}
        self._socket_dir: str | None = None
        socket_path = self.workdir / "node.sock"
        if len(str(socket_path)) > _MAX_SOCKET_PATH:
            self._socket_dir = tempfile.mkdtemp(prefix="kc-node-")
            socket_path = Path(self._socket_dir) / "node.sock"
        s3_cli = S3Cli(self._s3_client, self.sandbox)
        snapshots = EtcdSnapshots(model, self.sandbox)
        self.server = NodeServer(
            socket_path,
            NodeTools(model, self._ssm_client, self._ec2_client, s3=s3_cli.handle, snapshots=snapshots),
        )
        client = compiled_client()
        # The fake tools' wrappers run this client; without one, the Python client (bin/_fake_tool.py).
        self._tool_client = {"KCLUSTER_TWIN_TOOL": str(client)} if client else {}
        # A sandbox's PATH: exactly the commands the AMI and the user data give an instance.
        self.node_bin = build_node_bin(self.workdir / "node-bin", FAKE_BIN_DIR)

    def _client(self, service: str, region: str, instance_id: str, factory: Callable[[str], Any]) -> Any:
        access_key = self.role_access_keys.get(self._instance_roles.get(instance_id, ""))
        with self._clients_lock:
            if (service, region, access_key) not in self._clients:
                self._clients[service, region, access_key] = (
                    factory(region)
                    if access_key is None
                    else boto3.client(
                        service,
                        region_name=region,
                        aws_access_key_id=access_key,
                        aws_secret_access_key="twin-instance-profile",  # noqa: S106 - moto checks no secret
                        aws_session_token="twin-instance-profile",  # noqa: S106
                    )
                )
            return self._clients[service, region, access_key]

    def _ssm_client(self, region: str, instance_id: str) -> Any:
        return self._client("ssm", region, instance_id, self._ssm_client_factory)

    def _ec2_client(self, region: str, instance_id: str) -> Any:
        return self._client("ec2", region, instance_id, self._ec2_client_factory)

    def _s3_client(self, region: str, instance_id: str) -> Any:
        return self._client("s3", region, instance_id, self._s3_client_factory)

    def sandbox(self, instance_id: str) -> Path:
        return self._sandboxes[instance_id]

    def add_instance(
        self,
        instance_id: str,
        *,
        availability_zone: str,
        private_ip: str,
        private_dns: str,
        region: str,
        cluster: str,
        role: str,
    ) -> None:
        root = self.workdir / "instances" / instance_id
        for directory in ("tmp", "root", "etc", "var/lib/kcluster"):
            (root / directory).mkdir(parents=True, exist_ok=True)
        self._sandboxes[instance_id] = root
        self._instance_roles[instance_id] = role
        # What cloud-init caches at boot and `cloud-init query` reads (the fake reads it the same way).
        instance_data = root / "run/cloud-init/instance-data.json"
        instance_data.parent.mkdir(parents=True, exist_ok=True)
        instance_data.write_text(
            json.dumps(
                {
                    "v1": {
                        "cloud_name": "aws",
                        "instance_id": instance_id,
                        "availability_zone": availability_zone,
                        "region": region,
                        "local_hostname": private_dns,
                        "local_ipv4": private_ip,
                    }
                }
            )
        )
        self.model.add_host(
            self.model.new_host(
                instance_id,
                root,
                availability_zone=availability_zone,
                private_ip=private_ip,
                private_dns=private_dns,
                region=region,
                cluster=cluster,
                role=role,
            )
        )

    def mark_provisioned(self, instance_id: str) -> None:
        marker = self.sandbox(instance_id) / PROVISIONED_MARKER
        marker.write_text(f"{self._now():.0f}\n")

    def run_script(
        self, instance_id: str, script: str, env: dict[str, str], *, path_first: Path | None = None
    ) -> ScriptResult:
        """Run `script` as the SSM agent would: saved as _script.sh in the sandbox, `bash _script.sh`.

        `path_first`: a directory searched before the node's commands (tests put real tools there).
        """
        root = self.sandbox(instance_id)
        if not self.model.host(instance_id).alive:
            raise ValueError(f"instance {instance_id} has been removed")
        script_path = root / "_script.sh"
        script_path.write_text(script)
        search = [str(path_first)] if path_first else []
        environment = {
            **env,
            "PATH": ":".join([*search, str(self.node_bin)]),
            "HOME": str(root / "root"),
            "TMPDIR": str(root / "tmp"),
            "LANG": "C.UTF-8",
            "KCLUSTER_ROOT": str(root),
            "KCLUSTER_TWIN_SOCKET": str(self.server.socket_path),
            "KCLUSTER_TWIN_INSTANCE": instance_id,
            "KCLUSTER_TWIN_PYTHON": sys.executable,
            **self._tool_client,
        }
        completed = subprocess.run(
            ["bash", script_path.name],
            cwd=root,
            env=environment,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_SCRIPT_WALL_CLOCK_LIMIT,
            check=False,
        )
        self.runs.append(ScriptRun(self._now(), instance_id, completed.returncode))
        return ScriptResult(completed.returncode, completed.stdout, completed.stderr)

    def remove_instance(self, instance_id: str) -> None:
        self.model.remove_host(instance_id)

    def close(self) -> None:
        self.server.close()
        if self._socket_dir:
            os.rmdir(self._socket_dir)
