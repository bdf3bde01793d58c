"""The restore document against REAL etcd: the etcd, etcdctl, etcdutl and kubeadm that tools/kubernetes/
build.sh builds for the suite, on 127.0.0.1 with TLS. A real backup is taken by the backup document from a
running etcd with keys in it (test_backup's Backups), then the REAL rendered script (common.sh +
restore.sh) runs on a NEW control plane of the model, with PATH = the real kubeadm (`kubeadm config
images list` names the etcd image) and a `ctr` stand-in that runs the real etcdutl as kubeadm's etcd
image would (tests/scripts/ctr_standin.py), then the twin's fake aws/cloud-init; `aws s3` reads moto.

The restored data directory is then served by a real etcd under the new member's name and peer URL: the
keys written before the backup are read back, and a second member joins it with `member add` (which only
works when the restored member advertises this node's peer URL, not the old node's).
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.scripts.conftest import CLUSTER, KUBERNETES_VERSION, Run
from tests.scripts.ctr_standin import pulled_images, write_ctr
from tests.scripts.etcd_cluster import HOST, EtcdCluster, Member, free_ports
from tests.scripts.test_backup import BACKUP_ID, KEYS, PKI_FILES, Backups, backups  # noqa: F401 - fixture
from tests.scripts.test_etcd_membership import etcd_bin  # noqa: F401 - the fixture

pytestmark = pytest.mark.etcd

KEY_PREFIX = "/registry/configmaps/default/"


def _etcd_image(kubeadm: Path) -> str:
    listed = subprocess.run(
        [str(kubeadm), "config", "images", "list", f"--kubernetes-version=v{KUBERNETES_VERSION}"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return next(line for line in listed.stdout.split() if "/etcd:" in line)


@dataclass
class NewControlPlane:
    """A fresh control-plane instance (no PKI, empty /var/lib/etcd) whose IP is 127.0.0.1."""

    backup: Backups
    instance: str
    name: str
    bin_dir: Path
    peer_port: int

    @property
    def sandbox(self) -> Path:
        return self.backup.nodes.fleet.sandbox(self.instance)

    @property
    def peer_url(self) -> str:
        return f"https://{HOST}:{self.peer_port}"

    def restore(self, **overrides: str) -> Run:
        params = {
            "ClusterName": CLUSTER,
            "KubernetesVersion": KUBERNETES_VERSION,
            "BackupId": BACKUP_ID,
            "Tier": "frequent",
        } | overrides
        env = {f"SSM_{name}": value for name, value in params.items()}
        env["KC_ETCD_PEER_PORT"] = str(self.peer_port)
        result = self.backup.nodes.run_env(self.instance, "restore", env, path_first=self.bin_dir)
        lines = result.stdout.splitlines()
        assert len(lines) == 1, f"expected one result line, got {result.stdout!r}; stderr {result.stderr}"
        return Run(result, json.loads(lines[0]))

    def node_files(self) -> list[str]:
        """Every file under the node's /etc/kubernetes and /var/lib/etcd (what a refusal must not touch)."""
        roots = [self.sandbox / "etc/kubernetes", self.sandbox / "var/lib/etcd"]
        return sorted(
            str(p.relative_to(self.sandbox)) for root in roots if root.exists() for p in root.rglob("*")
        )


@pytest.fixture
def backed_up(backups, etcd_bin: Path, tmp_path: Path) -> Iterator[callable]:  # noqa: F811
    """GIVEN a one-member etcd with KEYS, backed up by the backup document; a new control plane to restore."""

    def start() -> tuple[Backups, NewControlPlane]:
        backup = backups()
        backup.put_keys()
        taken = backup.run()
        assert taken.output["ok"], taken.result.stderr
        instance = backup.nodes.add("control-plane")
        sandbox = backup.nodes.fleet.sandbox(instance)
        data_file = sandbox / "run/cloud-init/instance-data.json"
        data = json.loads(data_file.read_text())
        data["v1"]["local_ipv4"] = HOST  # real etcd serves the peer URL on loopback
        data_file.write_text(json.dumps(data))
        bin_dir = tmp_path / "restore-bin"
        write_ctr(bin_dir, etcd_bin / "etcdutl", _etcd_image(etcd_bin / "kubeadm"))
        (bin_dir / "kubeadm").symlink_to(etcd_bin / "kubeadm")
        (peer_port,) = free_ports(1)
        return backup, NewControlPlane(backup, instance, data["v1"]["local_hostname"], bin_dir, peer_port)

    yield start


def _serve(etcd: EtcdCluster, member: Member, initial_cluster: str, state: str) -> None:
    etcd.members[member.name] = member
    etcd._launch(member, initial_cluster, initial_cluster_state=state)


def _read_keys(etcd: EtcdCluster, endpoint: str) -> dict[str, str]:
    got = etcd.etcdctl("get", "--prefix", KEY_PREFIX, "-w", "json", endpoints=[endpoint])
    assert got.returncode == 0, got.stderr
    return {
        base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"]).decode()
        for kv in json.loads(got.stdout).get("kvs", [])
    }


def _members(etcd: EtcdCluster, endpoint: str) -> list[tuple[str, list[str]]]:
    listed = etcd.etcdctl("member", "list", "-w", "json", endpoints=[endpoint])
    assert listed.returncode == 0, listed.stderr
    return sorted((m.get("name", ""), m["peerURLs"]) for m in json.loads(listed.stdout)["members"])


def test_a_new_control_plane_restores_the_backup_as_its_own_member_and_a_second_joins(
    backed_up,
    etcd_bin: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    backup, node = backed_up()
    # the backup's keys go on changing after it was taken: those later writes are what a restore loses
    backup.cluster.etcd.etcdctl("put", KEY_PREFIX + "after-the-backup", "lost")

    # WHEN the new control plane restores the backup
    run = node.restore()

    # THEN it reports the restored member, with this node's own name and peer URL
    assert run.exit_code == 0, run.result.stderr
    output = run.output
    assert (output["ok"], output["changed"], output["key"]) == (True, True, f"frequent/{BACKUP_ID}/")
    assert (output["member_name"], output["peer_url"]) == (node.name, node.peer_url)
    assert pulled_images(node.bin_dir) == [_etcd_image(etcd_bin / "kubeadm")]
    # the cluster's PKI is this node's now, byte for byte, keys private
    old_pki = backup.sandbox() / "etc/kubernetes/pki"
    new_pki = node.sandbox / "etc/kubernetes/pki"
    for name in PKI_FILES:
        assert (new_pki / name).read_bytes() == (old_pki / name).read_bytes(), name
        assert ((new_pki / name).stat().st_mode & 0o777) == (0o600 if name.endswith(".key") else 0o644)
    for secret in ("ca.key", "sa.key", "front-proxy-ca.key", "etcd/ca.key"):
        assert (old_pki / secret).read_text() not in run.result.stdout + run.result.stderr
    assert not list((node.sandbox / "var/lib/kcluster").glob("restore-snapshot.*"))

    # AND a real etcd serves the restored data dir with the keys written before the backup
    for member in list(backup.cluster.etcd.members):
        backup.cluster.etcd.stop(member)
    # served with the test etcd's certificates, as kubeadm issues new ones from the restored etcd CA
    etcd = EtcdCluster(tmp_path / "restored-run", backup.cluster.etcd.pki)
    etcd.workdir.mkdir()
    etcd.etcd_bin, etcd.etcdctl_bin = str(etcd_bin / "etcd"), str(etcd_bin / "etcdctl")
    client_port, second_client, second_peer = free_ports(3)
    first = Member(node.name, client_port, node.peer_port, node.sandbox / "var/lib/etcd")
    try:
        _serve(etcd, first, f"{node.name}=https://10.255.255.1:2380", "new")  # ignored: the data dir decides
        etcd.wait_healthy([node.name])
        assert _read_keys(etcd, first.client_url) == KEYS
        assert _members(etcd, first.client_url) == [(node.name, [node.peer_url])]

        # AND a second member joins it through the restored member's peer URL
        second = Member("second-control-plane", second_client, second_peer, tmp_path / "second")
        added = etcd.etcdctl("member", "add", second.name, f"--peer-urls={second.peer_url}",
                             endpoints=[first.client_url])  # fmt: skip
        assert added.returncode == 0, added.stderr
        _serve(etcd, second, f"{node.name}={node.peer_url},{second.name}={second.peer_url}", "existing")
        etcd.wait_healthy([node.name, second.name], limit=30)
        assert _read_keys(etcd, second.client_url) == KEYS
    finally:
        etcd.close()


def test_a_second_run_for_the_same_backup_changes_nothing(backed_up) -> None:
    _, node = backed_up()
    first = node.restore()
    assert first.output["changed"], first.result.stderr
    files = node.node_files()

    again = node.restore()

    assert (again.exit_code, again.output["ok"], again.output["changed"]) == (0, True, False)
    assert (again.output["member_name"], again.output["peer_url"]) == (node.name, node.peer_url)
    assert again.output["revision"] == first.output["revision"]
    assert node.node_files() == files
    other = node.restore(BackupId="20260101T001500Z")
    assert (other.exit_code, other.output["error"]) == (3, "already-restored")


def _replace_snapshot(backup: Backups, damage: str) -> None:
    """Damage the stored snapshot; "...-with-its-manifest" also rewrites the manifest to match it, so
    only the snapshot's own checks (its SHA-256 trailer, etcdutl) can tell."""
    prefix = f"frequent/{BACKUP_ID}/"
    body = backup.body(prefix + "etcd.db")
    if damage.startswith("corrupted"):
        body = body[: len(body) // 2] + bytes([body[len(body) // 2] ^ 0xFF]) + body[len(body) // 2 + 1 :]
    else:
        body = body[: len(body) // 2 + 7]
    backup.s3.put_object(Bucket=backup.bucket, Key=prefix + "etcd.db", Body=body)
    if damage.endswith("with-its-manifest"):
        manifest = json.loads(backup.body(prefix + "manifest.json"))
        manifest["snapshot"] |= {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        backup.s3.put_object(Bucket=backup.bucket, Key=prefix + "manifest.json", Body=json.dumps(manifest))


REFUSED_BY = {
    "corrupted": "not the one its manifest recorded",
    "truncated": "not the one its manifest recorded",
    "corrupted-with-its-manifest": "does not match its trailer",
    "truncated-with-its-manifest": "truncated?",
}


@pytest.mark.parametrize("damage", sorted(REFUSED_BY))
def test_a_corrupted_or_truncated_snapshot_is_refused_and_nothing_changes(backed_up, damage: str) -> None:
    backup, node = backed_up()
    _replace_snapshot(backup, damage)
    before = node.node_files()

    run = node.restore()

    assert run.exit_code != 0
    assert (run.output["ok"], run.output["changed"], run.output["error"]) == (
        False,
        False,
        "snapshot-invalid",
    )
    assert REFUSED_BY[damage] in run.output["message"], run.output
    assert node.node_files() == before
    assert not (node.sandbox / "var/lib/kcluster/restored.json").exists()


# What a node may already hold, and how the restore refuses it: etcd data of another member (kubeadm's
# preflight refuses it too; `kubeadm reset` cleans it), another cluster's CA, kubeadm having run.
ALREADY_THERE = {
    "var/lib/etcd/member/snap/db": ("an old member's data", "etcd-data-present"),
    "etc/kubernetes/pki/ca.crt": ("another cluster's CA", "pki-present"),
    "etc/kubernetes/admin.conf": ("apiVersion: v1", "already-initialized"),
}


@pytest.mark.parametrize("path", sorted(ALREADY_THERE))
def test_a_node_that_is_not_fresh_is_refused_and_left_as_it_was(backed_up, path: str) -> None:
    _, node = backed_up()
    content, error = ALREADY_THERE[path]
    there = node.sandbox / path
    there.parent.mkdir(parents=True)
    there.write_text(content)
    before = node.node_files()

    run = node.restore()

    assert (run.exit_code, run.output["error"], run.output["changed"]) == (3, error, False)
    assert node.node_files() == before and there.read_text() == content


def test_a_missing_backup_and_bad_parameters_are_refused(backed_up) -> None:
    _, node = backed_up()
    missing = node.restore(BackupId="20250101T000000Z")
    assert (missing.exit_code, missing.output["error"]) == (1, "backup-not-found")
    for overrides in ({"Tier": "hourly"}, {"BackupId": "../x"}, {"KubernetesVersion": "1.37"}):
        bad = node.restore(**overrides)
        assert (bad.exit_code, bad.output["error"]) == (2, "invalid-parameter"), overrides
    assert node.node_files() == []


FAILING_RESTORE = """#!/bin/bash
# the real etcdutl, then a failure after `snapshot restore` wrote its data (a node losing its disk mid-way)
"{real}" "$@"
if [[ "$1 $2" == "snapshot restore" ]]; then
  echo "Error: input/output error" >&2
  exit 1
fi
"""


def test_a_restore_that_fails_half_way_leaves_an_empty_data_dir_and_can_run_again(
    backed_up,
    etcd_bin: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    _, node = backed_up()
    failing = tmp_path / "failing-etcdutl"
    failing.write_text(FAILING_RESTORE.format(real=etcd_bin / "etcdutl"))
    failing.chmod(0o755)
    write_ctr(node.bin_dir, failing, _etcd_image(etcd_bin / "kubeadm"))

    run = node.restore()

    assert (run.exit_code, run.output["error"]) == (1, "etcd-restore-failed"), run.result.stderr
    assert "input/output error" in run.output["message"]
    assert list((node.sandbox / "var/lib/etcd").iterdir()) == []
    assert not (node.sandbox / "var/lib/kcluster/restored.json").exists()

    # WHEN it runs again with a working etcdutl THEN it restores (the PKI it placed is the backup's own)
    write_ctr(node.bin_dir, etcd_bin / "etcdutl", _etcd_image(etcd_bin / "kubeadm"))
    again = node.restore()
    assert (again.exit_code, again.output["changed"]) == (0, True), again.result.stderr
    assert (node.sandbox / "var/lib/etcd/member").is_dir()
