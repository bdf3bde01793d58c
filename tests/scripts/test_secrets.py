"""Secrets on the nodes (DESIGN.md section 4): SecureStrings under the cluster's own KMS key, no
long-lived bootstrap token and no secret left in a file on disk, Nodes found by spec.providerID."""

from __future__ import annotations

import json
from pathlib import Path

from tests.scripts.conftest import CLUSTER, Nodes
from twin.node.fleet import FAKE_BIN_DIR


def _admin(nodes: Nodes, instance_id: str) -> str:
    return (nodes.fleet.sandbox(instance_id) / "etc/kubernetes/admin.conf").read_text()


def test_secure_strings_are_written_with_the_clusters_kms_key(nodes: Nodes) -> None:
    cps, _ = nodes.cluster(1, 1)
    assert nodes.run(cps[0], "refresh-join").output["ok"]
    prefix = f"/kcluster/{CLUSTER}"
    assert set(nodes.key_ids[f"{prefix}/join/token"]) == {nodes.kms_key_arn}
    assert set(nodes.key_ids[f"{prefix}/join/certificate-key"]) == {nodes.kms_key_arn}
    assert nodes.key_ids[f"{prefix}/admin/kubeconfig"] == [nodes.kms_key_arn]
    # the CA cert hash is no secret: a plain String, no key
    assert set(nodes.key_ids[f"{prefix}/join/ca-cert-hash"]) == {None}


def test_no_secret_is_written_without_the_clusters_key(nodes: Nodes, ssm) -> None:
    ssm.put_parameter(
        Name=f"/kcluster/{CLUSTER}/config",
        Type="String",
        Overwrite=True,
        Value=json.dumps({"cluster_name": CLUSTER}),
    )
    control_plane = nodes.add("control-plane")
    run = nodes.run(control_plane, "init")
    assert (run.exit_code, run.output["error"], run.output["changed"]) == (1, "kms-key-unknown", False)
    assert nodes.key_ids == {}
    assert "kubeadm-init" not in nodes.model.operation_counts()


def _files(root: Path) -> dict[Path, str]:
    return {path: path.read_text(errors="replace") for path in root.rglob("*") if path.is_file()}


def test_init_leaves_no_token_or_certificate_key_on_disk(nodes: Nodes) -> None:
    cps, wks = nodes.cluster(1, 1)
    assert nodes.run(cps[0], "init").output["changed"] is False  # re-publishes
    secrets = nodes.model.issued_secrets()
    assert secrets
    for instance_id in (*cps, *wks):
        for path, text in _files(nodes.fleet.sandbox(instance_id)).items():
            if path.name in ("admin.conf", "kubelet.conf") or "/pki/" in str(path):
                continue  # credentials kubeadm itself keeps, 0600 under /etc/kubernetes
            leaked = [secret for secret in secrets if secret in text]
            assert leaked == [], path
    init_log = nodes.fleet.sandbox(cps[0]) / "var/log/kcluster/kubeadm-init.log"
    assert "--token <redacted>" in init_log.read_text()


def test_init_mints_no_long_lived_token_and_prints_no_certificate_key(nodes: Nodes, tmp_path: Path) -> None:
    capture = tmp_path / "capture"
    capture.mkdir()
    wrapper_dir = tmp_path / "bin"
    wrapper_dir.mkdir()
    wrapper = wrapper_dir / "kubeadm"
    wrapper.write_text(
        "#!/usr/bin/env bash\n"
        f'printf "%s\\n" "$*" >>"{capture}/argv"\n'
        'previous=""\n'
        'for arg in "$@"; do\n'
        f'  if [[ "$previous" == --config ]]; then cp "$arg" "{capture}/config"; fi\n'
        '  previous="$arg"\n'
        "done\n"
        f'exec "{FAKE_BIN_DIR}/kubeadm" "$@"\n'
    )
    wrapper.chmod(0o755)
    control_plane = nodes.add("control-plane")
    assert nodes.run(control_plane, "init", path_first=wrapper_dir).output["ok"]
    (init_call,) = [
        line for line in (capture / "argv").read_text().splitlines() if line.startswith("init --config")
    ]
    assert "--upload-certs" not in init_call.split()
    config = (capture / "config").read_text()
    assert 'bootstrapTokens:\n- ttl: "15m"\n' in config
    assert "token create --ttl 15m" in (capture / "argv").read_text()


def test_drain_remove_finds_the_node_by_provider_id_not_by_a_rewritable_label(nodes: Nodes) -> None:
    cps, wks = nodes.cluster(1, 2)
    names = {view.instance_id: view.name for view in nodes.model.nodes()}
    # GIVEN the first worker's kubelet relabelled its Node as the second worker's instance
    nodes.model.label_node(_admin(nodes, cps[0]), names[wks[0]], {"kcluster.io/instance-id": wks[1]}, True)
    # WHEN the second worker leaves
    run = nodes.run(cps[0], "drain-remove", InstanceId=wks[1])
    # THEN its own Node (by spec.providerID) goes, not the impostor
    assert run.output["node_name"] == names[wks[1]]
    assert {view.instance_id for view in nodes.model.nodes()} == {cps[0], wks[0]}


def test_health_maps_nodes_to_instances_by_provider_id(nodes: Nodes) -> None:
    cps, wks = nodes.cluster(1, 1)
    names = {view.instance_id: view.name for view in nodes.model.nodes()}
    nodes.model.label_node(
        _admin(nodes, cps[0]), names[wks[0]], {"kcluster.io/instance-id": "i-0ffffffffffffffff"}, True
    )
    run = nodes.run(cps[0], "health")
    assert {node["name"]: node["instance_id"] for node in run.output["nodes"]} == {
        names[i]: i for i in (*cps, *wks)
    }
