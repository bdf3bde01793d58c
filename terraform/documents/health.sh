# health: on a control plane, the cluster's health as the reconciler and the remediator read it: the API
# server's /readyz, every Node's Ready condition (with the time it last changed), etcd membership and
# member health and the leader. Read-only. A health probe reports rather than fails: an API that does
# not answer gives api_ready false (nodes and counts null) and whatever etcd alone tells; an etcd that
# answers nowhere gives etcd.reachable false, healthy 0; the reasons go to "warnings".
#
# SSM keeps only the first 24,000 characters of stdout: above KC_HEALTH_FULL_LIST_MAX Nodes only the
# NotReady ones are listed, and the list is cut (oldest NotReady first kept) to KC_HEALTH_NODES_BUDGET
# characters whatever the cluster's size; "nodes_truncated" says so, the counts always cover every Node.
KC_STEP=health
KC_HEALTH_FULL_LIST_MAX=200
KC_HEALTH_NODES_BUDGET=20000
# kubectl's own default is to wait forever; the document's timeout is 60 s for everything.
KC_HEALTH_REQUEST_TIMEOUT=10s
kc_require_params ClusterName
kc_require_provisioned
if [[ ! -f "$KC_ADMIN_CONF" ]]; then
  kc_fail not-a-control-plane "no ${KC_ADMIN_CONF#"$KCLUSTER_ROOT"} on this node: run health on a control plane"
fi

warnings=()
# kc_warn TEXT: a reason for the report, one line, bounded (tool errors can be long).
kc_warn() {
  local text="${1//$'\n'/ }"
  kc_log "warning: ${text}"
  warnings+=("${text:0:300}")
}

# ----- the API: /readyz and the Nodes -----

api_ready=false
nodes_json=""
readyz=""
if readyz="$(kc_kubectl get --raw /readyz --request-timeout "$KC_HEALTH_REQUEST_TIMEOUT" 2>&1)" \
  && [[ "$readyz" == ok ]]; then
  api_ready=true
  if ! nodes_json="$(kc_kubectl get nodes -o json --request-timeout "$KC_HEALTH_REQUEST_TIMEOUT" 2>&1)"; then
    kc_warn "kubectl get nodes failed: $(tail -n 1 <<<"$nodes_json")"
    nodes_json=""
  fi
else
  kc_warn "the API server does not answer /readyz from this node: $(tail -n 1 <<<"$readyz")"
fi

# One object per Node; ready_since or not_ready_since is the Ready condition's lastTransitionTime in
# epoch seconds (null while the Node has no Ready condition yet).
nodes_field=null
counts_field=null
nodes_truncated=false
if [[ -n "$nodes_json" ]]; then
  # shellcheck disable=SC2016 # jq variables, not shell ones
  summaries="$(jq -c "${KC_JQ_INSTANCE_ID}"' [.items[] | (first(.status.conditions // [] | .[] | select(.type == "Ready")) // null) as $ready
    | ($ready != null and $ready.status == "True") as $is_ready
    | ($ready.lastTransitionTime // null | if . == null then null else fromdateiso8601 end) as $since
    | {name: .metadata.name,
       instance_id: (instance_id | if . == "" then null else . end),
       control_plane: (.metadata.labels // {} | has("node-role.kubernetes.io/control-plane")),
       ready: $is_ready}
      + (if $is_ready then {ready_since: $since} else {not_ready_since: $since} end)
      + {unschedulable: (.spec.unschedulable // false)}] | sort_by(.name)' <<<"$nodes_json")"
  counts_field="$(jq -c '{ready: map(select(.ready)) | length, not_ready: map(select(.ready | not)) | length,
    ready_control_planes: map(select(.ready and .control_plane)) | length}' <<<"$summaries")"
  # shellcheck disable=SC2016 # jq variables, not shell ones
  listing="$(jq -c --argjson max "$KC_HEALTH_FULL_LIST_MAX" \
    --argjson budget "$KC_HEALTH_NODES_BUDGET" '
    if length <= $max and (tojson | length) <= $budget then [false, .]
    else [true, (map(select(.ready | not)) | sort_by(.not_ready_since // 0, .name)
      | reduce .[] as $node ({kept: [], size: 2};
          (($node | tojson | length) + 1) as $size
          | if .size + $size <= $budget then {kept: (.kept + [$node]), size: (.size + $size)} else . end)
      | .kept)] end | "\(.[0]) \(.[1] | tojson)"' -r <<<"$summaries")"
  nodes_truncated="${listing%% *}"
  nodes_field="${listing#* }"
fi

# ----- etcd: membership, member health, leader -----

# kc_etcd_read [ENDPOINTS]: member list, endpoint health and endpoint status through the first of
# ENDPOINTS (default: the local member) that answers; 1 when none does (KC_ETCD_ERROR says why).
etcd_members=""
etcd_health="[]"
etcd_status="[]"
kc_etcd_read() {
  local endpoints="${1:-${ETCDCTL_ENDPOINTS:-https://127.0.0.1:2379}}" errors=""
  kc_tmpfile errors
  if ! etcd_members="$(ETCDCTL_ENDPOINTS="$endpoints" kc_etcdctl member list -w json 2>"$errors" \
    | kc_etcd_ids_as_strings)" || [[ "$etcd_members" != \{* ]]; then
    # etcdctl's own last word, not crictl's closing "command terminated with non-zero exit code"
    KC_ETCD_ERROR="$(grep -v 'level=fatal' "$errors" | tail -n 1)" || KC_ETCD_ERROR=""
    [[ -n "$KC_ETCD_ERROR" ]] || KC_ETCD_ERROR="$(tail -n 1 "$errors")"
    etcd_members=""
    return 1
  fi
  # both exit 1 when a member does not answer; their JSON still holds every answer
  etcd_health="$(ETCDCTL_ENDPOINTS="$endpoints" kc_etcdctl endpoint health --cluster -w json)" || true
  [[ "$etcd_health" == \[* ]] || etcd_health='[]'
  etcd_status="$(ETCDCTL_ENDPOINTS="$endpoints" kc_etcdctl endpoint status --cluster -w json \
    | kc_etcd_ids_as_strings)" || true
  [[ "$etcd_status" == \[* ]] || etcd_status='[]'
}

# The other control planes' client URLs, when the local member does not answer: from their Nodes, or
# from EC2 when the API is down too.
kc_other_etcd_endpoints() {
  local addresses
  if [[ -n "$nodes_json" ]]; then
    addresses="$(jq -r '.items[] | select(.metadata.labels // {} | has("node-role.kubernetes.io/control-plane"))
      | .status.addresses // [] | .[] | select(.type == "InternalIP") | .address' <<<"$nodes_json")"
  else
    kc_load_identity
    addresses="$(kc_live_instances control-plane | cut -f2)" || addresses=""
  fi
  grep -E '^[0-9.]+$' <<<"$addresses" | sed 's|.*|https://&:2379|' | paste -sd, - || true
}

etcd_reachable=true
KC_ETCD_ERROR=""
# No etcd container here: etcdctl cannot run at all, not even against the other members. The probe
# fails (the functions then send the next one to another control plane) instead of reporting etcd down.
kc_require_etcd_container
if ! kc_etcd_read; then
  local_error="$KC_ETCD_ERROR"
  others="$(kc_other_etcd_endpoints)"
  if [[ -z "$others" ]] || ! kc_etcd_read "$others"; then
    etcd_reachable=false
    kc_warn "etcd does not answer: local member: ${local_error:-no answer}; other control planes: ${others:-none known}${KC_ETCD_ERROR:+: ${KC_ETCD_ERROR}}"
  else
    kc_warn "the local etcd member does not answer (${local_error:-no answer}); read etcd through ${others}"
  fi
fi

if [[ "$etcd_reachable" == true ]]; then
  # shellcheck disable=SC2016 # jq variables, not shell ones
  etcd_field="$(jq -c --argjson health "$etcd_health" --argjson status "$etcd_status" '
    (first($status[].Status.leader | select(. != "0")) // null) as $leader
    | [.members[] | {
        id: .ID,
        name: (if (.name // "") == "" then null else .name end),
        healthy: ((.clientURLs // []) as $urls
          | any($health[]; .health == true and (.endpoint as $e | any($urls[]; . == $e))))
      }] as $members
    | {reachable: true, members: ($members | length), healthy: ($members | map(select(.healthy)) | length),
       leader: (first($members[] | select(.id == $leader) | .name) // null),
       member_health: [$members[] | {name, healthy}]}' <<<"$etcd_members")"
else
  etcd_field='{"reachable":false,"members":0,"healthy":0,"leader":null,"member_health":[]}'
fi

warnings_field="$(jq -cn '$ARGS.positional' --args -- "${warnings[@]}")"
kc_succeed false "api_ready:=${api_ready}" "nodes:=${nodes_field}" "nodes_truncated:=${nodes_truncated}" \
  "etcd:=${etcd_field}" "counts:=${counts_field}" "warnings:=${warnings_field}"
