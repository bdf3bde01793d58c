"""A `ctr` stand-in for tests that run the restore document against a REAL etcdutl (a test helper, never
in the product or the twin's sandboxes).

On a node before `kubeadm init` the restore document runs etcdutl from kubeadm's etcd image with
containerd's `ctr`: `ctr -n k8s.io images ls -q name==IMAGE`, `images pull IMAGE`, then `run --rm --mount
type=bind,src=S,dst=D,options=rbind:ro|rw ... IMAGE ID etcdutl ...`. Here there is no containerd, so the
stand-in keeps the pulled images in a file, and `run` runs the real etcdutl as the container would: only
after the image was pulled, with an empty environment, and seeing only what was bind-mounted: every
path argument must lie under a mount's dst (a `--data-dir` under a read-write one), a mount's src must be
the node's own path for dst (the sandbox's $KCLUSTER_ROOT + dst), and paths resolve in the sandbox.
"""

from __future__ import annotations

from pathlib import Path

_SCRIPT = r"""#!/usr/bin/env bash
# ctr stand-in (tests/scripts/ctr_standin.py)
set -euo pipefail
pulled="@DIR@/pulled-images"
image="@IMAGE@"
touch "$pulled"
fail() { echo "ctr stand-in: $*" >&2; exit 1; }
[[ "${1:-}" == --namespace && "${2:-}" == k8s.io ]] || fail "only the k8s.io namespace, not: $*"
shift 2
case "${1:-} ${2:-}" in
  "images ls")
    [[ "${3:-}" == -q && "${4:-}" == name==* && $# -eq 4 ]] || fail "unsupported: images ls ${*:3}"
    grep -Fx -- "${4#name==}" "$pulled" || true
    ;;
  "images pull")
    [[ $# -eq 3 && "$3" == "$image" ]] || fail "pull of ${3:-nothing}: this registry only has $image"
    printf '%s\n' "$3" >>"$pulled"
    ;;
  "run --rm")
    shift 2
    declare -A modes=()
    while [[ "${1:-}" == --mount ]]; do
      spec="$2"
      [[ "$spec" =~ ^type=bind,src=([^,]+),dst=([^,]+),options=rbind:(ro|rw)$ ]] || fail "bad mount $spec"
      [[ "${BASH_REMATCH[1]}" == "${KCLUSTER_ROOT:?}${BASH_REMATCH[2]}" ]] || fail "mount src is not the node's ${BASH_REMATCH[2]}"
      modes["${BASH_REMATCH[2]}"]="${BASH_REMATCH[3]}"
      shift 2
    done
    [[ "${1:-}" == "$image" ]] || fail "run of ${1:-nothing}: expected $image"
    grep -Fxq -- "$1" "$pulled" || fail "image $1 not found (not pulled)"
    [[ "${3:-}" == etcdutl ]] || fail "only etcdutl runs here, not ${3:-nothing}"
    shift 3
    mounted() { # PATH MODE: PATH lies under a mount (read-write when MODE is rw)
      local dst
      for dst in "${!modes[@]}"; do
        if [[ "$1" == "$dst" || "$1" == "$dst"/* ]] && [[ "$2" != rw || "${modes[$dst]}" == rw ]]; then
          return 0
        fi
      done
      return 1
    }
    args=()
    for arg in "$@"; do
      case "$arg" in
        --data-dir=/*)
          mounted "${arg#*=}" rw || fail "etcdutl: ${arg#*=} is not mounted read-write in the container"
          arg="--data-dir=${KCLUSTER_ROOT}${arg#*=}"
          ;;
        /*)
          mounted "$arg" ro || fail "etcdutl: open $arg: no such file or directory (not mounted)"
          arg="${KCLUSTER_ROOT}${arg}"
          ;;
      esac
      args+=("$arg")
    done
    exec /usr/bin/env -i "@ETCDUTL@" "${args[@]}"
    ;;
  *)
    fail "unsupported: ctr $*"
    ;;
esac
"""


def write_ctr(directory: Path, etcdutl: Path, image: str) -> Path:
    """Write the stand-in as `directory/ctr` (executable), offering `image` and running `etcdutl`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "ctr"
    script = _SCRIPT.replace("@DIR@", str(directory)).replace("@IMAGE@", image)
    path.write_text(script.replace("@ETCDUTL@", str(etcdutl)))
    path.chmod(0o755)
    return path


def pulled_images(directory: Path) -> list[str]:
    """The images the stand-in pulled, in order."""
    pulled = directory / "pulled-images"
    return pulled.read_text().split() if pulled.exists() else []
