# drain-remove: on a healthy control plane other than the leaving node, take the leaving instance's
# Node out of the cluster: cordon, drain (PodDisruptionBudgets honoured, bounded by DrainTimeout; a
# drain that times out is reported, not fatal: the instance is leaving anyway), remove its etcd member
# when asked (quorum-guarded, leadership moved first), delete the Node. A second run is a no-op.
KC_STEP=drain-remove
kc_require_params ClusterName InstanceId RemoveEtcdMember DrainTimeout
kc_require_provisioned
kc_load_identity
if [[ "$SSM_InstanceId" == "$KC_INSTANCE_ID" ]]; then
  kc_fail invalid-target "drain-remove must run on a control plane other than the leaving node" 2
fi
kc_require_api
# Removing an etcd member needs this node's etcd container (etcdctl runs in it): without one, fail
# before the cordon and drain, so another control plane can do the whole job.
if [[ "$SSM_RemoveEtcdMember" == true ]]; then
  kc_require_etcd_container
fi

# The leaving instance's Node is the one whose spec.providerID names it (not a label its kubelet could
# have rewritten to point this drain at another Node).
if ! nodes_json="$(kc_kubectl get nodes -o json)"; then
  kc_fail api-failed "kubectl get nodes failed"
fi
# shellcheck disable=SC2016 # jq variables, not shell ones
node_json="$(jq -c --arg id "$SSM_InstanceId" "${KC_JQ_INSTANCE_ID}"' first(.items[] | select(instance_id == $id)) // {}' \
  <<<"$nodes_json")"
node_name="$(jq -r '.metadata.name // ""' <<<"$node_json")"
node_ip="$(jq -r '[.status.addresses // [] | .[] | select(.type == "InternalIP")][0].address // ""' <<<"$node_json")"
drained=false
drain_timed_out=false
node_deleted=false
etcd_member_removed=false

if [[ -n "$node_name" ]]; then
  kc_log "draining ${node_name} (${SSM_InstanceId})"
  kc_kubectl cordon "$node_name"
  KC_CHANGED=true
  drain_errors=""
  kc_tmpfile drain_errors
  if kc_kubectl drain "$node_name" --ignore-daemonsets --delete-emptydir-data --force \
    --timeout="$SSM_DrainTimeout" 2>"$drain_errors"; then
    drained=true
  # kubectl up to 1.31 ends a drain that ran out of time with "global timeout reached"; from 1.32 an
  # evicted pod still terminating at the deadline ends it with "... to terminate: context deadline
  # exceeded" (the leaving node's kubelet is dead, or a long grace period).
  elif grep -q -e 'global timeout reached' -e 'timed out waiting for the condition' \
    -e 'to terminate: context deadline exceeded' "$drain_errors"; then
    drain_timed_out=true
    kc_log "drain of ${node_name} timed out after ${SSM_DrainTimeout} (a PodDisruptionBudget blocks an eviction); going on: the instance is leaving"
  else
    cat "$drain_errors" >&2
    kc_fail drain-failed "kubectl drain ${node_name} failed: $(tail -n 1 "$drain_errors")"
  fi
  cat "$drain_errors" >&2
else
  kc_log "no Node's providerID names ${SSM_InstanceId}: nothing to drain or delete"
fi

if [[ "$SSM_RemoveEtcdMember" == true ]]; then
  member_name="$node_name"
  if [[ -z "$node_ip" ]]; then
    # The Node is gone already: the instance's address is still known to EC2 while it terminates.
    read -r node_ip private_dns < <(aws ec2 describe-instances --region "$KC_REGION" \
      --instance-ids "$SSM_InstanceId" \
      --query 'Reservations[0].Instances[0].[PrivateIpAddress,PrivateDnsName]' --output text \
      || true) || true
    [[ "${node_ip:-None}" == None ]] && node_ip=""
    [[ -z "$member_name" && "${private_dns:-None}" != None ]] && member_name="$private_dns"
  fi
  kc_etcd_snapshot
  member_id="$(kc_etcd_find_member "$member_name" "${node_ip:-}")"
  if [[ -n "$member_id" ]]; then
    if kc_etcd_remove_member "$member_id"; then
      etcd_member_removed=true
      KC_CHANGED=true
    fi
  else
    kc_log "no etcd member named '${member_name}' or at '${node_ip:-}': nothing to remove"
  fi
fi

if [[ -n "$node_name" ]]; then
  deleted="$(kc_kubectl delete node "$node_name" --ignore-not-found)"
  [[ "$deleted" == *deleted* ]] && node_deleted=true
fi

kc_succeed "${KC_CHANGED:-false}" "node_name=${node_name}" "drained:=${drained}" \
  "drain_timed_out:=${drain_timed_out}" "node_deleted:=${node_deleted}" \
  "etcd_member_removed:=${etcd_member_removed}"
