# restore: make a brand-new first control plane come back from a backup, before `kubeadm init` runs.
#
# Reads s3://<backup_bucket>/<Tier>/<BackupId>/ (what the backup document wrote: manifest.json, etcd.db,
# pki.tar; KMS-encrypted, readable only by control planes), checks it, then:
#   * the PKI into /etc/kubernetes/pki: the same cluster CA, so workers' kubelets keep trusting the API
#     server and the discovery hash does not change; the same service-account keys and etcd CA;
#   * `etcdutl snapshot restore` into /var/lib/etcd as a one-member cluster of THIS node: its own --name
#     (the Node name kubeadm gives the etcd member), --initial-cluster and --initial-advertise-peer-urls
#     (https://<this node's IP>:2380, kubeadm's peer URL). Without them the member would keep the old
#     node's peer URL, and every later `kubeadm join --control-plane` would hang trying to reach it.
#   * a marker (/var/lib/kcluster/restored.json) naming the backup, written last.
# `kubeadm init` then runs over the restored data (it must be told to accept the non-empty /var/lib/etcd:
# --ignore-preflight-errors=DirAvailable--var-lib-etcd; kubeadm's etcd manifest reuses the data dir).
#
# Checks, all before anything on the node changes: the manifest names this cluster; the downloaded
# snapshot and PKI have the SHA-256 the manifest recorded; the snapshot passes kc_snapshot_check (its own
# SHA-256 trailer and `etcdutl snapshot status`): a corrupted or truncated snapshot is refused with
# snapshot-invalid. A node whose /var/lib/etcd holds anything is refused (etcd-data-present, exit 3),
# not cleaned: a new instance from the Auto Scaling group has an empty one, so data there is the old
# cluster's or a person's, and kubeadm's own preflight refuses such a node too (DirAvailable); `kubeadm
# reset` is the documented way to clean it. A node with another cluster's CA is refused the same way.
# A second run for the same backup finds the marker and the data and reports it again (changed false).
#
# etcdutl on a node before init: there is no etcd pod yet (kc_etcdutl of common.sh runs inside it), and
# no package puts etcdutl on the host. The image kubeadm will run etcd from carries it, so this script
# runs it from that image with containerd's `ctr` (installed with containerd by the user data), the
# snapshot's directory and /var/lib/etcd bind-mounted at their own paths. The image is the one `kubeadm
# config images list` names for this Kubernetes version, pulled into containerd's k8s.io namespace, where
# kubeadm init then finds it.
KC_STEP=restore
KC_RESTORE_MARKER="${KCLUSTER_ROOT}/var/lib/kcluster/restored.json"
KC_RESTORE_WORK="${KCLUSTER_ROOT}/var/lib/kcluster"
# kubeadm's etcd peer port; a test seam (KC_ETCD_PEER_PORT) as ETCDCTL_ENDPOINTS is for the other scripts.
KC_ETCD_PEER_PORT="${KC_ETCD_PEER_PORT:-2380}"
KC_IPV4_SHAPE='^([0-9]{1,3}\.){3}[0-9]{1,3}$'
kc_require_params ClusterName KubernetesVersion BackupId Tier
kc_require_provisioned
kc_load_identity
kc_require_kubeadm_version
kc_load_cluster_config

# Replaces common.sh's kc_etcdutl (crictl exec into the etcd pod) for this document: a throw-away
# container of kubeadm's etcd image, with only the two directories it works on.
kc_etcdutl() {
  ctr --namespace k8s.io run --rm \
    --mount "type=bind,src=${KC_RESTORE_WORK},dst=$(kc_container_path "$KC_RESTORE_WORK"),options=rbind:ro" \
    --mount "type=bind,src=${KC_ETCD_DATA_PARENT},dst=$(kc_container_path "$KC_ETCD_DATA_PARENT"),options=rbind:rw" \
    "$KC_ETCD_IMAGE" "kcluster-etcdutl-$$-${RANDOM}" etcdutl "$@"
}

# kc_etcd_image_ready: KC_ETCD_IMAGE, kubeadm's etcd image for this version, present in containerd.
kc_etcd_image_ready() {
  local listed
  if ! listed="$(kubeadm config images list --kubernetes-version "v${SSM_KubernetesVersion}")" \
    || ! KC_ETCD_IMAGE="$(grep -E '^[a-z0-9.:-]+(/[a-z0-9._-]+)*/etcd:[A-Za-z0-9._-]+$' <<<"$listed" | head -n 1)" \
    || [[ -z "$KC_ETCD_IMAGE" ]]; then
    kc_fail etcd-image-unknown "kubeadm config images list names no etcd image for v${SSM_KubernetesVersion}"
  fi
  if [[ -z "$(ctr --namespace k8s.io images ls -q "name==${KC_ETCD_IMAGE}")" ]] \
    && ! ctr --namespace k8s.io images pull "$KC_ETCD_IMAGE" >&2; then
    kc_fail etcd-image-pull-failed "could not pull ${KC_ETCD_IMAGE} (etcdutl runs from it)"
  fi
}

if ! node_ip="$(cloud-init query ds.meta_data.local_ipv4)" || [[ ! "$node_ip" =~ $KC_IPV4_SHAPE ]]; then
  kc_fail identity-unknown "cloud-init gives no IPv4 address for this instance"
fi
peer_url="https://${node_ip}:${KC_ETCD_PEER_PORT}"
prefix="${SSM_Tier}/${SSM_BackupId}"
data_dir="$KC_ETCD_DATA_PARENT"

# ----- the same backup again: report it; anything else on the node: refuse -----

if [[ -f "$KC_RESTORE_MARKER" ]]; then
  restored_from="$(jq -r '.key // ""' "$KC_RESTORE_MARKER" 2>/dev/null || true)"
  if [[ "$restored_from" == "${prefix}/" && -d "${data_dir}/member" ]]; then
    kc_log "restored from ${prefix} already"
    kc_succeed false "key=${prefix}/" "member_name=$(jq -r '.member_name' "$KC_RESTORE_MARKER")" \
      "peer_url=$(jq -r '.peer_url' "$KC_RESTORE_MARKER")" "revision:=$(jq '.revision' "$KC_RESTORE_MARKER")"
  fi
  kc_fail already-restored "this node was restored from ${restored_from:-an unreadable marker}, not ${prefix}/" 3
fi
if [[ -f "$KC_ADMIN_CONF" || -f "$KC_KUBELET_CONF" ]]; then
  kc_fail already-initialized "kubeadm has run on this node (${KC_KUBE_DIR#"$KCLUSTER_ROOT"} has kubeconfigs): restore only before init" 3
fi
if [[ -d "$data_dir" && -n "$(ls -A "$data_dir")" ]]; then
  kc_fail etcd-data-present "${data_dir#"$KCLUSTER_ROOT"} is not empty: refusing to restore over data of another etcd (kubeadm reset cleans it)" 3
fi

# ----- fetch and check, nothing changed yet -----

if ! config="$(kc_get_param "/kcluster/${SSM_ClusterName}/config")" \
  || ! bucket="$(jq -r '.backup_bucket // ""' <<<"$config")"; then
  kc_fail config-unreadable "cannot read /kcluster/${SSM_ClusterName}/config"
fi
if [[ ! "$bucket" =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]]; then
  kc_fail backup-bucket-unknown "/kcluster/${SSM_ClusterName}/config names no backup bucket (backup_bucket)"
fi

# kc_s3_get KEY FILE: one object of the backup into FILE (S3 decrypts with the cluster's key).
kc_s3_get() {
  aws s3 cp "s3://${bucket}/${prefix}/$1" "$2" --region "$KC_REGION" --only-show-errors --no-progress
}

manifest=""
kc_tmpfile manifest
if ! kc_s3_get manifest.json "$manifest"; then
  kc_fail backup-not-found "no readable backup at s3://${bucket}/${prefix}/ (manifest.json)"
fi
# shellcheck disable=SC2016 # jq variables, not shell ones
if ! jq -e --arg cluster "$SSM_ClusterName" '.format == 1 and .cluster == $cluster
    and (.snapshot.sha256 | test("^[0-9a-f]{64}$")) and (.pki.sha256 | test("^[0-9a-f]{64}$"))' \
  "$manifest" >/dev/null 2>&1; then
  kc_fail backup-manifest-invalid "s3://${bucket}/${prefix}/manifest.json is not a backup manifest of cluster ${SSM_ClusterName}"
fi

mkdir -p "$KC_RESTORE_WORK"
snapshot="$(mktemp "${KC_RESTORE_WORK}/restore-snapshot.XXXXXXXX")"
KC_TMP_FILES+=("$snapshot")
if ! kc_s3_get etcd.db "$snapshot"; then
  kc_fail backup-download-failed "could not download s3://${bucket}/${prefix}/etcd.db"
fi
if [[ "$(sha256sum "$snapshot" | cut -d ' ' -f 1)" != "$(jq -r '.snapshot.sha256' "$manifest")" ]]; then
  kc_fail snapshot-invalid "the downloaded snapshot's SHA-256 is not the one its manifest recorded (corrupted or truncated)"
fi
pki=""
kc_tmpfile pki
if ! kc_s3_get pki.tar "$pki"; then
  kc_fail backup-download-failed "could not download s3://${bucket}/${prefix}/pki.tar"
fi
if [[ "$(sha256sum "$pki" | cut -d ' ' -f 1)" != "$(jq -r '.pki.sha256' "$manifest")" ]]; then
  kc_fail pki-invalid "the downloaded PKI's SHA-256 is not the one its manifest recorded"
fi
# Only the plain files the manifest lists, by relative paths inside pki/ (never ../ or absolute).
if ! members="$(tar -tf "$pki" | sort)" \
  || [[ "$members" != "$(jq -r '.pki.files[]' "$manifest" | sort)" ]] \
  || grep -Eq '(^/|(^|/)\.\.(/|$))' <<<"$members" || ! grep -qx 'ca.crt' <<<"$members"; then
  kc_fail pki-invalid "pki.tar does not hold exactly the files its manifest lists (with ca.crt)"
fi
if [[ -f "$KC_CA_CERT" && "$(tar -xOf "$pki" ca.crt | sha256sum)" != "$(sha256sum <"$KC_CA_CERT")" ]]; then
  kc_fail pki-present "${KC_CA_CERT#"$KCLUSTER_ROOT"} is another cluster's CA: refusing to replace it" 3
fi

kc_etcd_image_ready
kc_snapshot_check "$snapshot"

# ----- restore: the PKI, then etcd as a one-member cluster of this node, then the marker -----

KC_CHANGED=true
mkdir -p "${KC_KUBE_DIR}/pki"
chmod 0755 "$KC_KUBE_DIR" "${KC_KUBE_DIR}/pki"
tar -C "${KC_KUBE_DIR}/pki" --no-same-owner -xf "$pki"
while IFS= read -r file; do
  case "$file" in
    *.key) chmod 0600 "${KC_KUBE_DIR}/pki/${file}" ;;
    *) chmod 0644 "${KC_KUBE_DIR}/pki/${file}" ;;
  esac
done <<<"$members"

mkdir -p "$data_dir"
chmod 0700 "$data_dir"
restore_log=""
if ! restore_log="$(kc_etcdutl snapshot restore "$(kc_container_path "$snapshot")" \
  --name="$KC_NODE_NAME" --initial-cluster="${KC_NODE_NAME}=${peer_url}" \
  --initial-advertise-peer-urls="$peer_url" --initial-cluster-token="kcluster-${SSM_ClusterName}-${SSM_BackupId}" \
  --data-dir="$(kc_container_path "$data_dir")" 2>&1)"; then
  # it was empty before: what a failed restore left would make the next run refuse it as foreign data
  rm -rf -- "$data_dir"
  mkdir -m 0700 "$data_dir"
  kc_fail etcd-restore-failed "etcdutl snapshot restore failed: $(tail -n 1 <<<"$restore_log")"
fi
kc_log "$(tail -n 1 <<<"$restore_log")"

revision="$(jq '.revision' <<<"$KC_SNAPSHOT_STATUS")"
# shellcheck disable=SC2016 # jq variables, not shell ones
jq -n --arg key "${prefix}/" --arg bucket "$bucket" --arg name "$KC_NODE_NAME" --arg peer "$peer_url" \
  --arg sha256 "$KC_SNAPSHOT_SHA256" --argjson revision "$revision" --arg at "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  '{bucket: $bucket, key: $key, member_name: $name, peer_url: $peer, sha256: $sha256,
    revision: $revision, restored_at: $at}' >"${KC_RESTORE_MARKER}.part"
mv "${KC_RESTORE_MARKER}.part" "$KC_RESTORE_MARKER"
kc_log "restored ${prefix} (revision ${revision}) as etcd member ${KC_NODE_NAME} at ${peer_url}"
kc_succeed true "bucket=${bucket}" "key=${prefix}/" "member_name=${KC_NODE_NAME}" "peer_url=${peer_url}" \
  "revision:=${revision}" "total_keys:=$(jq '.total_keys' <<<"$KC_SNAPSHOT_STATUS")" \
  "sha256=${KC_SNAPSHOT_SHA256}"
