"""A `crictl` stand-in for tests that run the node scripts against a REAL etcd (a test helper, never in
the product or the twin's sandboxes).

The scripts reach etcd as on a kubeadm node: `crictl ps` finds the etcd static pod's container, `crictl
exec <id> etcdctl ...` runs the etcdctl of the etcd image inside it. Here there is no container runtime,
so the stand-in names one etcd container and runs the real etcdctl (or etcdutl, beside it) for `exec`, the way the container
would: with an empty environment (CRI exec passes none, so any ETCDCTL_* of the script's would be a bug
that the real etcdctl then reports) and with kubeadm's etcd PKI mount (/etc/kubernetes/pki/etcd, the
same path in the container as on the host) and its data mount (/var/lib/etcd) resolved in the instance's
sandbox ($KCLUSTER_ROOT).
"""

from __future__ import annotations

from pathlib import Path

STANDIN_CONTAINER_ID = "e7cd0000standin0etcd0container0id0000000000000000000000000000001"

_SCRIPT = """#!/usr/bin/env bash
# crictl stand-in (tests/scripts/crictl_standin.py): ps names one etcd container; exec runs the real etcdctl.
set -euo pipefail
container={container}
case "${{1:-}}" in
  ps)
    printf '%s\\n' "$container"
    ;;
  exec)
    if [[ $# -lt 3 || "$2" != "$container" || ! "$3" =~ ^etcd(ctl|utl)$ ]]; then
      echo "crictl stand-in: only \\`exec $container etcdctl|etcdutl ...\\` is offered, not: $*" >&2
      exit 64
    fi
    tool="{bin_dir}/$3"
    shift 3
    args=()
    for arg in "$@"; do
      case "$arg" in
        --cacert=/etc/kubernetes/pki/etcd/* | --cert=/etc/kubernetes/pki/etcd/* | --key=/etc/kubernetes/pki/etcd/*)
          arg="${{arg%%=*}}=${{KCLUSTER_ROOT:?}}${{arg#*=}}"
          ;;
        /var/lib/etcd/*)
          arg="${{KCLUSTER_ROOT:?}}$arg"
          ;;
      esac
      args+=("$arg")
    done
    exec /usr/bin/env -i "$tool" "${{args[@]}}"
    ;;
  *)
    echo "crictl stand-in: unsupported: crictl $*" >&2
    exit 64
    ;;
esac
"""


def write_crictl(directory: Path, etcdctl: Path) -> Path:
    """Write the stand-in as `directory/crictl` (executable), running `etcdctl`; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "crictl"
    path.write_text(_SCRIPT.format(container=STANDIN_CONTAINER_ID, bin_dir=etcdctl.parent))
    path.chmod(0o755)
    return path
