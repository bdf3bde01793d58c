"""A small real CA per cluster epoch, so the node scripts' openssl hash pipeline really runs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class ClusterCa:
    cert_pem: str
    # kubeadm's --discovery-token-ca-cert-hash: sha256 of the DER SubjectPublicKeyInfo.
    cert_hash: str


def make_ca(now: float) -> ClusterCa:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    issued = datetime.fromtimestamp(now, tz=UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(issued - timedelta(minutes=5))
        .not_valid_after(issued + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return ClusterCa(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        cert_hash="sha256:" + hashlib.sha256(spki).hexdigest(),
    )
