"""The versions kcluster installs, read from the one place they are set: the module's defaults in
terraform/variables.tf (kcluster.config.ClusterConfig repeats them for the functions; a test keeps the two
equal). The twin's model and the tests take them from here, so a bump is a one-line change."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

VARIABLES_TF = Path(__file__).resolve().parents[1] / "terraform/variables.tf"


@cache
def _default(variable: str) -> str:
    text = VARIABLES_TF.read_text()
    match = re.search(rf'variable "{variable}" \{{.*?\n  default += "([^"]+)"', text, re.S)
    if match is None:
        raise LookupError(f"no string default for {variable} in {VARIABLES_TF}")
    return match.group(1)


def kubernetes_version() -> str:
    """MAJOR.MINOR.PATCH, e.g. 1.37.2."""
    return _default("kubernetes_version")


def containerd_version() -> str:
    """MAJOR.MINOR.PATCH of the containerd release the nodes install, e.g. 2.4.2."""
    return _default("containerd_version")


def cni_version() -> str:
    """The Calico release tag, e.g. v3.33.0."""
    return _default("cni_version")


def cni_manifest_url() -> str:
    return f"https://raw.githubusercontent.com/projectcalico/calico/{cni_version()}/manifests/calico.yaml"
