"""A real etcd cluster on 127.0.0.1 for the membership tests: the etcd kubeadm deploys at kubernetes_version
(built by tools/kubernetes/build.sh; tests.kubernetes.cluster.binaries() finds it), TLS on client and peer URLs (kubeadm's layout: a CA, a server/peer certificate, a healthcheck client certificate), each
member a process with its own ports and data directory."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOST = "127.0.0.1"


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _certificate(
    subject: str, key, issuer_key, issuer: x509.Name | None, *, ca: bool, usages: list
) -> x509.Certificate:
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def write_pki(directory: Path) -> dict[str, Path]:
    """kubeadm's etcd PKI file names: ca.crt, server.crt/key (also used for peers), healthcheck-client."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("etcd-ca", ca_key, ca_key, None, ca=True, usages=[])
    files = {"ca.crt": ca.public_bytes(serialization.Encoding.PEM)}
    both = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    for stem, usages in (("server", both), ("healthcheck-client", [ExtendedKeyUsageOID.CLIENT_AUTH])):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(stem, key, ca_key, ca.subject, ca=False, usages=usages)
        files[f"{stem}.crt"] = cert.public_bytes(serialization.Encoding.PEM)
        files[f"{stem}.key"] = _pem_key(key)
    paths = {}
    for name, content in files.items():
        (directory / name).write_bytes(content)
        (directory / name).chmod(0o600)
        paths[name] = directory / name
    return paths


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    process: subprocess.Popen | None = None

    @property
    def client_url(self) -> str:
        return f"https://{HOST}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"https://{HOST}:{self.peer_port}"


@dataclass
class EtcdCluster:
    workdir: Path
    pki: dict[str, Path]
    members: dict[str, Member] = field(default_factory=dict)
    # The etcd kubeadm deploys, built from source (Debian's etcd 3.4 is older than any kubeadm deploys).
    etcd_bin: str = ""
    etcdctl_bin: str = ""

    @classmethod
    def start(cls, workdir: Path, names: list[str], *, etcd: str, etcdctl: str) -> EtcdCluster:
        if not (os.access(etcd, os.X_OK) and os.access(etcdctl, os.X_OK)):
            raise RuntimeError(f"{etcd} or {etcdctl} is missing: build them with `make kubernetes`")
        cluster = cls(workdir, write_pki(workdir / "pki"), etcd_bin=etcd, etcdctl_bin=etcdctl)
        ports = free_ports(2 * len(names))
        for index, name in enumerate(names):
            cluster.members[name] = Member(name, ports[2 * index], ports[2 * index + 1], workdir / name)
        initial = ",".join(f"{m.name}={m.peer_url}" for m in cluster.members.values())
        for member in cluster.members.values():
            cluster._launch(member, initial)
        cluster.wait_healthy(list(cluster.members))
        return cluster

    def _launch(self, member: Member, initial_cluster: str, *, initial_cluster_state: str = "new") -> None:
        pki = self.pki
        tls = [
            f"--cert-file={pki['server.crt']}", f"--key-file={pki['server.key']}",
            f"--trusted-ca-file={pki['ca.crt']}", "--client-cert-auth",
            f"--peer-cert-file={pki['server.crt']}", f"--peer-key-file={pki['server.key']}",
            f"--peer-trusted-ca-file={pki['ca.crt']}", "--peer-client-cert-auth",
        ]  # fmt: skip
        log = (self.workdir / f"{member.name}.log").open("w")
        member.process = subprocess.Popen(
            [
                self.etcd_bin, f"--name={member.name}", f"--data-dir={member.data_dir}",
                f"--listen-client-urls={member.client_url}", f"--advertise-client-urls={member.client_url}",
                f"--listen-peer-urls={member.peer_url}", f"--initial-advertise-peer-urls={member.peer_url}",
                f"--initial-cluster={initial_cluster}", f"--initial-cluster-state={initial_cluster_state}",
                "--initial-cluster-token=kcluster-test", "--heartbeat-interval=50", "--election-timeout=500",
                *tls,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()

    def env(self, endpoints: list[str] | None = None) -> dict[str, str]:
        return {
            "ETCDCTL_API": "3",
            "ETCDCTL_ENDPOINTS": ",".join(endpoints or [m.client_url for m in self.running()]),
            "ETCDCTL_CACERT": str(self.pki["ca.crt"]),
            "ETCDCTL_CERT": str(self.pki["healthcheck-client.crt"]),
            "ETCDCTL_KEY": str(self.pki["healthcheck-client.key"]),
            "ETCDCTL_DIAL_TIMEOUT": "1s",
            "ETCDCTL_COMMAND_TIMEOUT": "2s",
            "PATH": "/usr/bin:/bin",
        }

    def etcdctl(self, *args: str, endpoints: list[str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.etcdctl_bin, *args],
            env=self.env(endpoints),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def running(self) -> list[Member]:
        return [m for m in self.members.values() if m.process and m.process.poll() is None]

    def member_names(self) -> list[str]:
        """Names from the cluster's own member list (an unstarted member has the empty name)."""
        listed = self.etcdctl("member", "list", "-w", "json")
        assert listed.returncode == 0, listed.stderr
        return sorted(member.get("name", "") for member in json.loads(listed.stdout)["members"])

    def leader(self) -> str:
        """The leader's name, from a running member's status (ids compared as Python ints: exact)."""
        status = self.etcdctl("endpoint", "status", "--cluster", "-w", "json")
        statuses = json.loads(status.stdout)
        leader_id = statuses[0]["Status"]["leader"]
        listed = json.loads(self.etcdctl("member", "list", "-w", "json").stdout)["members"]
        return next(member["name"] for member in listed if member["ID"] == leader_id)

    def wait_healthy(self, names: list[str], limit: float = 15.0) -> None:
        deadline = time.monotonic() + limit
        endpoints = [self.members[name].client_url for name in names]
        while True:
            health = self.etcdctl("endpoint", "health", "-w", "json", endpoints=endpoints)
            if health.returncode == 0:
                return
            if time.monotonic() > deadline:
                logs = {n: (self.workdir / f"{n}.log").read_text()[-2000:] for n in names}
                raise RuntimeError(f"etcd did not become healthy: {health.stderr}\n{logs}")
            time.sleep(0.1)

    def stop(self, name: str) -> None:
        process = self.members[name].process
        if process and process.poll() is None:
            process.terminate()
            process.wait(timeout=10)

    def close(self) -> None:
        for name in self.members:
            self.stop(name)
        shutil.rmtree(self.workdir, ignore_errors=True)
