# refresh-join: on a healthy control plane, a fresh short-TTL bootstrap token and, when asked, a fresh
# certificate key (kubeadm init phase upload-certs), written to SecureString parameters. Every run
# mints new material on purpose (that is what it is for); repeating it is safe.
KC_STEP=refresh-join
kc_require_params ClusterName TokenTtl UploadCertificates
kc_require_provisioned
kc_load_identity

kc_require_api

# remove_strays: before a control-plane join, the etcd members and Node objects left behind by
# instances that are gone (a dead master's member would count against the quorum the joiner needs).
# A member goes only when it is unhealthy AND belongs to no live control-plane instance (neither its
# name nor its peer host); a Node only when its instance-id label names no live instance. An EC2
# answer that does not list this very instance is not trusted: nothing is removed then.
stray_members_removed=0
stray_nodes_deleted=0
remove_strays() {
  local live live_control_planes nodes_json name label member_id
  live="$(kc_live_instances)"
  live_control_planes="$(kc_live_instances control-plane)"
  if ! grep -q -P "^${KC_INSTANCE_ID}\t" <<<"$live_control_planes"; then
    kc_log "EC2 does not list this instance as a live control plane: skipping stray cleanup"
    return 0
  fi
  nodes_json="$(kc_kubectl get nodes -o json)"
  local -a strays=()
  while IFS=$'\t' read -r name label; do
    [[ -n "$label" ]] || continue
    if ! cut -f1 <<<"$live" | grep -qxF "$label"; then
      strays+=("${name}"$'\t'"${label}")
    fi
  done < <(jq -r '.items[] | [.metadata.name, (.metadata.labels["kcluster.io/instance-id"] // "")] | @tsv' \
    <<<"$nodes_json")
  # Many "gone" instances at once means the EC2 answer is wrong, not the cluster: delete nothing
  # (the reconciler removes the Nodes of instances it saw leave, one by one).
  local total max_strays
  total="$(jq '.items | length' <<<"$nodes_json")"
  max_strays=$((total / 10 > 3 ? total / 10 : 3))
  if ((${#strays[@]} > max_strays)); then
    kc_log "refusing to delete ${#strays[@]} of ${total} Nodes as strays (at most ${max_strays} at once)"
    strays=()
  fi
  local stray
  for stray in "${strays[@]}"; do
    name="${stray%%$'\t'*}"
    label="${stray#*$'\t'}"
    kc_log "deleting Node ${name}: instance ${label} is gone"
    kc_kubectl delete node "$name" --ignore-not-found
    stray_nodes_deleted=$((stray_nodes_deleted + 1))
    KC_CHANGED=true
  done
  local ips names attempts=0
  ips="$(cut -f2 <<<"$live_control_planes" | jq -R . | jq -sc .)"
  names="$(cut -f3 <<<"$live_control_planes" | jq -R . | jq -sc .)"
  while ((attempts < 10)); do
    attempts=$((attempts + 1))
    kc_etcd_snapshot
    # shellcheck disable=SC2016 # jq variables, not shell ones
    member_id="$(jq -r --argjson ips "$ips" --argjson names "$names" 'first(.[] | select(.healthy | not)
      | select(.name as $n | $names | index([$n]) | not)
      | select(any(.peer_hosts[]; . as $h | $ips | index([$h])) | not)) | .id' <<<"$KC_ETCD_STATE")"
    [[ -n "$member_id" ]] || break
    kc_log "removing stray etcd member $(printf '%x' "$member_id"): unhealthy, no live control plane"
    if kc_etcd_remove_member "$member_id"; then
      stray_members_removed=$((stray_members_removed + 1))
      KC_CHANGED=true
    fi
  done
}

token_file=""
kc_tmpfile token_file
kc_capture_secret token-create-failed "$token_file" kubeadm token create --ttl "$SSM_TokenTtl"
kc_put_secret "$(kc_join_param_name token)" "$token_file"

certificate_key_refreshed=false
if [[ "$SSM_UploadCertificates" == true ]]; then
  remove_strays
  key_file=""
  kc_tmpfile key_file
  kc_capture_secret upload-certs-failed "$key_file" kubeadm init phase upload-certs --upload-certs
  kc_put_secret "$(kc_join_param_name certificate-key)" "$key_file"
  certificate_key_refreshed=true
fi

kc_succeed true "node_name=${KC_NODE_NAME}" "token_ttl=${SSM_TokenTtl}" \
  "certificate_key_refreshed:=${certificate_key_refreshed}" \
  "stray_members_removed:=${stray_members_removed}" "stray_nodes_deleted:=${stray_nodes_deleted}"
