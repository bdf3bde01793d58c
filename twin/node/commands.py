"""The commands an instance offers: what the AMI (Ubuntu 24.04 server) carries plus what the user data
(terraform/user_data/provision.sh.tftpl) installs. It is the one list a twin sandbox's PATH is built
from, so a node script that calls anything else fails in the twin as it would on the instance
("command not found", 127). tests/scripts/test_node_commands.py checks PROVISIONED against what the
provisioning script installs, package by package.

How each offered command runs in a sandbox:
* the twin's fake, when twin/node/bin has one (kubeadm, kubectl, crictl, systemctl, aws, cloud-init,
  sleep): it talks to the twin's model and AWS;
* the host's own binary, for the text and file tools in HOST_RUNNABLE (they only read and write files
  and pipes, which the sandbox's KCLUSTER_ROOT paths keep inside the sandbox);
* otherwise a stub that fails loudly (exit 64): the instance has the command, the twin does not model
  it (a package manager, the kernel's tools, the container runtime). The node documents call none.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# Commands of the Ubuntu 24.04 server image (ubuntu-server-minimal's coreutils, grep, sed, ... and
# cloud-init, systemd, snapd, apt, kmod, procps, openssl) that kcluster's scripts may use.
AMI_COMMANDS = frozenset(
    {
        # shells and coreutils
        "bash", "sh", "basename", "cat", "chmod", "chown", "cp", "cut", "date", "dirname", "echo", "env",
        "false", "head", "id", "install", "ln", "ls", "mkdir", "mktemp", "mv", "paste", "printf", "readlink",
        "rm", "rmdir", "seq", "sha256sum", "sleep", "sort", "stat", "tail", "tee", "test", "timeout",
        "touch", "tr", "true", "uname", "uniq", "wc", "xargs", "comm", "tac", "base64", "od",
        # text tools, archives, locks
        "awk", "grep", "sed", "tar", "gzip", "flock", "openssl", "hostname",
        # the system: cloud-init, systemd, snapd, apt/dpkg, kmod, procps, util-linux
        "cloud-init", "systemctl", "journalctl", "snap", "apt-get", "apt-mark", "apt-cache", "dpkg",
        "dpkg-query", "modprobe", "sysctl", "swapoff", "ip",
    }
)  # fmt: skip

# What provisioning installs, by package (apt, snap or release archive), and the commands each brings.
PROVISIONED = {
    "apt-transport-https": (),
    "ca-certificates": ("update-ca-certificates",),
    "curl": ("curl",),
    "gpg": ("gpg",),
    "jq": ("jq",),
    "runc": ("runc",),
    "kubelet": ("kubelet",),
    "kubeadm": ("kubeadm",),
    "kubectl": ("kubectl",),
    "cri-tools": ("crictl",),  # kubeadm's dependency, installed and held explicitly
    "aws-cli": ("aws",),  # snap
    "containerd": ("containerd", "containerd-shim-runc-v2", "ctr"),  # the upstream release archive
}

# Offered commands that are safe to run from the host inside a sandbox (no package, kernel or service
# changes; paths come from the scripts, prefixed with the sandbox's KCLUSTER_ROOT).
HOST_RUNNABLE = frozenset(
    {
        "bash", "sh", "basename", "cat", "chmod", "cp", "cut", "date", "dirname", "echo", "env", "false",
        "head", "id", "install", "ln", "ls", "mkdir", "mktemp", "mv", "paste", "printf", "readlink", "rm",
        "rmdir", "seq", "sha256sum", "sort", "stat", "tail", "tee", "test", "timeout", "touch", "tr",
        "true", "uname", "uniq", "wc", "xargs", "comm", "tac", "base64", "od", "awk", "grep", "sed", "tar",
        "gzip", "flock", "openssl", "jq",
    }
)  # fmt: skip

_HOST_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
_STUB = """#!/bin/sh
# {name}: on the instance (see twin/node/commands.py), not modelled by the twin.
echo "{name} (kcluster twin): offered on the instance but not modelled in the twin: {name} $*" >&2
exit 64
"""


def offered_commands() -> frozenset[str]:
    """Every command an instance offers: the AMI's and provisioning's."""
    return AMI_COMMANDS | {command for commands in PROVISIONED.values() for command in commands}


def build_node_bin(directory: Path, fake_bin: Path) -> Path:
    """A directory holding exactly the offered commands (fakes, host tools or stubs), for a sandbox PATH."""
    directory.mkdir(parents=True, exist_ok=True)
    # The fakes' own support files (not commands: not executable), which the fakes find beside themselves.
    for support in sorted(fake_bin.iterdir()):
        if support.is_file() and not os.access(support, os.X_OK) and not (directory / support.name).exists():
            (directory / support.name).symlink_to(support)
    for name in sorted(offered_commands()):
        link = directory / name
        if link.exists() or link.is_symlink():
            continue
        fake = fake_bin / name
        host = shutil.which(name, path=_HOST_PATH) if name in HOST_RUNNABLE else None
        if fake.is_file() and os.access(fake, os.X_OK):
            link.symlink_to(fake)
        elif host is not None:
            link.symlink_to(host)
        else:
            link.write_text(_STUB.format(name=name))
            link.chmod(0o755)
    return directory
