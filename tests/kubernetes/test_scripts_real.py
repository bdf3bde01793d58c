"""health, refresh-join and init's re-publishing, unmodified, against real Kubernetes components: a real
kube-apiserver on a real etcd, the real kube-controller-manager (its nodelifecycle controller for the
NotReady transition), real kubeadm phases and kubectl."""

from __future__ import annotations

import base64
import time
from datetime import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.kubernetes.cluster import UPLOAD_CERTS_KUBECONFIG, free_ports
from tests.kubernetes.conftest import RealNodes
from tests.scripts.conftest import CLUSTER

pytestmark = pytest.mark.kubernetes

CP = "control-plane"
WORKER = "worker"


def _ready_condition(real: RealNodes, name: str) -> dict:
    node = real.plane.get("node", name)
    return next(c for c in node["status"]["conditions"] if c["type"] == "Ready")


def test_health_reports_ready_nodes_and_the_real_etcd(real: RealNodes) -> None:
    cp, worker = real.add(CP), real.add(WORKER)
    down = real.add(WORKER, ready=False)

    run = real.run(cp, "health")

    assert run.exit_code == 0, run.result.stderr
    out = run.output
    assert (out["api_ready"], out["warnings"]) == (True, [])
    nodes = {node["instance_id"]: node for node in out["nodes"]}
    assert (nodes[cp]["ready"], nodes[cp]["control_plane"], nodes[worker]["ready"], nodes[down]["ready"]) == (
        True, True, True, False,
    )  # fmt: skip
    assert out["counts"] == {"ready": 2, "not_ready": 1, "ready_control_planes": 1}
    since = datetime.fromisoformat(_ready_condition(real, real.node_name(down))["lastTransitionTime"])
    assert nodes[down]["not_ready_since"] == int(since.timestamp())
    assert out["etcd"] == {
        "reachable": True, "members": 1, "healthy": 1, "leader": "default",
        "member_health": [{"name": "default", "healthy": True}],
    }  # fmt: skip


def test_health_sees_the_not_ready_the_node_lifecycle_controller_sets(real: RealNodes) -> None:
    cp, worker = real.add(CP), real.add(WORKER)
    name = real.node_name(worker)
    # a node lifecycle controller of its own (the shared kube-controller-manager runs without it)
    (port,) = free_ports(1)
    real.plane.start_controller_manager(
        "nodelifecycle", "nodelifecycle", port, "--node-monitor-period=1s", "--node-monitor-grace-period=5s"
    )
    try:
        deadline = time.monotonic() + 60
        while _ready_condition(real, name)["status"] == "True":
            assert time.monotonic() < deadline, real.plane.log_tail("nodelifecycle")
            time.sleep(0.5)
    finally:
        real.plane.stop_process("nodelifecycle")
    condition = _ready_condition(real, name)
    assert (condition["status"], condition["reason"]) == ("Unknown", "NodeStatusUnknown")

    run = real.run(cp, "health")

    assert run.exit_code == 0, run.result.stderr
    entry = next(node for node in run.output["nodes"] if node["instance_id"] == worker)
    assert entry["ready"] is False
    assert entry["not_ready_since"] == int(
        datetime.fromisoformat(condition["lastTransitionTime"]).timestamp()
    )


def _decrypt(key_hex: str, blob: bytes) -> bytes:
    """kubeadm's certificate encryption (AES-GCM, the nonce first) with the certificate key."""
    return AESGCM(bytes.fromhex(key_hex)).decrypt(blob[:12], blob[12:], None)


def _token_secret(real: RealNodes, token: str) -> dict:
    token_id = token.split(".")[0]
    return real.plane.get("secret", f"bootstrap-token-{token_id}", "-n", "kube-system")


def _expiration(secret: dict) -> float:
    text = base64.b64decode(secret["data"]["expiration"]).decode()
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_refresh_join_mints_a_real_token_and_uploads_certificates_with_a_real_key(real: RealNodes) -> None:
    cp = real.add(CP)
    before = time.time()

    run = real.run(cp, "refresh-join", TokenTtl="15m", UploadCertificates="true")

    assert run.exit_code == 0, run.result.stderr
    assert run.output["certificate_key_refreshed"] is True
    token = real.parameter(f"/kcluster/{CLUSTER}/join/token")
    secret = _token_secret(real, token)
    assert base64.b64decode(secret["data"]["token-secret"]).decode() == token.split(".")[1]
    assert before + 15 * 60 - 5 <= _expiration(secret) <= time.time() + 15 * 60 + 5
    key = real.parameter(f"/kcluster/{CLUSTER}/join/certificate-key")
    certs = real.plane.get("secret", "kubeadm-certs", "-n", "kube-system")
    ca = _decrypt(key, base64.b64decode(certs["data"]["ca.crt"]))
    assert x509.load_pem_x509_certificate(ca) == x509.load_pem_x509_certificate(
        (real.plane.pki / "ca.crt").read_bytes()
    )
    # the uploaded certificates expire with the bootstrap token kubeadm makes their owner: 2 h
    (owner,) = certs["metadata"]["ownerReferences"]
    owner_secret = real.plane.get("secret", owner["name"], "-n", "kube-system")
    assert before + 7200 - 5 <= _expiration(owner_secret) <= time.time() + 7200 + 5
    # the secrets never reached the output
    assert (
        token not in run.result.stdout + run.result.stderr
        and key not in run.result.stdout + run.result.stderr
    )


def test_refresh_join_deletes_the_node_of_a_terminated_instance(real: RealNodes) -> None:
    cp, worker = real.add(CP), real.add(WORKER)
    gone = real.add(WORKER, ready=False)
    gone_name = real.node_name(gone)
    real.nodes.terminate(gone)

    run = real.run(cp, "refresh-join", TokenTtl="15m", UploadCertificates="true")

    assert run.exit_code == 0, run.result.stderr
    assert (run.output["stray_nodes_deleted"], run.output["stray_members_removed"]) == (1, 0)
    assert real.plane.node_names() == sorted([real.node_name(cp), real.node_name(worker)])
    assert gone_name not in real.plane.node_names()


def test_init_on_a_running_control_plane_republishes_join_material(real: RealNodes) -> None:
    cp = real.add(CP)

    run = real.run(cp, "init")

    assert run.exit_code == 0, run.result.stderr
    assert run.output["changed"] is False
    published_hash = real.parameter(f"/kcluster/{CLUSTER}/join/ca-cert-hash")
    assert published_hash == run.output["ca_cert_hash"]
    # what a joining kubelet checks: the CA in the (signed) cluster-info ConfigMap has that hash
    info = real.plane.get("configmap", "cluster-info", "-n", "kube-public")
    kubeconfig = info["data"]["kubeconfig"]
    assert any(key.startswith("jws-kubeconfig-") for key in info["data"])  # signed by the bootstrapsigner
    token = real.parameter(f"/kcluster/{CLUSTER}/join/token")
    assert f"jws-kubeconfig-{token.split('.')[0]}" in _wait_for_signature(real, token)
    assert "certificate-authority-data" in kubeconfig
    admin = real.parameter(f"/kcluster/{CLUSTER}/admin/kubeconfig")
    assert admin == (real.nodes.fleet.sandbox(cp) / "etc/kubernetes/admin.conf").read_text()


def _wait_for_signature(real: RealNodes, token: str) -> dict:
    deadline = time.monotonic() + 20
    while True:
        data = real.plane.get("configmap", "cluster-info", "-n", "kube-public")["data"]
        if f"jws-kubeconfig-{token.split('.')[0]}" in data or time.monotonic() > deadline:
            return data
        time.sleep(0.2)


def test_kubeadm_upload_certs_without_the_pki_uploads_empty_values(real: RealNodes) -> None:
    """A kubeadm trap the scripts must avoid: no error, an empty upload."""
    plane = real.plane
    root = real.nodes.fleet.sandbox(real.add(WORKER, node=False))
    (root / "etc/kubernetes").mkdir(parents=True, exist_ok=True)
    (root / "etc/kubernetes/admin.conf").write_bytes(plane.admin_conf.read_bytes())
    key = plane.kubeadm("certs", "certificate-key").stdout.strip()

    upload = plane.kubeadm(
        "--rootfs", str(root), "init", "phase", "upload-certs", "--upload-certs", "--certificate-key", key,
        UPLOAD_CERTS_KUBECONFIG,
    )  # fmt: skip

    assert upload.returncode == 0
    certs = plane.get("secret", "kubeadm-certs", "-n", "kube-system")
    values = {name: base64.b64decode(value) for name, value in certs.get("data", {}).items()}
    assert values, certs
    # every entry is empty, or encrypts nothing
    assert all(blob == b"" or _decrypt(key, blob) == b"" for blob in values.values()), values


def test_kubeadm_refuses_a_certificate_key_with_a_config(real: RealNodes) -> None:
    plane = real.plane
    key = plane.kubeadm("certs", "certificate-key").stdout.strip()

    mixed = plane.kubeadm(
        "init", "phase", "upload-certs", "--upload-certs", "--config", str(plane.workdir / "kubeadm.yaml"),
        "--certificate-key", key, check=False,
    )  # fmt: skip

    assert mixed.returncode != 0
    assert "can not mix '--config' with arguments" in mixed.stderr
    assert "certificate-key" in mixed.stderr
    assert plane.kubectl("get", "secret", "kubeadm-certs", "-n", "kube-system", check=False).returncode != 0
