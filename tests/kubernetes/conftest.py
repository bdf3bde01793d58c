"""Fixtures for the node scripts against real Kubernetes components (see cluster.py).

`control_plane` (session): etcd + kube-apiserver + kube-controller-manager at kubernetes_version, shared by
every test of the process; `kube` (function) hands it to a test and removes what the test made.
`real` (function): the twin's sandboxes and moto (tests/scripts/conftest.py) with the REAL kubectl,
kubeadm, crictl (a stand-in running the real etcdctl) and sleep first on PATH; only cloud-init, systemctl and aws stay the twin's fakes.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.kubernetes.cluster import (
    UPLOAD_CERTS_KUBECONFIG,
    ControlPlane,
    binaries,
    copy_kube_dir,
    kubernetes_version,
)
from tests.scripts.conftest import Nodes, Run, default_parameters, nodes, ssm  # noqa: F401 - fixtures
from tests.scripts.crictl_standin import write_crictl

# What init applies as the CNI manifest here: the tests reach 127.0.0.1 only, so `curl <CniManifestUrl>`
# gives this local manifest (and the real kubectl gets it for an https://...yaml argument).
CNI_STUB = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "calico-config", "namespace": "kube-system"},
    "data": {"stub": "the CNI manifest (tests reach 127.0.0.1 only)"},
}


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    version = kubernetes_version()
    plane = ControlPlane.start(binaries(version), version, tmp_path_factory.mktemp("kubernetes"))
    try:
        yield plane
    finally:
        plane.close()


@pytest.fixture
def kube(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    control_plane.clean()
    yield control_plane
    control_plane.clean()


def _real_bin(plane: ControlPlane, directory: Path) -> Path:
    """Real tools for the scripts' PATH: kubectl (CNI URL served locally), kubeadm with --rootfs set to the
    sandbox (so it finds /etc/kubernetes there, as on a node), crictl for etcdctl, and sleep."""
    directory.mkdir(parents=True, exist_ok=True)
    manifest = directory / "cni.yaml"
    manifest.write_text(json.dumps(CNI_STUB))
    (directory / "kubectl").write_text(
        '#!/usr/bin/env bash\nargs=()\nfor arg in "$@"; do\n'
        f'  [[ "$arg" == https://*.yaml || "$arg" == https://*.yml ]] && arg="{manifest}"\n'
        '  args+=("$arg")\ndone\n'
        f'exec "{plane.bin}/kubectl" "${{args[@]}}"\n'
    )
    (directory / "kubeadm").write_text(
        "#!/usr/bin/env bash\n"
        f'[[ "$1 $2 $3" == "init phase upload-certs" ]] && set -- "$@" {UPLOAD_CERTS_KUBECONFIG}\n'
        f'exec "{plane.bin}/kubeadm" --rootfs "${{KCLUSTER_ROOT:?}}" "$@"\n'
    )
    # init downloads the CNI manifest with curl (to move its images off Docker Hub): here, the stub
    (directory / "curl").write_text(
        '#!/usr/bin/env bash\nwhile [[ $# -gt 0 ]]; do [[ "$1" == -o ]] && out="$2"; shift; done\n'
        f'cp "{manifest}" "${{out:?curl stand-in: only -o FILE}}"\n'
    )
    for name in ("kubectl", "kubeadm", "curl"):
        (directory / name).chmod(0o755)
    write_crictl(directory, plane.bin / "etcdctl")  # etcdctl runs "in the etcd container"
    (directory / "sleep").symlink_to(shutil.which("sleep") or "/bin/sleep")
    return directory


@dataclass
class RealNodes:
    """Instances (moto + sandboxes) whose Kubernetes side is the real control plane."""

    nodes: Nodes
    plane: ControlPlane
    bin: Path

    def add(self, role: str, *, node: bool = True, ready: bool = True) -> str:
        """An instance, and (unless node=False) its hand-made Node; a control plane also gets /etc/kubernetes."""
        instance_id = self.nodes.add(role)
        if node:
            self.plane.add_node(
                self.node_name(instance_id),
                instance_id=instance_id,
                address=self.address(instance_id),
                control_plane=role == "control-plane",
                ready=ready,
            )
        if role == "control-plane":
            copy_kube_dir(self.plane, self.nodes.fleet.sandbox(instance_id))
        return instance_id

    def instance(self, instance_id: str) -> dict:
        answer = self.nodes.ec2.describe_instances(InstanceIds=[instance_id])
        return answer["Reservations"][0]["Instances"][0]

    def node_name(self, instance_id: str) -> str:
        return self.instance(instance_id)["PrivateDnsName"]

    def address(self, instance_id: str) -> str:
        return self.instance(instance_id)["PrivateIpAddress"]

    def run(self, on: str, key: str, *, etcd_endpoints: str | None = None, **overrides: str) -> Run:
        params = default_parameters(key) | overrides
        if "KubernetesVersion" in params:
            params["KubernetesVersion"] = self.plane.version
        env = {f"SSM_{name}": value for name, value in params.items()}
        env |= {
            "ETCDCTL_ENDPOINTS": etcd_endpoints or self.plane.etcd_url,
            "ETCDCTL_DIAL_TIMEOUT": "2s",
            "ETCDCTL_COMMAND_TIMEOUT": "5s",
        }
        result = self.nodes.run_env(on, key, env, path_first=self.bin)
        lines = result.stdout.splitlines()
        assert len(lines) == 1, f"expected one result line, got {result.stdout!r}; stderr {result.stderr}"
        return Run(result, json.loads(lines[0]))

    def parameter(self, name: str) -> str:
        client = self.nodes.fleet._ssm_client("us-east-1", "")
        return client.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]


@pytest.fixture
def real(nodes: Nodes, kube: ControlPlane, tmp_path: Path) -> RealNodes:  # noqa: F811 - the imported fixture
    return RealNodes(nodes, kube, _real_bin(kube, tmp_path / "real-bin"))
