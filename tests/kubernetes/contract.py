"""The two sides of the Kubernetes contract (test_contract.py): the real components and the twin's model.

Both answer the same tool command lines (kubectl, kubeadm, etcdctl: what the node scripts run) with an
exit status, stdout and stderr; setting things up (Nodes, pods, PodDisruptionBudgets, a kubelet that
stops, time passing) is done the way each side allows: by hand through the real API's status subresource,
or through the model's own API.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from random import Random

from tests.kubernetes.cluster import HOST, UPLOAD_CERTS_KUBECONFIG, ControlPlane, free_ports
from tests.scripts.etcd_cluster import EtcdCluster
from twin.node.model import KubeError, KubeModel
from twin.node.tools import NodeTools, ToolCall


@dataclass(frozen=True)
class Answer:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def _expiration(secret: dict) -> float:
    text = base64.b64decode(secret["data"]["expiration"]).decode()
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class RealSide:
    """The real kube-apiserver/kube-controller-manager (shared, session-scoped) and, for etcd membership,
    a 3-member etcd cluster of the built etcd (per test)."""

    name = "real"

    def __init__(self, plane: ControlPlane, workdir: Path) -> None:
        self.plane = plane
        self.version = plane.version
        self.workdir = workdir
        self.etcd: EtcdCluster | None = None

    def close(self) -> None:
        if self.etcd is not None:
            self.etcd.close()
        self.plane.stop_process("nodelifecycle")

    # ----- setup -----

    def add_node(self, name: str, *, control_plane: bool = False) -> None:
        self.plane.add_node(name, instance_id="", address="", control_plane=control_plane)

    def add_pod(self, node: str, name: str, *, pdb: str | None = None, grace_seconds: int = 0) -> None:
        self.plane.add_pod(node, name, grace_seconds=grace_seconds, labels={"app": pdb or name})

    def set_pdb(self, name: str, min_available: int) -> None:
        self.plane.add_pdb(name, {"app": name}, min_available)

    def pass_time(self, seconds: float) -> None:
        time.sleep(seconds)

    # ----- tools -----

    def kubectl(self, *args: str) -> Answer:
        done = self.plane.kubectl(*args, check=False)
        return Answer(done.returncode, done.stdout, done.stderr)

    def kubeadm(self, *args: str) -> Answer:
        # --rootfs: kubeadm finds /etc/kubernetes (admin.conf, the PKI) under the control plane's directory
        extra = [UPLOAD_CERTS_KUBECONFIG] if args[:3] == ("init", "phase", "upload-certs") else []
        done = self.plane.kubeadm("--rootfs", str(self.plane.workdir), *args, *extra, check=False)
        return Answer(done.returncode, done.stdout, done.stderr)

    def etcdctl(self, member: str, *args: str) -> Answer:
        assert self.etcd is not None
        done = self.etcd.etcdctl(*args, endpoints=[self.etcd.members[member].client_url])
        return Answer(done.returncode, done.stdout, done.stderr)

    # ----- observations -----

    def node(self, name: str) -> dict | None:
        done = self.plane.kubectl("get", "node", name, "-o", "json", check=False)
        return json.loads(done.stdout) if done.returncode == 0 else None

    def pod_exists(self, name: str) -> bool:
        return self.plane.pod(name) is not None

    def token_accepted(self, token: str) -> bool:
        """The API authenticates the bootstrap token (what a joining kubelet's TLS bootstrap needs)."""
        done = self.plane.kubectl(
            f"--server=https://{HOST}:{self.plane.api_port}",
            f"--certificate-authority={self.plane.pki / 'ca.crt'}", f"--token={token}", "auth", "whoami",
            check=False, conf=Path("/dev/null"),
        )  # fmt: skip
        return done.returncode == 0 and f"system:bootstrap:{token.split('.')[0]}" in done.stdout

    def certificate_key_accepted_after(self, key: str, seconds: float) -> bool:
        """Whether the uploaded certificates are still there `seconds` after now: kubeadm makes a bootstrap
        token their owner, whose expiry deletes them (tokencleaner, then the garbage collector; the deletion
        itself is assumed, the expiry time is read)."""
        certs = self.plane.get("secret", "kubeadm-certs", "-n", "kube-system")
        (owner,) = certs["metadata"]["ownerReferences"]
        expiry = _expiration(self.plane.get("secret", owner["name"], "-n", "kube-system"))
        return time.time() + seconds < expiry

    def kubelet_stops(self, name: str) -> None:
        """A kubelet that stops posting: the real node lifecycle controller (grace period 5 s here)."""
        if "nodelifecycle" not in self.plane.processes:
            (port,) = free_ports(1)
            self.plane.start_controller_manager(
                "nodelifecycle",
                "nodelifecycle",
                port,
                "--node-monitor-period=1s",
                "--node-monitor-grace-period=5s",
            )
        deadline = time.monotonic() + 60
        while self.ready_status(name) == "True":
            assert time.monotonic() < deadline, self.plane.log_tail("nodelifecycle")
            time.sleep(0.5)

    def ready_status(self, name: str) -> str:
        node = self.node(name) or {}
        return next(
            (c["status"] for c in node.get("status", {}).get("conditions", []) if c["type"] == "Ready"),
            "Unknown",
        )

    # ----- etcd -----

    def etcd_cluster(self, names: list[str]) -> None:
        self.etcd = EtcdCluster.start(
            self.workdir / "etcd",
            names,
            etcd=str(self.plane.bin / "etcd"),
            etcdctl=str(self.plane.bin / "etcdctl"),
        )
        # etcd refuses a membership change until its peers have been connected for 5 s (HealthInterval);
        # the model's side lets 30 s pass between its control-plane joins the same way
        time.sleep(5.5)

    def etcd_stop(self, name: str) -> None:
        assert self.etcd is not None
        self.etcd.stop(name)

    def etcd_leader(self) -> str:
        assert self.etcd is not None
        return self.etcd.leader()


@dataclass
class _Clock:
    time: float = 1_767_225_600.0

    def now(self) -> float:
        return self.time


@dataclass
class ModelSide:
    """The twin's KubeModel behind its fake tools (twin/node/tools.py), cluster made by kubeadm init/join."""

    version: str
    workdir: Path
    name: str = "model"
    clock: _Clock = field(default_factory=_Clock)
    model: KubeModel = field(init=False)
    tools: NodeTools = field(init=False)
    hosts: dict[str, str] = field(default_factory=dict)  # node name -> instance id
    first: str = ""
    join_lines: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.key_probe_origin: float | None = None
        self.model = KubeModel(self.clock.now, Random(7), default_kubeadm_version=f"v{self.version}")
        self.tools = NodeTools(self.model, lambda region, instance: None)
        # the cluster's first control plane: every tool call is made there
        self.first = self._host("kc-model-control-plane")
        init = self.model.kubeadm_init(
            self.first,
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n"
            "  name: kc-model-control-plane\n---\napiVersion: kubeadm.k8s.io/v1beta4\n"
            f"kind: ClusterConfiguration\nkubernetesVersion: v{self.version}\n"
            "controlPlaneEndpoint: kc-model:6443\n",
            upload_certs=True,
        )
        self.model.kubelet_restart(self.first)
        self.model.apply_manifest(self.admin_conf, "https://example.invalid/calico.yaml")
        self.ca_hash = re.search(r"--discovery-token-ca-cert-hash (\S+)", init).group(1)

    def close(self) -> None:
        pass

    def _host(self, name: str) -> str:
        index = len(self.hosts) + 1
        instance_id = f"i-{index:017x}"
        root = self.workdir / instance_id
        for directory in ("etc/kubernetes", "tmp"):
            (root / directory).mkdir(parents=True, exist_ok=True)
        self.model.add_host(
            self.model.new_host(
                instance_id, root, availability_zone="us-east-1a", private_ip=f"10.0.1.{index}",
                private_dns=name, region="us-east-1", cluster="contract", role="worker",
            )
        )  # fmt: skip
        self.hosts[name] = instance_id
        return instance_id

    @property
    def admin_conf(self) -> str:
        return (self.model.host(self.first).root / "etc/kubernetes/admin.conf").read_text()

    def _join_config(self, name: str, token: str, certificate_key: str | None) -> str:
        control = f"controlPlane:\n  certificateKey: {certificate_key}\n" if certificate_key else ""
        return (
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n"
            f"    apiServerEndpoint: kc-model:6443\n    token: {token}\n    caCertHashes:\n    - {self.ca_hash}\n"
            f"{control}nodeRegistration:\n  name: {name}\n"
        )

    # ----- setup -----

    def add_node(self, name: str, *, control_plane: bool = False, certificate_key: str | None = None) -> None:
        instance_id = self._host(name)
        token = self.model.token_create(self.first, "1h")
        if control_plane and certificate_key is None:
            certificate_key = self.model.upload_certs(self.first)
        if control_plane:
            self.clock.time += 30  # etcd settles between membership changes
        self.model.kubeadm_join(
            instance_id, self._join_config(name, token, certificate_key if control_plane else None)
        )
        self.model.kubelet_restart(instance_id)

    def add_pod(self, node: str, name: str, *, pdb: str | None = None, grace_seconds: int = 0) -> None:
        self.model.add_pod(node, name, pdb=pdb, grace_seconds=grace_seconds)

    def set_pdb(self, name: str, min_available: int) -> None:
        self.model.set_pdb(name, min_available)

    def pass_time(self, seconds: float) -> None:
        self.clock.time += seconds

    # ----- tools -----

    def _call(
        self, tool: str, args: tuple[str, ...], *, env: dict[str, str] | None = None, on: str = ""
    ) -> Answer:
        admin = "/etc/kubernetes/admin.conf"
        instance_id = self.hosts.get(on, self.first)
        files = {admin: self.admin_conf, "/pki/ca.crt": "", "/pki/client.crt": "", "/pki/client.key": ""}
        environment = {"KCLUSTER_TWIN_INSTANCE": instance_id, **(env or {})}
        argv = [f"--kubeconfig={admin}", *args] if tool == "kubectl" else list(args)
        result = self.tools.handle(ToolCall(tool, argv, environment, files))
        return Answer(result.exit_code, result.stdout, result.stderr)

    def kubectl(self, *args: str) -> Answer:
        return self._call("kubectl", args)

    def kubeadm(self, *args: str) -> Answer:
        return self._call("kubeadm", args)

    def etcdctl(self, member: str, *args: str) -> Answer:
        """etcdctl as the scripts run it on a node: `crictl exec` in that member's etcd container, with
        flags (CRI exec passes no environment) and kubeadm's PKI paths as the container sees them."""
        found = self._call(
            "crictl", ("ps", "--quiet", "--label", "io.kubernetes.container.name=etcd"), on=member
        )
        pki = "/etc/kubernetes/pki/etcd"
        flags = (
            "--endpoints=https://127.0.0.1:2379", f"--cacert={pki}/ca.crt",
            f"--cert={pki}/healthcheck-client.crt", f"--key={pki}/healthcheck-client.key",
        )  # fmt: skip
        return self._call("crictl", ("exec", found.stdout.strip(), "etcdctl", *flags, *args), on=member)

    # ----- observations -----

    def node(self, name: str) -> dict | None:
        answer = self.kubectl("get", "nodes", "-o", "json")
        return next(
            (item for item in json.loads(answer.stdout)["items"] if item["metadata"]["name"] == name), None
        )

    def pod_exists(self, name: str) -> bool:
        return any(pod.name == name for pod in self.model.pods())

    def token_accepted(self, token: str) -> bool:
        """The model checks a token where a join presents it: a worker join with it."""
        instance_id = self._host(f"probe-{len(self.hosts)}")
        try:
            self.model.kubeadm_join(instance_id, self._join_config(f"probe-{len(self.hosts)}", token, None))
        except KubeError:
            return False
        return True

    def certificate_key_accepted_after(self, key: str, seconds: float) -> bool:
        """The model checks a certificate key where a control-plane join presents it (calls come with
        growing `seconds`, counted from the first call: the clock only moves on; a control-plane join
        adds 30 s of etcd settling, within the contract's tolerance)."""
        if self.key_probe_origin is None:
            self.key_probe_origin = self.clock.time
        self.clock.time = self.key_probe_origin + seconds
        try:
            self.add_node(f"probe-cp-{len(self.hosts)}", control_plane=True, certificate_key=key)
        except KubeError as error:
            assert "certificate" in str(error).lower() or "secret" in str(error).lower(), error
            return False
        return True

    def kubelet_stops(self, name: str) -> None:
        self.model.stop_kubelet(self.hosts[name])

    def ready_status(self, name: str) -> str:
        node = self.node(name) or {}
        return next(
            (c["status"] for c in node.get("status", {}).get("conditions", []) if c["type"] == "Ready"),
            "Unknown",
        )

    # ----- etcd -----

    def etcd_cluster(self, names: list[str]) -> None:
        """Members named `names`: the first control plane is renamed by being the first of them."""
        assert names[0] == "kc-model-control-plane"
        key = self.model.upload_certs(self.first)
        for name in names[1:]:
            self.add_node(name, control_plane=True, certificate_key=key)
        self.clock.time += 30

    def etcd_stop(self, name: str) -> None:
        self.model.stop_etcd(self.hosts[name])

    def etcd_leader(self) -> str:
        leader = self.model.etcd_leader()
        assert leader is not None
        return leader.name
