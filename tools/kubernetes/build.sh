#!/usr/bin/env bash
# Builds the real Kubernetes components the tests run (kube-apiserver, kube-controller-manager, kubeadm,
# kubectl) from the Go module k8s.io/kubernetes at one version, and etcd + etcdctl + etcdutl at the version
# that kubeadm release deploys, into a cache outside the repository keyed by version:
#   ${KCLUSTER_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kcluster/kubernetes}/<version>/bin
# A second run with the same version finds the binaries and costs nothing.
#
# usage: tools/kubernetes/build.sh [VERSION]   (default: kubernetes_version's default in terraform/variables.tf)
# Prints the bin directory on stdout. Needs Go (>= the version k8s.io/kubernetes's go.mod names) and the Go
# module proxy. Builds under `nice -n 19` with GOFLAGS=-p=${KCLUSTER_K8S_BUILD_JOBS:-2}.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
version="${1:-$("$here/version.sh")}"
version="${version#v}"
[[ "$version" =~ ^1\.[0-9]+\.[0-9]+$ ]] || { echo "build.sh: bad version '$version'" >&2; exit 2; }
minor="${version#1.}"; minor="${minor%%.*}"

cache_root="${KCLUSTER_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kcluster/kubernetes}"
dest="$cache_root/$version"
bins=(kube-apiserver kube-controller-manager kubeadm kubectl etcd etcdctl etcdutl)

complete() {
  local b
  [[ -f "$dest/bin/.complete" ]] || return 1
  for b in "${bins[@]}"; do [[ -x "$dest/bin/$b" ]] || return 1; done
}
if complete; then echo "$dest/bin"; exit 0; fi

GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
[[ -x "$GO" ]] || { echo "build.sh: Go not found (set GO=...)" >&2; exit 1; }

mkdir -p "$cache_root"
exec 9>"$cache_root/.lock-$version"
flock 9
if complete; then echo "$dest/bin"; exit 0; fi

# A stage that finished leaves a marker in bin/; an interrupted build resumes with its Go build cache.
work="$dest/work"
mkdir -p "$work/k8s" "$work/etcd" "$dest/bin"
export GOCACHE="$work/gocache" GOFLAGS="-mod=mod -trimpath -p=${KCLUSTER_K8S_BUILD_JOBS:-2}" CGO_ENABLED=0 GOTOOLCHAIN=local
log() { echo "build.sh: $*" >&2; }

# 1. Kubernetes: one module of our own, so shared packages compile once for all four commands.
staging=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider cluster-bootstrap
  code-generator component-base component-helpers controller-manager cri-api cri-client cri-streaming
  csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator
  kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission
  sample-apiserver sample-cli-plugin sample-controller streaming)
cd "$work/k8s"
rm -f "$dest/bin/.complete"
"$GO" mod download -json "k8s.io/kubernetes@v$version" > kubernetes.json
k8s_mod="$(sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p' kubernetes.json)"
k8s_dir="$(sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' kubernetes.json)"
go_line="$(grep -m1 '^go ' "$k8s_mod")"
{
  echo "module kcluster.local/kubernetes-build"
  echo
  echo "$go_line"
  grep -m1 '^godebug ' "$k8s_mod" || true
  echo
  echo "require k8s.io/kubernetes v$version"
  echo
  echo "replace ("
  for m in "${staging[@]}"; do
    # Only the staging modules this release has (its own go.mod replaces them with ./staging/...).
    if grep -q "k8s.io/$m => ./staging/src/k8s.io/$m\$" "$k8s_mod"; then
      echo "	k8s.io/$m => k8s.io/$m v0.$minor.${version##*.}"
    fi
  done
  echo ")"
} > go.mod
cat > tools.go <<'GO'
//go:build tools

package tools
GO
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=v$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitCommit=module-build -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done
if [[ ! -f "$dest/bin/.kubernetes" ]]; then
  log "building Kubernetes v$version (kube-apiserver, kube-controller-manager, kubeadm, kubectl)"
  nice -n 19 "$GO" build -ldflags "$ldflags" -o "$dest/bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kubeadm k8s.io/kubernetes/cmd/kubectl
  touch "$dest/bin/.kubernetes"
fi

# 2. etcd at the version this kubeadm deploys for its own minor: constants.go's SupportedEtcdVersion
# entry, or DefaultEtcdVersion when the map has none for it (kubeadm's EtcdSupportedVersion falls back so).
constants="$k8s_dir/cmd/kubeadm/app/constants/constants.go"
etcd_version="$(sed -nE "s/^[[:space:]]*$minor:[[:space:]]*\"([0-9.]+)(-[0-9]+)?\",?.*/\1/p" "$constants" | head -1)"
[[ -n "$etcd_version" ]] || etcd_version="$(sed -nE 's/.*DefaultEtcdVersion = "([0-9.]+)(-[0-9]+)?".*/\1/p' "$constants")"
[[ -n "$etcd_version" ]] || { log "cannot find kubeadm's etcd version"; exit 1; }
log "building etcd v$etcd_version (etcd, etcdctl, etcdutl)"
cd "$work/etcd"
cat > go.mod <<GOMOD
module kcluster.local/etcd-build

$go_line

require (
	go.etcd.io/etcd/server/v3 v$etcd_version
	go.etcd.io/etcd/etcdctl/v3 v$etcd_version
	go.etcd.io/etcd/etcdutl/v3 v$etcd_version
)
GOMOD
etcd_ldflags="-s -w"
# Each binary once: a cache built before etcdutl joined the list gets only etcdutl.
declare -A etcd_packages=([etcd]=go.etcd.io/etcd/server/v3 [etcdctl]=go.etcd.io/etcd/etcdctl/v3
  [etcdutl]=go.etcd.io/etcd/etcdutl/v3)
for b in etcd etcdctl etcdutl; do
  [[ -x "$dest/bin/$b" ]] || nice -n 19 "$GO" build -ldflags "$etcd_ldflags" -o "$dest/bin/$b" "${etcd_packages[$b]}"
done

echo "$etcd_version" > "$dest/etcd-version"
"$dest/bin/kubeadm" version -o short >&2
rm -rf "$work"
touch "$dest/bin/.complete"
echo "$dest/bin"
