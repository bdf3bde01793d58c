# backup: on a healthy control plane, an etcd snapshot and the cluster PKI to the cluster's backup bucket.
#
#   s3://<backup_bucket>/<Tier>/<BackupId>/etcd.db        the snapshot (`etcdctl snapshot save`), checked
#                                                          before upload (kc_snapshot_check)
#   s3://<backup_bucket>/<Tier>/<BackupId>/pki.tar        what a restored cluster needs to keep its identity
#                                                          (so workers keep trusting it): the cluster CA, the
#                                                          service-account keys, the front-proxy CA, the etcd CA
#   s3://<backup_bucket>/<Tier>/<BackupId>/manifest.json  written last: its presence says the backup is whole
#
# Every object is encrypted with the cluster's KMS key (--sse-kms-key-id, also the bucket's default), which
# only control planes may use. The PKI never reaches stdout, stderr or a command line: it goes from the
# node's files to a 0600 temp file to S3. The snapshot is written under /var/lib/etcd (the etcd pod mounts
# it at the same path) and removed on exit. A second run with the same BackupId finds the manifest and
# reports that backup again (changed false). The result line: bucket, key (the backup's prefix), size,
# revision, hash (etcd's), total_keys, sha256 (the snapshot file's).
KC_STEP=backup
KC_BACKUP_PKI_FILES=(ca.crt ca.key sa.key sa.pub front-proxy-ca.crt front-proxy-ca.key etcd/ca.crt etcd/ca.key)
kc_require_params ClusterName BackupId Tier
kc_require_provisioned
kc_load_identity
kc_load_cluster_config

for file in "${KC_BACKUP_PKI_FILES[@]}"; do
  if [[ ! -f "${KC_KUBE_DIR}/pki/${file}" ]]; then
    kc_fail not-a-control-plane "no ${KC_KUBE_DIR#"$KCLUSTER_ROOT"}/pki/${file} on this node: run backup on a control plane" 3
  fi
done

if ! config="$(kc_get_param "/kcluster/${SSM_ClusterName}/config")" \
  || ! bucket="$(jq -r '.backup_bucket // ""' <<<"$config")"; then
  kc_fail config-unreadable "cannot read /kcluster/${SSM_ClusterName}/config"
fi
if [[ ! "$bucket" =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]]; then
  kc_fail backup-bucket-unknown "/kcluster/${SSM_ClusterName}/config names no backup bucket (backup_bucket)"
fi
prefix="${SSM_Tier}/${SSM_BackupId}"
manifest_key="${prefix}/manifest.json"

# kc_s3_put FILE KEY: upload under the cluster's key (the bucket's policy lets only control planes put).
kc_s3_put() {
  aws s3 cp "$1" "s3://${bucket}/$2" --region "$KC_REGION" --sse aws:kms \
    --sse-kms-key-id "$KC_KMS_KEY_ARN" --only-show-errors --no-progress
}

# ----- the same BackupId twice: report the backup that is there -----

head_error=""
if head_error="$(aws s3api head-object --region "$KC_REGION" --bucket "$bucket" --key "$manifest_key" 2>&1)"; then
  if ! manifest="$(aws s3 cp "s3://${bucket}/${manifest_key}" - --region "$KC_REGION" --only-show-errors)" \
    || ! jq -e '.snapshot.size and .etcd.revision' <<<"$manifest" >/dev/null 2>&1; then
    kc_fail backup-manifest-invalid "s3://${bucket}/${manifest_key} exists but cannot be read as a backup manifest"
  fi
  kc_log "backup ${prefix} exists already"
  kc_succeed false "bucket=${bucket}" "key=${prefix}/" "size:=$(jq '.snapshot.size' <<<"$manifest")" \
    "revision:=$(jq '.etcd.revision' <<<"$manifest")" "hash:=$(jq '.etcd.hash' <<<"$manifest")" \
    "total_keys:=$(jq '.etcd.total_keys' <<<"$manifest")" "sha256=$(jq -r '.snapshot.sha256' <<<"$manifest")"
elif [[ "$head_error" != *"(404)"* && "$head_error" != *"Not Found"* ]]; then
  kc_fail backup-bucket-unreachable "cannot look into s3://${bucket}: $(tail -n 1 <<<"$head_error")"
fi

# ----- a snapshot of the local, healthy member -----

kc_require_etcd_container
if ! kc_etcdctl endpoint health >/dev/null 2>&1; then
  kc_fail etcd-unhealthy "the local etcd member does not answer endpoint health: no snapshot from it"
fi
if [[ ! -d "$KC_ETCD_DATA_PARENT" ]]; then
  kc_fail not-a-control-plane "no ${KC_ETCD_DATA_PARENT#"$KCLUSTER_ROOT"} on this node: run backup on a control plane" 3
fi
snapshot="$(mktemp "${KC_ETCD_DATA_PARENT}/kcluster-snapshot.XXXXXXXX")"
KC_TMP_FILES+=("$snapshot" "${snapshot}.part")
if ! kc_etcdctl snapshot save "$(kc_container_path "$snapshot")" >&2; then
  kc_fail etcd-snapshot-failed "etcdctl snapshot save failed against the local etcd member"
fi
kc_snapshot_check "$snapshot"
size="$(stat -c %s "$snapshot")"

# ----- the PKI and the manifest -----

pki=""
kc_tmpfile pki
tar -C "${KC_KUBE_DIR}/pki" -cf "$pki" "${KC_BACKUP_PKI_FILES[@]}"
manifest=""
kc_tmpfile manifest
# shellcheck disable=SC2016 # jq variables, not shell ones
jq -n --arg cluster "$SSM_ClusterName" --arg id "$SSM_BackupId" --arg tier "$SSM_Tier" \
  --arg instance "$KC_INSTANCE_ID" --arg node "$KC_NODE_NAME" --arg at "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --arg kubernetes "$(kubeadm version -o short)" --argjson etcd "$KC_SNAPSHOT_STATUS" \
  --arg prefix "$prefix" --argjson size "$size" --arg sha256 "$KC_SNAPSHOT_SHA256" \
  --arg pki_sha256 "$(sha256sum "$pki" | cut -d ' ' -f 1)" --argjson pki_size "$(stat -c %s "$pki")" \
  '{format: 1, cluster: $cluster, backup_id: $id, tier: $tier, taken_at: $at, instance_id: $instance,
    node_name: $node, kubernetes_version: $kubernetes, etcd: $etcd,
    snapshot: {key: "\($prefix)/etcd.db", size: $size, sha256: $sha256},
    pki: {key: "\($prefix)/pki.tar", size: $pki_size, sha256: $pki_sha256, files: $ARGS.positional}}' \
  --args "${KC_BACKUP_PKI_FILES[@]}" >"$manifest"

KC_CHANGED=true
if ! kc_s3_put "$snapshot" "${prefix}/etcd.db" || ! kc_s3_put "$pki" "${prefix}/pki.tar" \
  || ! kc_s3_put "$manifest" "$manifest_key"; then
  kc_fail backup-upload-failed "uploading the backup to s3://${bucket}/${prefix}/ failed"
fi
kc_log "backup ${prefix}: revision $(jq '.revision' <<<"$KC_SNAPSHOT_STATUS"), ${size} bytes"
kc_succeed true "bucket=${bucket}" "key=${prefix}/" "size:=${size}" \
  "revision:=$(jq '.revision' <<<"$KC_SNAPSHOT_STATUS")" "hash:=$(jq '.hash' <<<"$KC_SNAPSHOT_STATUS")" \
  "total_keys:=$(jq '.total_keys' <<<"$KC_SNAPSHOT_STATUS")" "sha256=${KC_SNAPSHOT_SHA256}"
