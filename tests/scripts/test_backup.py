"""The backup document against a REAL etcd cluster: the etcd, etcdctl and etcdutl that kubeadm at
kubernetes_version deploys, built by tools/kubernetes/build.sh, on 127.0.0.1 with TLS (RealEtcd, as the
membership tests run it). The REAL rendered script (common.sh + backup.sh) runs in bash with PATH = the
real etcdctl/etcdutl first, then the twin's fake kubeadm/aws/cloud-init; `aws s3` goes to moto's S3.

Keys written before the snapshot are read back from the uploaded snapshot after `etcdutl snapshot
restore` onto a new member (its own --name, --initial-cluster, --initial-advertise-peer-urls) started
on it. A snapshot corrupted or truncated between `etcdctl snapshot save` and the check is refused and
nothing is uploaded; so is a file that is not an etcd database, even with a valid SHA-256 trailer.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.scripts.conftest import CLUSTER, Nodes, Run
from tests.scripts.crictl_standin import write_crictl
from tests.scripts.etcd_cluster import HOST, EtcdCluster, free_ports
from tests.scripts.test_etcd_membership import RealEtcd, etcd_bin  # noqa: F401 - the fixture
from twin.account import REGION

pytestmark = pytest.mark.etcd

BACKUP_ID = "20260101T000000Z"
PKI_FILES = [
    "ca.crt",
    "ca.key",
    "sa.key",
    "sa.pub",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "etcd/ca.crt",
    "etcd/ca.key",
]
KEYS = {f"/registry/configmaps/default/backup-test-{index}": f"value-{index}" for index in range(40)}
# A stand-in etcdctl: the real one, then damage to the snapshot it saved (before the script checks it).
DAMAGING_ETCDCTL = """#!/bin/bash
set -euo pipefail
"{real}" "$@"
# the flags crictl exec passes come first: `... snapshot save FILE` ends the arguments
if [[ $# -ge 3 && "${{*: -3:1}}" == snapshot && "${{*: -2:1}}" == save ]]; then
  file="${{*: -1}}"
  size="$(stat -c %s "$file")"
  {damage}
fi
"""
DAMAGE = {
    # a byte flipped inside the database: the size is right, the SHA-256 trailer is not
    "corrupted": 'printf "\\xff" | dd of="$file" bs=1 seek=$((size / 2)) conv=notrunc status=none',
    # cut short at an arbitrary size
    "truncated": 'truncate -s $((size / 2 + 7)) "$file"',
    # cut short by whole pages: the last 32 bytes are then database bytes, not the trailer
    "truncated-by-pages": 'truncate -s $((size - 4096)) "$file"',
    # not an etcd database at all, with a SHA-256 trailer that matches it: etcdutl refuses it
    "not-a-database": 'head -c 8192 /dev/urandom > "$file.body"; '
    '{ cat "$file.body"; sha256sum "$file.body" | cut -c1-64 | xxd -r -p; } > "$file"; rm -f "$file.body"',
}


# Which check refuses each damage.
REFUSED_BY = {
    "corrupted": "does not match its trailer",
    "truncated": "truncated?",
    "truncated-by-pages": "does not match its trailer",
    "not-a-database": "etcdutl snapshot status refused",
}


class Backups:
    """A control plane of the model with a real etcd behind it, a backup bucket in moto, the PKI files."""

    def __init__(self, nodes: Nodes, tmp_path: Path, bin_dir: Path, size: int) -> None:
        self.nodes = nodes
        self.etcd_bin = bin_dir
        self.tmp_path = tmp_path
        self.cluster = RealEtcd(nodes, tmp_path, size, bin_dir)
        self.s3 = boto3.client("s3", region_name=REGION)
        self.bucket = f"kc-{CLUSTER}-backup-20261202000000000000000002"
        self.s3.create_bucket(Bucket=self.bucket)
        self.s3.put_bucket_versioning(Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"})
        ssm = boto3.client("ssm", region_name=REGION)
        name = f"/kcluster/{CLUSTER}/config"
        config = json.loads(ssm.get_parameter(Name=name)["Parameter"]["Value"])
        ssm.put_parameter(
            Name=name,
            Type="String",
            Overwrite=True,
            Value=json.dumps({**config, "backup_bucket": self.bucket}),
        )
        self.on = self.cluster.control_planes[0]

    def put_keys(self) -> None:
        for key, value in KEYS.items():
            put = self.cluster.etcd.etcdctl("put", key, value)
            assert put.returncode == 0, put.stderr

    def run(self, *, path_first: Path | None = None, **overrides: str) -> Run:
        params = {"ClusterName": CLUSTER, "BackupId": BACKUP_ID, "Tier": "frequent"} | overrides
        env = {f"SSM_{name}": value for name, value in params.items()}
        env |= {
            "ETCDCTL_ENDPOINTS": self.cluster.etcd.members[self.cluster.names[self.on]].client_url,
            "ETCDCTL_DIAL_TIMEOUT": "1s",
            "ETCDCTL_COMMAND_TIMEOUT": "5s",
        }
        result = self.nodes.run_env(self.on, "backup", env, path_first=path_first or self.cluster.real_bin)
        lines = result.stdout.splitlines()
        assert len(lines) == 1, f"expected one result line, got {result.stdout!r}; stderr {result.stderr}"
        return Run(result, json.loads(lines[0]))

    def damaging_bin(self, damage: str) -> Path:
        """A node whose etcd image's etcdctl damages what it saves (crictl exec runs it, as on a node)."""
        directory = self.tmp_path / f"damaging-{damage}"
        image = directory / "etcd-image"
        image.mkdir(parents=True)
        script = image / "etcdctl"
        script.write_text(DAMAGING_ETCDCTL.format(real=self.etcd_bin / "etcdctl", damage=DAMAGE[damage]))
        script.chmod(0o755)
        (image / "etcdutl").symlink_to(self.etcd_bin / "etcdutl")
        write_crictl(directory, script)
        (directory / "sleep").symlink_to("/usr/bin/sleep")
        return directory

    def objects(self) -> dict[str, dict]:
        listed = self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        return {item["Key"]: item for item in listed}

    def body(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def sandbox(self) -> Path:
        return self.nodes.fleet.sandbox(self.on)

    def leftover_snapshots(self) -> list[str]:
        return sorted(path.name for path in (self.sandbox() / "var/lib/etcd").iterdir())


@pytest.fixture
def backups(nodes: Nodes, tmp_path: Path, etcd_bin: Path) -> Iterator[callable]:  # noqa: F811
    started: list[Backups] = []

    def start(size: int = 1) -> Backups:
        started.append(Backups(nodes, tmp_path, etcd_bin, size))
        return started[-1]

    yield start
    for backup in started:
        backup.cluster.etcd.close()


def _restore_and_read(backups: Backups, snapshot: Path) -> dict[str, str]:
    """`etcdutl snapshot restore` onto a new member with its own name and peer URL, start it, read back."""
    client_port, peer_port = free_ports(2)
    name = "restored-member"
    peer_url, client_url = f"https://{HOST}:{peer_port}", f"https://{HOST}:{client_port}"
    data_dir = backups.tmp_path / "restored"
    restore = subprocess.run(
        [
            str(backups.etcd_bin / "etcdutl"), "snapshot", "restore", str(snapshot), f"--name={name}",
            f"--initial-cluster={name}={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            "--initial-cluster-token=kcluster-restored", f"--data-dir={data_dir}",
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert restore.returncode == 0, restore.stderr
    restored = EtcdCluster(backups.tmp_path / "restored-run", backups.cluster.etcd.pki)
    restored.workdir.mkdir()
    restored.etcd_bin = str(backups.etcd_bin / "etcd")
    restored.etcdctl_bin = str(backups.etcd_bin / "etcdctl")
    pki = restored.pki
    log = (restored.workdir / "etcd.log").open("w")
    process = subprocess.Popen(
        [
            restored.etcd_bin, f"--name={name}", f"--data-dir={data_dir}",
            f"--listen-client-urls={client_url}", f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--cert-file={pki['server.crt']}", f"--key-file={pki['server.key']}",
            f"--trusted-ca-file={pki['ca.crt']}", "--client-cert-auth",
            f"--peer-cert-file={pki['server.crt']}", f"--peer-key-file={pki['server.key']}",
            f"--peer-trusted-ca-file={pki['ca.crt']}", "--peer-client-cert-auth",
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()
    try:
        for _ in range(150):
            got = restored.etcdctl("get", "--prefix", "/registry/configmaps/default/", "-w", "json",
                                   endpoints=[client_url])  # fmt: skip
            if got.returncode == 0:
                break
            subprocess.run(["sleep", "0.1"], check=True)
        assert got.returncode == 0, got.stderr + (restored.workdir / "etcd.log").read_text()[-2000:]
        members = json.loads(restored.etcdctl("member", "list", "-w", "json", endpoints=[client_url]).stdout)
        assert [(m["name"], m["peerURLs"]) for m in members["members"]] == [(name, [peer_url])]
        import base64

        return {
            base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"]).decode()
            for kv in json.loads(got.stdout).get("kvs", [])
        }
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_backup_is_a_checked_snapshot_with_the_pki_under_the_cluster_key(backups) -> None:
    # GIVEN a three-member etcd cluster with keys written
    backup = backups(3)
    backup.put_keys()

    # WHEN a control plane takes a backup
    run = backup.run()

    # THEN one result line reports the snapshot etcd took, and the three objects are in the bucket
    assert run.exit_code == 0, run.result.stderr
    prefix = f"frequent/{BACKUP_ID}/"
    output = run.output
    assert (output["ok"], output["changed"], output["bucket"], output["key"]) == (
        True,
        True,
        backup.bucket,
        prefix,
    )
    assert output["total_keys"] >= len(KEYS) and output["revision"] >= len(KEYS) + 1
    assert isinstance(output["hash"], int)
    assert sorted(backup.objects()) == [prefix + name for name in ("etcd.db", "manifest.json", "pki.tar")]
    snapshot = backup.body(prefix + "etcd.db")
    assert (len(snapshot), hashlib.sha256(snapshot).hexdigest()) == (output["size"], output["sha256"])
    for key in backup.objects():
        head = backup.s3.head_object(Bucket=backup.bucket, Key=key)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", backup.nodes.kms_key_arn)
    # the PKI, byte for byte, and nothing else of the node
    with tarfile.open(fileobj=io.BytesIO(backup.body(prefix + "pki.tar"))) as archive:
        members = {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}
    pki_dir = backup.sandbox() / "etc/kubernetes/pki"
    assert members == {name: (pki_dir / name).read_bytes() for name in PKI_FILES}
    manifest = json.loads(backup.body(prefix + "manifest.json"))
    assert manifest["snapshot"] == {
        "key": prefix + "etcd.db",
        "size": output["size"],
        "sha256": output["sha256"],
    }
    assert manifest["etcd"]["revision"] == output["revision"] and manifest["pki"]["files"] == PKI_FILES
    assert (manifest["instance_id"], manifest["tier"], manifest["backup_id"]) == (
        backup.on,
        "frequent",
        BACKUP_ID,
    )
    # no PKI byte reached the command's output, and the snapshot is gone from the node
    for secret in ("ca.key", "sa.key", "front-proxy-ca.key", "etcd/ca.key"):
        assert (pki_dir / secret).read_text() not in run.result.stdout + run.result.stderr
    assert backup.leftover_snapshots() == []

    # AND the uploaded snapshot restores onto a new member with every key written before it
    restored_file = backup.tmp_path / "downloaded.db"
    restored_file.write_bytes(snapshot)
    assert _restore_and_read(backup, restored_file) == KEYS


def test_the_same_backup_id_again_reports_the_backup_that_is_there(backups) -> None:
    backup = backups()
    backup.put_keys()
    first = backup.run(Tier="daily")
    assert first.exit_code == 0, first.result.stderr
    backup.cluster.etcd.etcdctl("put", "/registry/later", "x")

    again = backup.run(Tier="daily")

    assert again.exit_code == 0, again.result.stderr
    assert again.output["changed"] is False
    fields = ("bucket", "key", "size", "revision", "hash", "total_keys", "sha256")
    assert {f: again.output[f] for f in fields} == {f: first.output[f] for f in fields}
    versions = backup.s3.list_object_versions(Bucket=backup.bucket)["Versions"]
    assert len(versions) == 3 and all(v["Key"].startswith(f"daily/{BACKUP_ID}/") for v in versions)


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_snapshot_is_refused_and_nothing_is_uploaded(backups, damage: str) -> None:
    backup = backups()
    backup.put_keys()

    run = backup.run(path_first=backup.damaging_bin(damage))

    assert run.exit_code != 0
    assert (run.output["ok"], run.output["error"]) == (False, "snapshot-invalid"), run.result.stderr
    assert REFUSED_BY[damage] in run.output["message"]
    assert backup.objects() == {}
    assert backup.leftover_snapshots() == []


def test_no_snapshot_from_an_unhealthy_member(backups) -> None:
    backup = backups()
    backup.cluster.etcd.stop(backup.cluster.names[backup.on])

    run = backup.run()

    assert (run.exit_code, run.output["error"]) == (1, "etcd-unhealthy")
    assert backup.objects() == {}


def test_not_on_a_node_without_the_cluster_pki(backups) -> None:
    backup = backups()
    (backup.sandbox() / "etc/kubernetes/pki/sa.key").unlink()

    run = backup.run()

    assert (run.exit_code, run.output["error"]) == (3, "not-a-control-plane")
    assert backup.objects() == {}


def test_parameters_are_checked_before_anything_runs(backups) -> None:
    backup = backups()
    for overrides in ({"Tier": "hourly"}, {"BackupId": "2026-01-01"}, {"BackupId": "../x"}):
        run = backup.run(**overrides)
        assert (run.exit_code, run.output["error"]) == (2, "invalid-parameter"), overrides
    assert backup.objects() == {}
    assert os.listdir(backup.sandbox() / "var/lib/etcd") == []
