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
# name nor its peer host). A Node goes only when all of these hold: its spec.providerID names an
# instance (a label could be rewritten by its own kubelet; the providerID cannot change), that
# instance is not among the cluster's live ones, its Ready condition is not True, and EC2 asked by that
# very id says it is terminated or does not know it. An EC2 answer that does not list this very
# instance is not trusted: nothing is removed then.
# Membership tests use associative arrays, never `producer | grep -q` pipelines: grep -q exits at the
# first match, the producer dies of SIGPIPE, and under pipefail a live instance would look gone.
stray_members_removed=0
stray_nodes_deleted=0

# ids_to_set ARRAY_NAME TSV: the first column of each line of TSV as keys of the associative array.
# shellcheck disable=SC2034 # a nameref: the caller's array is what gets filled
ids_to_set() {
  local -n ids_to_set_out="$1"
  local id _rest
  while IFS=$'\t' read -r id _rest; do
    if [[ -n "$id" ]]; then
      ids_to_set_out["$id"]=1
    fi
  done <<<"$2"
}

# confirmed_gone ID...: prints each ID that EC2, asked by id, reports terminated or shutting down or
# does not know at all. Asked by filter (not --instance-ids) so one unknown id does not fail the call.
confirmed_gone() {
  local -a ids=("$@")
  local -A existing=()
  local offset chunk answer id state
  for ((offset = 0; offset < ${#ids[@]}; offset += 100)); do
    chunk="$(IFS=,; printf '%s' "${ids[*]:offset:100}")"
    answer="$(aws ec2 describe-instances --region "$KC_REGION" \
      --filters "Name=instance-id,Values=${chunk}" \
      --query 'Reservations[].Instances[].[InstanceId,State.Name]' --output text)"
    while IFS=$'\t' read -r id state; do
      if [[ -n "$id" && "$state" != terminated && "$state" != shutting-down ]]; then
        existing["$id"]=1
      fi
    done <<<"$answer"
  done
  for id in "${ids[@]}"; do
    if [[ -z "${existing[$id]:-}" ]]; then
      printf '%s\n' "$id"
    fi
  done
}

remove_strays() {
  local live live_control_planes nodes_json name instance_id ready member_id
  local -A live_ids=() live_control_plane_ids=()
  live="$(kc_live_instances)"
  live_control_planes="$(kc_live_instances control-plane)"
  ids_to_set live_ids "$live"
  ids_to_set live_control_plane_ids "$live_control_planes"
  if [[ -z "${live_control_plane_ids[$KC_INSTANCE_ID]:-}" ]]; then
    kc_log "EC2 does not list this instance as a live control plane: skipping stray cleanup"
    return 0
  fi
  nodes_json="$(kc_kubectl get nodes -o json)"
  local -A candidate_nodes=()
  while IFS=$'\t' read -r name instance_id ready; do
    [[ -n "$instance_id" && -z "${live_ids[$instance_id]:-}" ]] || continue
    if [[ "$ready" == True ]]; then
      kc_log "Node ${name}: instance ${instance_id} is not listed as live, but the Node is Ready: kept"
      continue
    fi
    candidate_nodes["$instance_id"]="$name"
  done < <(jq -r "${KC_JQ_INSTANCE_ID}"' .items[] | [.metadata.name, instance_id,
      (first(.status.conditions // [] | .[] | select(.type == "Ready") | .status) // "Unknown")] | @tsv' \
    <<<"$nodes_json")
  # Many "gone" instances at once means the EC2 answer is wrong, not the cluster: delete nothing
  # (the reconciler removes the Nodes of instances it saw leave, one by one).
  local total max_strays
  total="$(jq '.items | length' <<<"$nodes_json")"
  max_strays=$((total / 10 > 3 ? total / 10 : 3))
  if ((${#candidate_nodes[@]} > max_strays)); then
    kc_log "refusing to delete ${#candidate_nodes[@]} of ${total} Nodes as strays (at most ${max_strays} at once)"
    candidate_nodes=()
  fi
  if ((${#candidate_nodes[@]} > 0)); then
    while read -r instance_id; do
      [[ -n "$instance_id" ]] || continue
      name="${candidate_nodes[$instance_id]}"
      kc_log "deleting Node ${name}: instance ${instance_id} is gone"
      kc_kubectl delete node "$name" --ignore-not-found
      stray_nodes_deleted=$((stray_nodes_deleted + 1))
      KC_CHANGED=true
    done < <(confirmed_gone "${!candidate_nodes[@]}")
  fi
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
