"""The commands an instance offers: what the AMI (Ubuntu 24.04 server) carries plus what the user data
(terraform/user_data/provision.sh.tftpl) installs. It is the one list a twin sandbox's PATH is built
from, so a node script that calls anything else fails in the twin as it would on the instance
("command not found", 127).

Both halves are lists of packages and the commands each ships, never of bare commands:
* AMI_PACKAGES: packages of Ubuntu 24.04's server cloud image (the ubuntu-minimal and
  ubuntu-server-minimal seeds, plus cloud-init and snapd, which every Ubuntu cloud image carries; see the
  image's published .manifest), only those whose commands kcluster's scripts use;
* PROVISIONED: read from the provisioning script itself (installed_packages: its apt-get and snap
  installs and the containerd release archive), each package's commands from PACKAGE_COMMANDS. A package
  provisioning installs that PACKAGE_COMMANDS does not know is an error, not a silent gap.
tests/scripts/test_node_commands.py checks the package of every command against the host's dpkg
database where the host has that package. Packages apt pulls in as dependencies (kubelet's conntrack,
socat, iptables, ...) are not offered: the twin offers fewer commands than the instance, never more.

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
import re
import shutil
from pathlib import Path

PROVISION_SCRIPT = Path(__file__).resolve().parents[2] / "terraform/user_data/provision.sh.tftpl"

# Packages of the Ubuntu 24.04 server image and the commands of theirs that kcluster's scripts may use.
AMI_PACKAGES: dict[str, tuple[str, ...]] = {
    "bash": ("bash",),
    "dash": ("sh",),
    "coreutils": (
        "basename", "cat", "chmod", "chown", "cp", "cut", "date", "dirname", "echo", "env", "false",
        "head", "id", "install", "ln", "ls", "mkdir", "mktemp", "mv", "paste", "printf", "readlink", "rm",
        "rmdir", "seq", "sha256sum", "sleep", "sort", "stat", "tail", "tee", "test", "timeout", "touch",
        "tr", "true", "uname", "uniq", "wc", "comm", "tac", "base64", "od",
    ),
    "findutils": ("xargs",),
    "mawk": ("awk",),  # Ubuntu's awk (the alternative's only provider on the image)
    "grep": ("grep",),
    "sed": ("sed",),
    "tar": ("tar",),
    "gzip": ("gzip",),
    "util-linux": ("flock",),
    "mount": ("swapoff",),
    "openssl": ("openssl",),
    "hostname": ("hostname",),
    "cloud-init": ("cloud-init",),
    "systemd": ("systemctl", "journalctl"),
    "snapd": ("snap",),
    "apt": ("apt-get", "apt-mark", "apt-cache"),
    "dpkg": ("dpkg", "dpkg-query"),
    "kmod": ("modprobe",),
    "procps": ("sysctl",),
    "iproute2": ("ip",),
}  # fmt: skip
AMI_COMMANDS = frozenset(command for commands in AMI_PACKAGES.values() for command in commands)

# The commands each package provisioning may install ships (apt and snap packages, the containerd
# release archive's bin/).
PACKAGE_COMMANDS: dict[str, tuple[str, ...]] = {
    "apt-transport-https": (),  # a transitional package on 24.04 (apt speaks https itself)
    "ca-certificates": ("update-ca-certificates",),
    "curl": ("curl",),
    "gpg": ("gpg",),
    "jq": ("jq",),
    "runc": ("runc",),
    "kubelet": ("kubelet",),
    "kubeadm": ("kubeadm",),
    "kubectl": ("kubectl",),
    "cri-tools": ("crictl",),
    "aws-cli": ("aws",),  # Canonical's snap
    "containerd": ("containerd", "containerd-shim-runc-v2", "ctr"),
}

_APT_INSTALL = re.compile(r'"\$\$?\{APT_GET\[@\]\}" install (?P<words>.*)')
_SNAP_INSTALL = re.compile(r"\bsnap install (?P<name>[a-z0-9-]+)")
_CONTAINERD_ARCHIVE = "containerd/containerd/releases/download/"


def installed_packages(script: str) -> set[str]:
    """The packages a provisioning script installs: `"${APT_GET[@]}" install` (pinned or not, in the
    template's doubled-dollar form or rendered), `snap install`, and containerd's release archive."""
    text = re.sub(r"\\\n\s*", " ", script)
    packages: set[str] = set()
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        apt = _APT_INSTALL.search(line)
        if apt:
            words = [word.strip('"') for word in apt.group("words").split() if not word.startswith("-")]
            packages |= {word.split("=", 1)[0] for word in words}
        snap = _SNAP_INSTALL.search(line)
        if snap:
            packages.add(snap.group("name"))
    if _CONTAINERD_ARCHIVE in text:
        packages.add("containerd")
    return packages


def provisioned_commands(script: str) -> dict[str, tuple[str, ...]]:
    """The commands each package the script installs ships; a package PACKAGE_COMMANDS does not know is
    an error (say which commands it brings before the twin offers it)."""
    packages = installed_packages(script)
    unknown = sorted(packages - set(PACKAGE_COMMANDS))
    if unknown:
        raise ValueError(f"provisioning installs {', '.join(unknown)}: list its commands in PACKAGE_COMMANDS")
    return {package: PACKAGE_COMMANDS[package] for package in sorted(packages)}


PROVISIONED = provisioned_commands(PROVISION_SCRIPT.read_text())

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
