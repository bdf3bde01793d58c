"""Provisioning on a real Debian root: the user data (terraform/user_data/provision.sh.tftpl) run as root
in a throwaway `debootstrap` root, with real apt, dpkg, curl, gpg, sed, grep and the Debian mirror.

What an instance has and a chroot cannot, and the Kubernetes packages, are stand-ins:
* the kernel and the init system (modprobe, sysctl, swapoff, systemctl), snap (the SSM Agent's version,
  aws-cli), cloud-init and the AWS CLI: scripts in /usr/local/sbin that log their calls;
* pkgs.k8s.io: a local apt repository (file:///kc-repo/), signed with a key made for the run and
  fetched by the script's own curl | gpg --dearmor, holding stand-in kubelet, kubectl, cri-tools and a
  kubeadm package that carries the REAL kubeadm of kubernetes_version (its `config images list` names
  the pause image); the script's two upstream URLs are the only text changed;
* containerd's release archive: a stand-in whose `containerd config default` prints containerd 2.x's
  default CRI sections, checked by the script's own sha256sum --check.

Run by `make provision-check` (marker `debootstrap`; the root is built once per machine, ~1-2 min).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kubernetes.cluster import binaries
from twin import versions

pytestmark = pytest.mark.debootstrap

PROVISION = Path(__file__).resolve().parents[2] / "terraform/user_data/provision.sh.tftpl"
CACHE = Path.home() / ".cache/kcluster/debootstrap"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
KUBERNETES_VERSION = versions.kubernetes_version()
CONTAINERD_VERSION = versions.containerd_version()
HELD = {"kubelet", "kubeadm", "kubectl", "cri-tools", "runc", "containerd"}

STANDINS = {
    "modprobe": "",
    "sysctl": "",
    "swapoff": "",
    "systemctl": "",
    # Ubuntu's SSM Agent is a snap; `snap install aws-cli` gives the AWS CLI (here: a logging stand-in)
    "snap": '[ "$1" = list ] && printf "Name Version Rev\\namazon-ssm-agent 3.3.2746.0 1\\n"\n'
    '[ "$1" = install ] && cp /usr/local/lib/kc-aws /usr/local/bin/aws\nexit 0',
    "cloud-init": 'case "$2" in v1.instance_id) echo i-0123456789abcdef0 ;; v1.availability_zone) echo us-east-1a ;;'
    " v1.region) echo us-east-1 ;; *) exit 1 ;; esac",
}
AWS_STANDIN = '#!/bin/sh\necho "aws $*" >>/kc-calls.log\necho \'{"FailedEntryCount": 0}\'\n'


def _standin(name: str, body: str) -> str:
    return f'#!/bin/sh\necho "{name} $*" >>/kc-calls.log\n{body}\n'


CONTAINERD_DEFAULT_CONFIG = """version = 3

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'

    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = 'registry.k8s.io/pause:3.10'

  [plugins.'io.containerd.cri.v1.runtime']
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'

      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes]
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
          runtime_type = 'io.containerd.runc.v2'
          sandboxer = 'podsandbox'

          [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
            SystemdCgroup = false
"""


def render(**values: str) -> str:
    """templatefile() for provision.sh.tftpl: ${name} is a value, $${ a literal ${."""
    text = PROVISION.read_text().replace("$${", "\0")
    text = re.sub(r"\$\{([a-z_]+)\}", lambda match: values[match.group(1)], text)
    assert "${" not in text.replace("\0", ""), "an unrendered template variable"
    return text.replace("\0", "${")


def _run(*args: str | Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(arg) for arg in args], check=True, capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="session")
def debian_root_archive() -> Path:
    """A minbase Debian root, built once per machine and kept as a tarball."""
    archive = CACHE / f"{SUITE}-minbase.tar"
    if not archive.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        build = CACHE / "build"
        shutil.rmtree(build, ignore_errors=True)
        _run("debootstrap", "--variant=minbase", SUITE, build, MIRROR)
        _run("tar", "-C", build, "-cf", f"{archive}.part", ".")
        os.replace(f"{archive}.part", archive)
        shutil.rmtree(build, ignore_errors=True)
    return archive


def _deb(workdir: Path, package: str, files: dict[str, bytes], depends: str = "") -> None:
    root = workdir / f"{package}-pkg"
    (root / "DEBIAN").mkdir(parents=True)
    version = f"{KUBERNETES_VERSION}-1.1" if package in ("kubelet", "kubeadm", "kubectl") else "1.37.0-1.1"
    control = f"Package: {package}\nVersion: {version}\nArchitecture: all\nMaintainer: kcluster tests\n"
    control += f"Depends: {depends}\n" if depends else ""
    (root / "DEBIAN/control").write_text(control + f"Description: kcluster stand-in for {package}\n")
    for path, content in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(0o755)
    _run("dpkg-deb", "-Znone", "--root-owner-group", "-b", root, workdir / f"{package}.deb")


def _kubernetes_repository(repo: Path, gnupg: Path) -> None:
    """pkgs.k8s.io's shape: a flat repository with a signed InRelease and its key as Release.key."""
    repo.mkdir(parents=True)
    script = b"#!/bin/sh\necho stand-in\n"
    _deb(repo, "kubelet", {"/usr/bin/kubelet": script})
    _deb(repo, "kubectl", {"/usr/bin/kubectl": script})
    _deb(repo, "cri-tools", {"/usr/bin/crictl": script})
    _deb(repo, "kubeadm", {"/usr/bin/kubeadm": (binaries() / "kubeadm").read_bytes()}, depends="cri-tools")
    packages = _run("dpkg-scanpackages", "--multiversion", ".", cwd=repo).stdout
    (repo / "Packages").write_text(packages)
    digest = hashlib.sha256(packages.encode()).hexdigest()
    (repo / "Release").write_text(
        "Origin: kcluster-test\nLabel: kcluster-test\nArchitectures: all amd64 arm64\n"
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S UTC', time.gmtime())}\n"
        f"SHA256:\n {digest} {len(packages.encode())} Packages\n"
    )
    gnupg.mkdir(mode=0o700)
    gpg = ("gpg", "--homedir", gnupg, "--batch", "--passphrase", "")
    _run(*gpg, "--quick-gen-key", "kcluster test repository", "ed25519", "sign", "never")
    _run(*gpg, "--armor", "--export", "-o", repo / "Release.key")
    _run(*gpg, "--clearsign", "-o", repo / "InRelease", repo / "Release")
    _run("gpgconf", "--homedir", gnupg, "--kill", "gpg-agent")


def _containerd_archive(standins: Path, architecture: str) -> None:
    name = f"containerd-{CONTAINERD_VERSION}-linux-{architecture}.tar.gz"
    bin_dir = standins / "containerd/bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "containerd").write_text(
        '#!/bin/sh\n[ "$1 $2" = "config default" ] || exit 1\ncat <<\'EOF\'\n'
        + CONTAINERD_DEFAULT_CONFIG
        + "EOF\n"
    )
    for other in ("ctr", "containerd-shim-runc-v2"):
        (bin_dir / other).write_text("#!/bin/sh\nexit 0\n")
    for path in bin_dir.iterdir():
        path.chmod(0o755)
    with tarfile.open(standins / name, "w:gz") as archive:
        archive.add(bin_dir, arcname="bin")
    digest = hashlib.sha256((standins / name).read_bytes()).hexdigest()
    (standins / f"{name}.sha256sum").write_text(f"{digest}  {name}\n")


@pytest.fixture
def node_root(debian_root_archive: Path, tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "root"
    root.mkdir()
    _run("tar", "-C", root, "-xf", debian_root_archive)
    architecture = _run("chroot", root, "dpkg", "--print-architecture").stdout.strip()
    _kubernetes_repository(root / "kc-repo", tmp_path / "gnupg")
    _containerd_archive(root / "kc-standins", architecture)
    for name, body in STANDINS.items():
        path = root / "usr/local/sbin" / name
        path.write_text(_standin(name, body))
        path.chmod(0o755)
    (root / "usr/local/lib/kc-aws").write_text(AWS_STANDIN)
    (root / "usr/local/lib/kc-aws").chmod(0o755)
    (root / "etc/fstab").write_text("/swap.img none swap sw 0 0\n")
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    script = render(
        cluster_name="demo",
        role="control-plane",
        kubernetes_version=KUBERNETES_VERSION,
        kubernetes_minor=KUBERNETES_VERSION.rsplit(".", 1)[0],
        containerd_version=CONTAINERD_VERSION,
        provisioned_marker="/var/lib/kcluster/provisioned",
        event_source="kcluster.node",
        event_detail_type="Node Provisioned",
    )
    # the only text changed: the two upstream URLs, pointed at the stand-ins
    script = script.replace("https://pkgs.k8s.io/core:/stable:/v${KUBERNETES_MINOR}/deb/", "file:///kc-repo/")
    script = script.replace("https://pkgs.k8s.io/core:/stable:/v%s/deb/ /", "file:///kc-repo/%.0s /")
    script = script.replace(
        "https://github.com/containerd/containerd/releases/download/v${CONTAINERD_VERSION}",
        "file:///kc-standins",
    )
    assert "pkgs.k8s.io" not in script and "github.com" not in script
    (root / "provision.sh").write_text(script)
    yield root


def _provision(root: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        **env,
    }
    return subprocess.run(
        ["chroot", str(root), "/bin/bash", "/provision.sh"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _pause_image() -> str:
    listed = _run(
        binaries() / "kubeadm", "config", "images", "list", "--kubernetes-version", f"v{KUBERNETES_VERSION}"
    )
    (pause,) = [line for line in listed.stdout.splitlines() if "/pause:" in line]
    return pause


def test_provisioning_prepares_the_host_as_kubeadm_needs(node_root: Path) -> None:
    result = _provision(node_root)
    assert result.returncode == 0, result.stderr[-3000:]
    calls = (node_root / "kc-calls.log").read_text().splitlines()

    # kernel modules and sysctls, loaded now and at every boot; swap off now and in fstab
    assert (node_root / "etc/modules-load.d/kcluster.conf").read_text().split() == ["overlay", "br_netfilter"]
    assert {"modprobe overlay", "modprobe br_netfilter", "sysctl --system", "swapoff -a"} <= set(calls)
    sysctls = (node_root / "etc/sysctl.d/90-kcluster.conf").read_text()
    for setting in ("net.bridge.bridge-nf-call-iptables = 1", "net.ipv4.ip_forward = 1"):
        assert setting in sysctls
    assert (node_root / "etc/fstab").read_text().startswith("# kcluster: swap off # /swap.img")

    # packages installed, pinned and held
    held = set(_run("chroot", node_root, "apt-mark", "showhold").stdout.split())
    installed = _run(
        "chroot", node_root, "dpkg-query", "-W", "-f", "${Package} ${Version}\n", "kubeadm", "runc"
    )
    assert f"kubeadm {KUBERNETES_VERSION}-1.1" in installed.stdout
    assert held == HELD

    # containerd: systemd cgroup driver, kubeadm's pause image as the sandbox image; crictl's endpoint
    config = (node_root / "etc/containerd/config.toml").read_text()
    assert "SystemdCgroup = true" in config and "SystemdCgroup = false" not in config
    assert f"sandbox = '{_pause_image()}'" in config
    assert "sandboxer = 'podsandbox'" in config
    assert (
        "runtime-endpoint: unix:///run/containerd/containerd.sock"
        in (node_root / "etc/crictl.yaml").read_text()
    )
    assert (node_root / "usr/local/bin/containerd").exists()

    # done: the marker, then the event
    assert (node_root / "var/lib/kcluster/provisioned").exists()
    assert any(call.startswith("aws events put-events") for call in calls)


def test_provisioning_waits_for_the_apt_lists_lock_first_boot_apt_daily_holds(node_root: Path) -> None:
    # apt-daily's `apt-get update` holds /var/lib/apt/lists/lock (an fcntl lock) when the user data starts
    lock_path = node_root / "var/lib/apt/lists/lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    released = threading.Event()
    with open(lock_path, "a+") as lock:
        fcntl.lockf(lock, fcntl.LOCK_EX)

        def release() -> None:
            time.sleep(8)
            fcntl.lockf(lock, fcntl.LOCK_UN)
            released.set()

        threading.Thread(target=release, daemon=True).start()
        result = _provision(node_root, KCLUSTER_APT_LOCK_RETRY_SECONDS="2")
    assert released.is_set()
    assert result.returncode == 0, result.stderr[-3000:]
    # DPkg::Lock::Timeout did not make `apt-get update` wait: the retry did
    assert "apt lists lock busy" in result.stderr
