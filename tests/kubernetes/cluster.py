"""Real Kubernetes on 127.0.0.1: etcd + kube-apiserver + kube-controller-manager, no kubelet.

The binaries are the ones tools/kubernetes/build.sh builds from the Go modules at exactly the version
terraform/variables.tf names (cached outside the repository). The PKI and kubeconfigs are made by the real
`kubeadm init phase certs all` / `kubeconfig admin,super-admin,controller-manager`; the processes are
started with the flags kubeadm's static pod manifests give them (bound to 127.0.0.1, ports from the
kernel's free range). There is no kubelet: Nodes are registered by hand and their Ready condition, and
their pods' phase, are written through the status subresource.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.scripts.etcd_cluster import free_ports
from twin import versions

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "tools/kubernetes/build.sh"
HOST = "127.0.0.1"
NAMESPACE = "default"
# With its default --kubeconfig (/etc/kubernetes/admin.conf), `kubeadm init phase upload-certs` points
# admin.conf at the node's own advertise address and port 6443, where a control plane's API server listens;
# here it listens on 127.0.0.1 and a free port, so kubeadm is given the same file under another spelling
# (it then uses admin.conf as it is). Nothing else changes: same file, same credentials, same phase.
UPLOAD_CERTS_KUBECONFIG = "--kubeconfig=/etc/kubernetes/./admin.conf"
# The nodelifecycle controller is off: hand-made Nodes would turn NotReady after its grace period.
CONTROLLERS = "*,-nodelifecycle,bootstrapsigner,tokencleaner"


def kubernetes_version() -> str:
    """kubernetes_version's default in terraform/variables.tf (MAJOR.MINOR.PATCH): the one place it is set."""
    return versions.kubernetes_version()


def binaries(version: str | None = None) -> Path:
    """The bin directory with kube-apiserver, kube-controller-manager, kubeadm, kubectl, etcd, etcdctl.

    KCLUSTER_K8S_BIN overrides it; otherwise build.sh finds the cached build (or builds it: minutes)."""
    if os.environ.get("KCLUSTER_K8S_BIN"):
        return Path(os.environ["KCLUSTER_K8S_BIN"])
    completed = subprocess.run(
        [BUILD_SCRIPT, version or kubernetes_version()], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"tools/kubernetes/build.sh failed:\n{completed.stderr[-4000:]}")
    return Path(completed.stdout.strip().splitlines()[-1])


def kubeadm_config(version: str, port: int, pki: Path, node_name: str) -> str:
    # kubeadm refuses advertiseAddress 127.0.0.1; controlPlaneEndpoint puts 127.0.0.1 in the serving cert.
    return f"""apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
nodeRegistration:
  name: {node_name}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v{version}
controlPlaneEndpoint: {HOST}:{port}
certificatesDir: {pki}
networking:
  serviceSubnet: 10.96.0.0/12
  podSubnet: 10.244.0.0/16
"""


@dataclass
class ControlPlane:
    bin: Path
    version: str
    workdir: Path
    api_port: int = 0
    etcd_port: int = 0
    etcd_peer_port: int = 0
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    node_name: str = "kc-test-control-plane"

    # ----- start and stop -----

    @classmethod
    def start(cls, bin_dir: Path, version: str, workdir: Path) -> ControlPlane:
        plane = cls(bin_dir, version, workdir)
        plane.api_port, plane.etcd_port, plane.etcd_peer_port, kcm_port = free_ports(4)
        plane.kube_dir.mkdir(parents=True, exist_ok=True)
        config = workdir / "kubeadm.yaml"
        config.write_text(kubeadm_config(version, plane.api_port, plane.pki, plane.node_name))
        plane.kubeadm("init", "phase", "certs", "all", "--config", str(config))
        for kind in ("admin", "super-admin", "controller-manager"):
            plane.kubeadm(
                "init",
                "phase",
                "kubeconfig",
                kind,
                "--config",
                str(config),
                "--kubeconfig-dir",
                str(plane.kube_dir),
            )
        # kubeadm points controller-manager.conf at the host's own address: 127.0.0.1 instead.
        conf = plane.kube_dir / "controller-manager.conf"
        conf.write_text(
            re.sub(r"server: https://[^\n]+", f"server: https://{HOST}:{plane.api_port}", conf.read_text())
        )
        try:
            plane._start_etcd()
            plane._start_apiserver()
            plane.start_controller_manager("kube-controller-manager", CONTROLLERS, kcm_port)
            plane._bootstrap()
        except BaseException:
            plane.close()
            raise
        return plane

    @property
    def kube_dir(self) -> Path:
        return self.workdir / "etc/kubernetes"

    @property
    def pki(self) -> Path:
        return self.kube_dir / "pki"

    @property
    def admin_conf(self) -> Path:
        return self.kube_dir / "admin.conf"

    @property
    def etcd_url(self) -> str:
        return f"https://{HOST}:{self.etcd_port}"

    def _launch(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = (self.workdir / f"{name}.log").open("w")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.processes[name] = process
        return process

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def _start_etcd(self) -> None:
        etcd_pki = self.pki / "etcd"
        peer = f"https://{HOST}:{self.etcd_peer_port}"
        self._launch(
            "etcd",
            [
                str(self.bin / "etcd"), "--name=default", f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}", f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}", "--initial-cluster-state=new",
                f"--cert-file={etcd_pki / 'server.crt'}", f"--key-file={etcd_pki / 'server.key'}",
                f"--trusted-ca-file={etcd_pki / 'ca.crt'}", "--client-cert-auth",
                f"--peer-cert-file={etcd_pki / 'server.crt'}", f"--peer-key-file={etcd_pki / 'server.key'}",
                f"--peer-trusted-ca-file={etcd_pki / 'ca.crt'}", "--peer-client-cert-auth",
                "--heartbeat-interval=50", "--election-timeout=500", "--listen-metrics-urls=",
            ],
        )  # fmt: skip

    def _start_apiserver(self) -> None:
        pki = self.pki
        self._launch(
            "kube-apiserver",
            [
                str(self.bin / "kube-apiserver"), f"--bind-address={HOST}", f"--advertise-address={HOST}",
                f"--secure-port={self.api_port}", f"--etcd-servers={self.etcd_url}",
                f"--etcd-cafile={pki / 'etcd/ca.crt'}", f"--etcd-certfile={pki / 'apiserver-etcd-client.crt'}",
                f"--etcd-keyfile={pki / 'apiserver-etcd-client.key'}", f"--client-ca-file={pki / 'ca.crt'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/12", "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction", "--enable-bootstrap-token-auth=true",
                "--allow-privileged=true", "--endpoint-reconciler-type=none",
                f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
                f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
                f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-username-headers=X-Remote-User",
            ],
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            for name in ("etcd", "kube-apiserver"):
                if self.processes[name].poll() is not None:
                    raise RuntimeError(f"{name} exited:\n{self.log_tail(name)}")
            answer = self.kubectl(
                "get", "--raw", "/readyz", check=False, conf=self.kube_dir / "super-admin.conf"
            )
            if answer.returncode == 0 and answer.stdout.strip() == "ok":
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"kube-apiserver not ready: {answer.stderr}\n{self.log_tail('kube-apiserver')}"
                )
            time.sleep(0.2)

    def start_controller_manager(
        self, name: str, controllers: str, port: int, *extra: str
    ) -> subprocess.Popen:
        """A kube-controller-manager (no leader election: a second one may run beside the first)."""
        pki = self.pki
        conf = self.kube_dir / "controller-manager.conf"
        return self._launch(
            name,
            [
                str(self.bin / "kube-controller-manager"), f"--kubeconfig={conf}",
                f"--authentication-kubeconfig={conf}", f"--authorization-kubeconfig={conf}",
                f"--bind-address={HOST}", f"--secure-port={port}", "--leader-elect=false",
                f"--controllers={controllers}", "--use-service-account-credentials=true",
                f"--root-ca-file={pki / 'ca.crt'}", f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}", f"--cluster-signing-key-file={pki / 'ca.key'}",
                f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
                "--cluster-cidr=10.244.0.0/16", "--service-cluster-ip-range=10.96.0.0/12",
                *extra,
            ],
        )  # fmt: skip

    def stop_process(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _bootstrap(self) -> None:
        """What `kubeadm init` does once the API answers and the scripts rely on: admin.conf's group
        bound to cluster-admin (kubeadm does it with super-admin.conf), the bootstrap-token RBAC and the
        cluster-info ConfigMap (phase bootstrap-token), the default ServiceAccount."""
        super_admin = self.kube_dir / "super-admin.conf"
        self.kubectl(
            "create", "clusterrolebinding", "kubeadm:cluster-admins", "--clusterrole=cluster-admin",
            "--group=kubeadm:cluster-admins", conf=super_admin,
        )  # fmt: skip
        self.kubeadm(
            "init", "phase", "bootstrap-token", "--config", str(self.workdir / "kubeadm.yaml"),
            "--kubeconfig", str(self.admin_conf), "--skip-token-print",
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while self.kubectl("get", "serviceaccount", "default", "-n", NAMESPACE, check=False).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError("the default ServiceAccount never appeared (kube-controller-manager?)")
            time.sleep(0.2)

    def close(self) -> None:
        for name in list(self.processes)[::-1]:
            self.stop_process(name)

    # ----- tools -----

    def kubeadm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self._run([str(self.bin / "kubeadm"), *args], check=check)

    def kubectl(
        self, *args: str, check: bool = True, conf: Path | None = None, stdin: str | None = None
    ) -> subprocess.CompletedProcess:
        return self._run(
            [str(self.bin / "kubectl"), f"--kubeconfig={conf or self.admin_conf}", *args],
            check=check,
            stdin=stdin,
        )

    def etcdctl(
        self, *args: str, endpoints: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess:
        env = {**self.etcdctl_env(), "ETCDCTL_ENDPOINTS": endpoints or self.etcd_url}
        return self._run([str(self.bin / "etcdctl"), *args], check=check, env=env)

    def etcdctl_env(self) -> dict[str, str]:
        return {
            "ETCDCTL_API": "3",
            "ETCDCTL_CACERT": str(self.pki / "etcd/ca.crt"),
            "ETCDCTL_CERT": str(self.pki / "etcd/healthcheck-client.crt"),
            "ETCDCTL_KEY": str(self.pki / "etcd/healthcheck-client.key"),
            "ETCDCTL_DIAL_TIMEOUT": "2s",
            "ETCDCTL_COMMAND_TIMEOUT": "5s",
        }

    @staticmethod
    def _run(
        argv: list[str], *, check: bool, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        completed = subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), **(env or {})},
        )
        if check and completed.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:6])} failed ({completed.returncode}): {completed.stderr}")
        return completed

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(self, manifest: dict) -> None:
        self.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))

    # ----- hand-made Nodes and pods (no kubelet) -----

    def add_node(
        self,
        name: str,
        *,
        instance_id: str = "",
        address: str = "",
        control_plane: bool = False,
        ready: bool = True,
        availability_zone: str = "us-east-1a",
    ) -> None:
        labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
        if instance_id:
            labels["kcluster.io/instance-id"] = instance_id
        if control_plane:
            labels["node-role.kubernetes.io/control-plane"] = ""
        spec = {"providerID": f"aws:///{availability_zone}/{instance_id}"} if instance_id else {}
        self.apply(
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}, "spec": spec}
        )
        self.set_node_ready(name, ready, address=address)

    def set_node_ready(self, name: str, ready: bool, *, address: str = "") -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        status: dict[str, Any] = {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "reason": "KubeletReady" if ready else "KubeletNotReady",
                    "message": "set by the test",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ]
        }
        if address:
            status["addresses"] = [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": name},
            ]
        self.kubectl(
            "patch",
            "node",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": status}),
        )

    def add_pod(
        self, node: str, name: str, *, grace_seconds: int = 0, labels: dict[str, str] | None = None
    ) -> None:
        """A Running, Ready pod bound to `node` (a bare pod: drain needs --force, which the scripts pass)."""
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels or {"app": name}},
                "spec": {
                    "nodeName": node,
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": grace_seconds,
                    "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}],
                },
            }
        )
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        conditions = [
            {"type": kind, "status": "True", "lastTransitionTime": now}
            for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        ]
        status = {"phase": "Running", "conditions": conditions, "startTime": now}
        self.kubectl(
            "patch", "pod", name, "-n", NAMESPACE, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": status}),
        )  # fmt: skip

    def add_pdb(self, name: str, selector: dict[str, str], min_available: int) -> None:
        """A PodDisruptionBudget; waits until the disruption controller has computed its status."""
        self.apply(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {"minAvailable": min_available, "selector": {"matchLabels": selector}},
            }
        )
        deadline = time.monotonic() + 30
        while True:
            pdb = self.get("pdb", name, "-n", NAMESPACE)
            status = pdb.get("status", {})
            if (
                status.get("observedGeneration") == pdb["metadata"]["generation"]
                and "currentHealthy" in status
            ):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"PDB {name} status never computed: {status}")
            time.sleep(0.2)

    def node_names(self) -> list[str]:
        return sorted(item["metadata"]["name"] for item in self.get("nodes")["items"])

    def pod(self, name: str) -> dict | None:
        answer = self.kubectl("get", "pod", name, "-n", NAMESPACE, "-o", "json", check=False)
        return json.loads(answer.stdout) if answer.returncode == 0 else None

    def clean(self) -> None:
        """Remove every hand-made object (Nodes, pods, PDBs, bootstrap tokens, uploaded certs)."""
        self.kubectl("delete", "pdb", "--all", "-n", NAMESPACE, "--wait=false", check=False)
        self.kubectl(
            "delete",
            "pod",
            "--all",
            "-n",
            NAMESPACE,
            "--grace-period=0",
            "--force",
            "--wait=false",
            check=False,
        )
        for name in self.node_names():
            self.kubectl("delete", "node", name, "--wait=false", check=False)
        self.kubectl(
            "delete", "secret", "-n", "kube-system", "--field-selector=type=bootstrap.kubernetes.io/token",
            "--wait=false", check=False,
        )  # fmt: skip
        self.kubectl(
            "delete", "secret", "kubeadm-certs", "-n", "kube-system", "--ignore-not-found", check=False
        )


def copy_kube_dir(plane: ControlPlane, root: Path) -> None:
    """What a control plane node holds under /etc/kubernetes: admin.conf and the PKI (kubeadm's layout)."""
    target = root / "etc/kubernetes"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(plane.admin_conf, target / "admin.conf")
    shutil.copytree(plane.pki, target / "pki", dirs_exist_ok=True)
