#!/usr/bin/env bash
# kcluster node scripts: the shared prelude. Each SSM document's script is this file followed by
# <document key>.sh, run by the SSM agent as root on an Ubuntu 24.04 node. Document parameters arrive
# as environment variables SSM_<Name> (interpolationType ENV_VAR), so no value is ever shell text;
# every value is still validated again here against the document's allowedPattern.
#
# Contract with the caller (the reactor/reconciler Lambdas read the command output):
#   * exactly one JSON line on stdout, at the end:
#     {"ok": bool, "step": "<document key>", "changed": bool, ...}, plus "error" and "message" and a
#     non-zero exit status on failure;
#   * everything else goes to stderr; secrets (bootstrap tokens, certificate keys, the admin
#     kubeconfig) never reach a command line, stdout or stderr: they live in 0600 temp files removed
#     by the EXIT trap, and reach SSM with `aws ssm put-parameter --value file://<tmp>`.
#
# Test seam: KCLUSTER_ROOT (empty on real nodes) prefixes every absolute path the scripts touch, so the
# local twin can run them in a per-instance sandbox directory.
#
# shellcheck disable=SC2154,SC2317
# SC2154: SSM_* come from the agent's environment (validated by kc_require_params before any use).
# SC2317: this prelude is a library; each document calls only some of its functions.
set -euo pipefail
umask 077

# Keep the real stdout for the single result line; everything else (ours and every tool's) to stderr.
exec 3>&1 1>&2

KCLUSTER_ROOT="${KCLUSTER_ROOT:-}"
KC_STEP="${KC_STEP:-unknown}"
KC_PROVISIONED_MARKER="${KCLUSTER_ROOT}/var/lib/kcluster/provisioned"
KC_KUBE_DIR="${KCLUSTER_ROOT}/etc/kubernetes"
# shellcheck disable=SC2034 # used by init and refresh-join only
KC_ADMIN_CONF="${KC_KUBE_DIR}/admin.conf"
KC_KUBELET_CONF="${KC_KUBE_DIR}/kubelet.conf"
KC_CA_CERT="${KC_KUBE_DIR}/pki/ca.crt"
KC_LOG_DIR="${KCLUSTER_ROOT}/var/log/kcluster"
KC_RESULT_SENT=false
KC_TMP_FILES=()

# Parameter patterns: the same regexes as allowedPattern in documents.json.
declare -A KC_PATTERNS=(
  [ClusterName]='^[a-z][a-z0-9-]{1,30}[a-z0-9]$'
  [KubernetesVersion]='^1\.[0-9]{2}\.[0-9]{1,2}$'
  [ControlPlaneEndpoint]='^[A-Za-z0-9][A-Za-z0-9.-]{0,252}:[0-9]{2,5}$'
  [PodCidr]='^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$'
  [ServiceCidr]='^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$'
  [CniManifestUrl]='^https://[A-Za-z0-9./_-]{1,400}\.ya?ml$'
  [TokenTtl]='^[1-9][0-9]{0,3}[mh]$'
  [UploadCertificates]='^(true|false)$'
  [InstanceId]='^i-[0-9a-f]{8,17}$'
  [RemoveEtcdMember]='^(true|false)$'
  [DrainTimeout]='^[1-9][0-9]{0,4}s$'
)

# Shapes of join material read back from SSM, checked before it goes into a kubeadm config file.
KC_TOKEN_SHAPE='^[a-z0-9]{6}\.[a-z0-9]{16}$'
KC_CA_HASH_SHAPE='^sha256:[a-f0-9]{64}$'
KC_CERT_KEY_SHAPE='^[a-f0-9]{64}$'
# An image registry host (optional port) and path, no scheme and no tag: quay.io/calico, a mirror.
KC_IMAGE_REGISTRY_SHAPE='^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9._-]+)*$'
# The cluster's KMS key, read from the cluster config: every SecureString is written with it.
KC_KMS_KEY_SHAPE='^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]{1,64}$'

# jq: the instance id a Node's spec.providerID (aws:///<az>/<instance-id>) names, "" when none. Nodes
# are matched to instances by it, never by a label (the Node's own kubelet could rewrite a label; the
# providerID cannot change).
# shellcheck disable=SC2034 # used by refresh-join, drain-remove and health
KC_JQ_INSTANCE_ID='def instance_id: ((.spec.providerID // "") | capture("^aws:///[^/]*/(?<id>i-[0-9a-f]+)$").id // "");'

kc_log() {
  printf 'kcluster[%s]: %s\n' "$KC_STEP" "$*" >&2
}

# kc_emit OK CHANGED [ERROR MESSAGE] [FIELD...]: write the result line. A FIELD is key=value (a JSON
# string) or key:=value (raw JSON); keys are fixed by the scripts, values are passed to jq as data.
kc_emit() {
  local ok="$1" changed="$2"
  shift 2
  local args=(--argjson ok "$ok" --arg step "$KC_STEP" --argjson changed "$changed")
  # shellcheck disable=SC2016 # jq variables, not shell ones
  local filter='{ok: $ok, step: $step, changed: $changed}'
  local index=0 field key value
  for field in "$@"; do
    index=$((index + 1))
    if [[ "$field" == *:=* ]]; then
      key="${field%%:=*}"
      value="${field#*:=}"
      args+=(--argjson "v${index}" "$value")
    else
      key="${field%%=*}"
      value="${field#*=}"
      args+=(--arg "v${index}" "$value")
    fi
    filter+=" + {\"${key}\": \$v${index}}"
  done
  jq -cn "${args[@]}" "$filter" >&3
  KC_RESULT_SENT=true
}

kc_succeed() {
  local changed="$1"
  shift
  kc_emit true "$changed" "$@"
  exit 0
}

# kc_fail CODE MESSAGE [EXIT_STATUS] [FIELD...]
kc_fail() {
  local code="$1" message="$2" status="${3:-1}"
  shift 2
  [[ $# -gt 0 ]] && shift
  kc_log "error ${code}: ${message}"
  kc_emit false "${KC_CHANGED:-false}" "error=${code}" "message=${message}" "$@"
  exit "$status"
}

kc_on_exit() {
  local status=$?
  local file
  for file in "${KC_TMP_FILES[@]}"; do
    rm -f -- "$file"
  done
  if [[ "$KC_RESULT_SENT" != true ]]; then
    # An unexpected failure under set -e: still honour the one-result-line contract.
    kc_emit false "${KC_CHANGED:-false}" "error=script-failed" \
      "message=unexpected failure (exit ${status}) near line ${KC_FAILED_LINE:-unknown}"
    [[ $status -eq 0 ]] && status=1
  fi
  exit "$status"
}
trap 'KC_FAILED_LINE=$LINENO' ERR
trap kc_on_exit EXIT

# kc_tmpfile VAR: a fresh 0600 file for secret material, removed on exit.
kc_tmpfile() {
  local -n kc_tmpfile_out="$1"
  kc_tmpfile_out="$(mktemp "${TMPDIR:-/tmp}/kcluster.XXXXXXXX")"
  chmod 0600 "$kc_tmpfile_out"
  KC_TMP_FILES+=("$kc_tmpfile_out")
}

# The SSM Agent's version, "unknown" when it cannot be read (Ubuntu's agent is a snap).
kc_ssm_agent_version() {
  local version=""
  version="$(snap list amazon-ssm-agent 2>/dev/null | awk 'NR == 2 { print $2 }')" || version=""
  printf '%s' "${version:-unknown}"
}

# kc_require_params NAME...: every SSM_<NAME> must be set and match its allowedPattern. Parameters come
# as environment variables (interpolationType ENV_VAR), which needs SSM Agent 3.3.2746.0 or newer: an
# older agent runs the script with none of them, which is told apart from one missing parameter.
kc_require_params() {
  local name variable
  if ! compgen -v SSM_ >/dev/null; then
    kc_fail ssm-agent-too-old "no document parameter reached the script (no SSM_* variable): ENV_VAR parameters need SSM Agent 3.3.2746.0 or newer; this node's agent is $(kc_ssm_agent_version)" 2
  fi
  for name in "$@"; do
    variable="SSM_${name}"
    if [[ -z "${!variable+set}" ]]; then
      kc_fail invalid-parameter "parameter ${name} is missing" 2
    fi
    if [[ ! "${!variable}" =~ ${KC_PATTERNS[$name]} ]]; then
      kc_fail invalid-parameter "parameter ${name} does not match its allowed pattern" 2
    fi
  done
}

kc_require_provisioned() {
  if [[ ! -f "$KC_PROVISIONED_MARKER" ]]; then
    kc_fail not-provisioned "node provisioning has not finished (no ${KC_PROVISIONED_MARKER#"$KCLUSTER_ROOT"})" 3
  fi
}

# Node identity from cloud-init's cached instance data (no network).
kc_load_identity() {
  KC_INSTANCE_ID="$(cloud-init query v1.instance_id)"
  KC_AZ="$(cloud-init query v1.availability_zone)"
  KC_REGION="$(cloud-init query v1.region)"
  KC_NODE_NAME="$(cloud-init query v1.local_hostname)"
  KC_PROVIDER_ID="aws:///${KC_AZ}/${KC_INSTANCE_ID}"
  KC_NODE_LABELS="kcluster.io/instance-id=${KC_INSTANCE_ID}"
}

kc_require_kubeadm_version() {
  local installed
  installed="$(kubeadm version -o short)"
  if [[ "$installed" != "v${SSM_KubernetesVersion}" ]]; then
    kc_fail version-mismatch "kubeadm ${installed} is installed, the cluster wants v${SSM_KubernetesVersion}"
  fi
}

# kc_run_logged CODE LOGNAME CMD...: run a tool whose output may contain secrets (kubeadm init prints
# join commands with a token) with its raw output in a 0600 temp file removed on exit; only a redacted
# copy is kept, as a 0600 log on the node. When it fails, fail with CODE and its last line, redacted.
kc_run_logged() {
  local code="$1" log_name="$2" raw="" status=0
  shift 2
  mkdir -p "$KC_LOG_DIR"
  local log="${KC_LOG_DIR}/${log_name}.log"
  kc_tmpfile raw
  "$@" >"$raw" 2>&1 || status=$?
  kc_redact <"$raw" >"$log"
  : >"$raw"
  if ((status != 0)); then
    local last
    last="$(grep -v '^[[:space:]]*$' "$log" | tail -n 1 || true)"
    kc_fail "$code" "${1} ${2:-} failed: ${last:-no output}"
  fi
}

# kc_scrub_logs: redact, in place, logs an earlier version of these scripts left with secrets in them.
kc_scrub_logs() {
  local log scrubbed=""
  [[ -d "$KC_LOG_DIR" ]] || return 0
  kc_tmpfile scrubbed
  for log in "$KC_LOG_DIR"/*.log; do
    [[ -f "$log" ]] || continue
    kc_redact <"$log" >"$scrubbed"
    cat "$scrubbed" >"$log"
  done
}

# kc_capture_secret CODE FILE CMD...: the last line CMD prints (a token or a key), without its
# newline, into FILE (AWS CLI file:// reads values verbatim); never into a variable or the log.
kc_capture_secret() {
  local code="$1" file="$2" raw
  shift 2
  kc_tmpfile raw
  if ! "$@" >"$raw"; then
    kc_fail "$code" "${1} ${2:-} ${3:-} failed"
  fi
  tail -n 1 "$raw" | tr -d '\n' >"$file"
  if [[ ! -s "$file" ]]; then
    kc_fail "$code" "${1} ${2:-} ${3:-} printed nothing"
  fi
}

kc_redact() {
  sed -E -e 's/(--token|--certificate-key)([ =]+)[^ ]+/\1\2<redacted>/g' \
    -e 's/[a-z0-9]{6}\.[a-z0-9]{16}/<redacted-token>/g' -e 's/[a-fA-F0-9]{64}/<redacted-key>/g'
}

kc_api_answers() {
  local kubeconfig="$1" answer
  answer="$(kubectl --kubeconfig "$kubeconfig" get --raw /readyz 2>/dev/null)" || return 1
  [[ "$answer" == ok ]]
}

# kc_local_api_answers: this control plane's own kube-apiserver answers /readyz (admin.conf points at the
# load balancer, which may answer from another control plane); its serving certificate always names
# "kubernetes", and kubeadm's default bind port is 6443.
kc_local_api_answers() {
  local answer
  [[ -f "$KC_ADMIN_CONF" ]] || return 1
  answer="$(kubectl --kubeconfig "$KC_ADMIN_CONF" --server https://127.0.0.1:6443 \
    --tls-server-name kubernetes get --raw /readyz 2>/dev/null)" || return 1
  [[ "$answer" == ok ]]
}

# kc_control_plane_serving: this node is a working control plane: its etcd member is a started member
# of the cluster (named after the node, with client URLs) and its own kube-apiserver answers.
kc_control_plane_serving() {
  local members
  members="$(kc_etcdctl member list -w json 2>/dev/null)" || return 1
  # shellcheck disable=SC2016 # jq variables, not shell ones
  jq -e --arg name "$KC_NODE_NAME" \
    'any(.members[]?; .name == $name and ((.clientURLs // []) | length) > 0)' <<<"$members" >/dev/null \
    || return 1
  kc_local_api_answers
}

kc_kubelet_active() {
  systemctl is-active --quiet kubelet
}

kc_join_param_name() {
  printf '/kcluster/%s/join/%s' "$SSM_ClusterName" "$1"
}

# kc_load_cluster_config: KC_KMS_KEY_ARN, KC_JOIN_TOKEN_TTL and KC_CNI_IMAGE_REGISTRY from
# /kcluster/<name>/config (which every node role may read), once per script run. Without the cluster's key no secret is written.
KC_CONFIG_LOADED=false
kc_load_cluster_config() {
  [[ "$KC_CONFIG_LOADED" == true ]] && return 0
  local config
  if ! config="$(kc_get_param "/kcluster/${SSM_ClusterName}/config")"; then
    kc_fail config-unreadable "cannot read /kcluster/${SSM_ClusterName}/config"
  fi
  if ! KC_KMS_KEY_ARN="$(jq -r '.kms_key_arn // ""' <<<"$config")" \
    || ! KC_JOIN_TOKEN_TTL="$(jq -r '.join_token_ttl // "15m"' <<<"$config")" \
    || ! KC_CNI_IMAGE_REGISTRY="$(jq -r '.cni.image_registry // "quay.io/calico"' <<<"$config")"; then
    kc_fail config-invalid "/kcluster/${SSM_ClusterName}/config is not JSON"
  fi
  if [[ ! "$KC_KMS_KEY_ARN" =~ $KC_KMS_KEY_SHAPE ]]; then
    kc_fail kms-key-unknown "/kcluster/${SSM_ClusterName}/config names no KMS key ARN (kms_key_arn)"
  fi
  if [[ ! "$KC_JOIN_TOKEN_TTL" =~ ${KC_PATTERNS[TokenTtl]} ]]; then
    kc_fail config-invalid "join_token_ttl in /kcluster/${SSM_ClusterName}/config is not a kubeadm duration"
  fi
  if [[ ! "$KC_CNI_IMAGE_REGISTRY" =~ $KC_IMAGE_REGISTRY_SHAPE ]]; then
    kc_fail config-invalid "cni.image_registry in /kcluster/${SSM_ClusterName}/config is not a registry host[/path]"
  fi
  KC_CONFIG_LOADED=true
}

# kc_put_secret NAME FILE [EXTRA ARGS...]: a SecureString under the cluster's KMS key; the value goes
# by file://, never on the command line.
kc_put_secret() {
  local name="$1" file="$2"
  shift 2
  kc_load_cluster_config
  aws ssm put-parameter --region "$KC_REGION" --name "$name" --type SecureString \
    --key-id "$KC_KMS_KEY_ARN" --value "file://${file}" --overwrite "$@" >/dev/null
}

kc_put_plain() {
  local name="$1" file="$2"
  aws ssm put-parameter --region "$KC_REGION" --name "$name" --type String \
    --value "file://${file}" --overwrite >/dev/null
}

# kc_get_param NAME: the (decrypted) value on stdout, for capture into a variable.
kc_get_param() {
  aws ssm get-parameter --region "$KC_REGION" --name "$1" --with-decryption \
    --query Parameter.Value --output text
}

# The CA public key hash, the pipeline the kubeadm documentation gives for --discovery-token-ca-cert-hash.
kc_ca_cert_hash() {
  local digest
  digest="$(openssl x509 -pubkey -in "$KC_CA_CERT" \
    | openssl rsa -pubin -outform der 2>/dev/null \
    | openssl dgst -sha256 -hex | sed 's/^.* //')"
  printf 'sha256:%s' "$digest"
}

# kc_joined_elsewhere: true when this node's cluster CA is not the one whose hash is published now.
# Unknown (nothing published, no CA file) counts as not elsewhere: never reset on a guess.
kc_joined_elsewhere() {
  local published
  [[ -f "$KC_CA_CERT" ]] || return 1
  published="$(kc_get_param "$(kc_join_param_name ca-cert-hash)" 2>/dev/null)" || return 1
  [[ "$published" =~ $KC_CA_HASH_SHAPE && "$(kc_ca_cert_hash)" != "$published" ]]
}

# kc_write_kubelet_args FILE INDENT: v1beta4 kubeletExtraArgs (a list of name/value pairs).
kc_kubelet_extra_args_yaml() {
  local indent="$1"
  printf '%skubeletExtraArgs:\n' "$indent"
  printf '%s- name: provider-id\n%s  value: "%s"\n' "$indent" "$indent" "$KC_PROVIDER_ID"
  printf '%s- name: node-labels\n%s  value: "%s"\n' "$indent" "$indent" "$KC_NODE_LABELS"
}

# kc_join ROLE: the whole of join-worker / join-control-plane. Joined already (kubelet.conf and an
# active kubelet; for a control plane also its etcd member started and its own API server answering)
# -> no-op; otherwise (after a kubeadm reset of what a failed join left) read the join material from
# SSM into variables (never argv), write a v1beta4 JoinConfiguration to a 0600 file and run kubeadm
# join with it.
kc_join() {
  local role="$1"
  kc_require_params ClusterName KubernetesVersion ControlPlaneEndpoint
  kc_require_provisioned
  kc_load_identity
  kc_require_kubeadm_version

  if [[ -f "$KC_KUBELET_CONF" ]]; then
    if ! kc_kubelet_active; then
      # A join that stopped half-way leaves kubelet.conf behind and makes kubeadm's preflight refuse.
      kc_log "kubelet.conf exists but kubelet is not running: resetting before joining again"
    elif kc_joined_elsewhere; then
      # Joined to an earlier cluster of this name, whose control planes are gone (a new one was
      # initialized since): "already joined" would be a lie.
      kc_log "joined to a cluster whose CA is not the published one: resetting before joining again"
    elif [[ "$role" == control-plane ]] && ! kc_control_plane_serving; then
      # A `join --control-plane` that failed after kubelet-start leaves kubelet.conf and a running
      # kubelet, with no etcd member or API server: kubeadm cannot resume it, only reset and rejoin.
      kc_log "kubelet runs but this control plane's etcd member or API server does not: resetting before joining again"
    else
      kc_log "${KC_NODE_NAME} has already joined"
      kc_succeed false "node_name=${KC_NODE_NAME}"
    fi
    kc_run_logged kubeadm-failed kubeadm-reset kubeadm reset --force
    KC_CHANGED=true
  fi

  local token ca_hash certificate_key=""
  if ! token="$(kc_get_param "$(kc_join_param_name token)")" \
    || ! ca_hash="$(kc_get_param "$(kc_join_param_name ca-cert-hash)")"; then
    kc_fail join-material-missing "no join material published for cluster ${SSM_ClusterName}"
  fi
  if [[ "$role" == control-plane ]] \
    && ! certificate_key="$(kc_get_param "$(kc_join_param_name certificate-key)")"; then
    kc_fail join-material-missing "no certificate key published for cluster ${SSM_ClusterName}"
  fi
  if [[ ! "$token" =~ $KC_TOKEN_SHAPE || ! "$ca_hash" =~ $KC_CA_HASH_SHAPE ]] \
    || [[ "$role" == control-plane && ! "$certificate_key" =~ $KC_CERT_KEY_SHAPE ]]; then
    kc_fail join-material-invalid "published join material is malformed"
  fi

  local join_config=""
  kc_tmpfile join_config
  {
    printf 'apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n'
    printf 'discovery:\n  bootstrapToken:\n'
    printf '    apiServerEndpoint: "%s"\n' "$SSM_ControlPlaneEndpoint"
    printf '    token: "%s"\n' "$token"
    printf '    caCertHashes:\n    - "%s"\n' "$ca_hash"
    if [[ "$role" == control-plane ]]; then
      printf 'controlPlane:\n  certificateKey: "%s"\n' "$certificate_key"
    fi
    printf 'nodeRegistration:\n  name: "%s"\n' "$KC_NODE_NAME"
    kc_kubelet_extra_args_yaml "  "
  } >"$join_config"
  unset token certificate_key

  kc_log "kubeadm join as ${role}: ${KC_NODE_NAME} (${KC_PROVIDER_ID})"
  kc_run_logged kubeadm-failed "kubeadm-join-${role}" kubeadm join --config "$join_config"
  KC_CHANGED=true
  systemctl enable kubelet
  kc_succeed true "node_name=${KC_NODE_NAME}"
}

# ----- scale-in: the API as the cluster admin, etcd membership, live instances -----

kc_kubectl() {
  kubectl --kubeconfig "$KC_ADMIN_CONF" "$@"
}

kc_require_api() {
  if [[ ! -f "$KC_ADMIN_CONF" ]] || ! kc_api_answers "$KC_ADMIN_CONF"; then
    kc_fail control-plane-unhealthy "no answering control plane on this node"
  fi
}

# kc_live_instances [ROLE]: "instance-id<TAB>private-ip<TAB>private-dns" lines, one per pending or
# running instance of the cluster (of ROLE when given).
kc_live_instances() {
  local filters=("Name=tag:kcluster:cluster,Values=${SSM_ClusterName}"
    "Name=instance-state-name,Values=pending,running")
  if [[ -n "${1:-}" ]]; then
    filters+=("Name=tag:kcluster:role,Values=$1")
  fi
  aws ec2 describe-instances --region "$KC_REGION" --filters "${filters[@]}" \
    --query 'Reservations[].Instances[].[InstanceId,PrivateIpAddress,PrivateDnsName]' --output text
}

# kubeadm's etcd PKI as the etcd container sees it: its static pod mounts /etc/kubernetes/pki/etcd from
# the host at the same path (no KCLUSTER_ROOT: that prefix is the host's, not the container's).
KC_ETCD_CONTAINER_PKI=/etc/kubernetes/pki/etcd
# Seconds between `member remove` attempts while etcd answers "unhealthy cluster": it refuses a
# membership change until its peers have been connected for a few seconds after the previous one.
KC_ETCD_RETRY_DELAYS=(1 2 4 8 8)

# kc_etcd_container: the id of this node's running etcd container (kubeadm's static pod), "" when none.
kc_etcd_container() {
  crictl ps --quiet --state running --label io.kubernetes.pod.namespace=kube-system \
    --label io.kubernetes.container.name=etcd | head -n 1
}

# kc_require_etcd_container: fail etcd-container-not-running when this node runs no etcd container.
# etcdctl lives only in that container, so a crashed (exited) etcd pod leaves nothing to exec into, not
# even to reach the other members: told apart from a member that runs but does not answer.
kc_require_etcd_container() {
  local container=""
  container="$(kc_etcd_container)" || container=""
  if [[ -z "$container" ]]; then
    kc_fail etcd-container-not-running "no running etcd container on this node (crictl ps lists none: kubeadm's etcd static pod crashed or has not started), so there is no etcdctl to run"
  fi
}

# etcdctl v3 against the local member with kubeadm's certificates, run inside the etcd static pod: no
# package puts etcdctl on the host (Ubuntu's is older than the etcd kubeadm runs), the etcd image
# carries the matching one. CRI exec passes no environment, so ETCDCTL_* set by a caller (endpoints,
# certificates, timeouts) travel as the equivalent flags; inside the container none of them is set, so
# etcdctl's refusal of a flag that shadows an ETCDCTL_* variable cannot trigger.
kc_etcdctl() {
  local container=""
  container="$(kc_etcd_container)" || container=""
  if [[ -z "$container" ]]; then
    kc_log "no running etcd container on this node (crictl ps found none)"
    return 1
  fi
  crictl exec "$container" etcdctl \
    --endpoints="${ETCDCTL_ENDPOINTS:-https://127.0.0.1:2379}" \
    --cacert="${ETCDCTL_CACERT:-${KC_ETCD_CONTAINER_PKI}/ca.crt}" \
    --cert="${ETCDCTL_CERT:-${KC_ETCD_CONTAINER_PKI}/healthcheck-client.crt}" \
    --key="${ETCDCTL_KEY:-${KC_ETCD_CONTAINER_PKI}/healthcheck-client.key}" \
    --dial-timeout="${ETCDCTL_DIAL_TIMEOUT:-2s}" \
    --command-timeout="${ETCDCTL_COMMAND_TIMEOUT:-5s}" \
    "$@"
}

# etcd prints 64-bit ids as JSON numbers; jq 1.6 reads numbers as doubles and would round them, so
# they become strings before jq sees them (and go to etcdctl as hex via printf '%x').
kc_etcd_ids_as_strings() {
  sed -E 's/"(ID|cluster_id|member_id|leader)": *([0-9]+)/"\1":"\2"/g'
}

# kc_etcd_snapshot: KC_ETCD_STATE, a JSON array with one object per member:
#   {id: "<decimal>", name, client_urls: [...], peer_hosts: [...], healthy: bool}
# A member is healthy when one of its client URLs answers `endpoint health`; an unstarted member (no
# client URLs) never is.
kc_etcd_snapshot() {
  local members health
  kc_require_etcd_container
  if ! members="$(kc_etcdctl member list -w json | kc_etcd_ids_as_strings)" || [[ -z "$members" ]]; then
    kc_fail etcd-unreachable "etcdctl member list failed against the local etcd member"
  fi
  # exits 1 when any member is unhealthy; its JSON still has every member's answer
  health="$(kc_etcdctl endpoint health --cluster -w json)" || true
  [[ "$health" == \[* ]] || health='[]'
  # shellcheck disable=SC2016 # jq variables, not shell ones
  KC_ETCD_STATE="$(jq -c --argjson health "$health" '
    [.members[] | {
      id: .ID,
      name: (.name // ""),
      client_urls: (.clientURLs // []),
      peer_hosts: [(.peerURLs // [])[] | sub("^[a-z]+://"; "") | sub(":[0-9]+$"; "")
        | ltrimstr("[") | rtrimstr("]")]
    } | .healthy = (.client_urls as $urls
        | any($health[]; .health == true and (.endpoint as $e | any($urls[]; . == $e)))) ]' <<<"$members")"
}

# kc_etcd_find_member NAME IP: the decimal id of the member named NAME or whose peer URL host is IP.
kc_etcd_find_member() {
  # shellcheck disable=SC2016 # jq variables, not shell ones
  jq -r --arg name "$1" --arg ip "$2" 'first(.[]
    | select(($name != "" and .name == $name) or ($ip != "" and any(.peer_hosts[]; . == $ip))))
    | .id' <<<"$KC_ETCD_STATE"
}

# kc_etcd_move_leader_off ID: when member ID leads, hand leadership to a healthy other member first.
# move-leader must reach the current leader, so it goes to the leaving member's own client URLs.
kc_etcd_move_leader_off() {
  local id="$1" status leader target urls
  status="$(kc_etcdctl endpoint status --cluster -w json)" || true
  [[ "$status" == \[* ]] || status='[]'
  leader="$(kc_etcd_ids_as_strings <<<"$status" | jq -r 'first(.[].Status.leader) // ""')"
  [[ "$leader" == "$id" ]] || return 0
  # shellcheck disable=SC2016 # jq variables, not shell ones
  target="$(jq -r --arg id "$id" 'first(.[] | select(.id != $id and .healthy)) | .id' <<<"$KC_ETCD_STATE")"
  # shellcheck disable=SC2016 # jq variables, not shell ones
  urls="$(jq -r --arg id "$id" '.[] | select(.id == $id) | .client_urls | join(",")' <<<"$KC_ETCD_STATE")"
  kc_log "etcd member $(printf '%x' "$id") leads: moving leadership to $(printf '%x' "$target")"
  if ! ETCDCTL_ENDPOINTS="$urls" kc_etcdctl move-leader "$(printf '%x' "$target")"; then
    kc_fail etcd-move-leader-failed "could not move etcd leadership off the leaving member"
  fi
}

# kc_etcd_remove_member ID: remove the member with decimal id ID from KC_ETCD_STATE's cluster.
# Quorum guard: with N members and H healthy, the N-1 left must keep floor((N-1)/2)+1 healthy, else
# refuse (quorum-risk, exit 4, nothing removed). Leadership moves away first; `member remove` is
# retried while etcd answers "unhealthy cluster". Returns 1 when etcd no longer knows the member.
kc_etcd_remove_member() {
  local id="$1" total healthy leaving_healthy
  # shellcheck disable=SC2016 # jq variables, not shell ones
  read -r total healthy leaving_healthy < <(jq -r --arg id "$id" \
    '[length, (map(select(.healthy)) | length), (map(select(.id == $id and .healthy)) | length)] | @tsv' \
    <<<"$KC_ETCD_STATE")
  local remaining_healthy=$((healthy - leaving_healthy)) needed=$(((total - 1) / 2 + 1))
  if ((remaining_healthy < needed)); then
    kc_fail quorum-risk "removing etcd member $(printf '%x' "$id") would leave ${remaining_healthy} healthy of $((total - 1)) members, below the quorum of ${needed}; ${healthy} of ${total} members are healthy now" 4
  fi
  if ((leaving_healthy == 1)); then
    kc_etcd_move_leader_off "$id"
  fi
  local delay output
  for delay in "${KC_ETCD_RETRY_DELAYS[@]}" last; do
    if output="$(kc_etcdctl member remove "$(printf '%x' "$id")" 2>&1)"; then
      kc_log "$output"
      return 0
    fi
    if [[ "$output" == *"member not found"* ]]; then
      kc_log "etcd member $(printf '%x' "$id") is already gone"
      return 1
    fi
    if [[ "$output" != *"unhealthy cluster"* || "$delay" == last ]]; then
      kc_fail etcd-remove-failed "etcdctl member remove failed: $(tail -n 1 <<<"$output")"
    fi
    kc_log "etcd refused the membership change (unhealthy cluster); retrying in ${delay}s"
    sleep "$delay"
  done
}

# ----- etcd backups (backup; the restore half will use the same) -----

KC_PATTERNS[BackupId]='^[0-9]{8}T[0-9]{6}Z$'
KC_PATTERNS[Tier]='^(frequent|daily)$'
# Where snapshots are written: kubeadm's etcd static pod mounts this hostPath at the same path, so a
# file etcdctl/etcdutl write inside the pod is the same file on the node.
# shellcheck disable=SC2034 # used by backup only
KC_ETCD_DATA_PARENT="${KCLUSTER_ROOT}/var/lib/etcd"

# etcdutl (snapshot status / restore: offline work on a snapshot file or data directory), run where
# kc_etcdctl runs etcdctl: inside kubeadm's etcd static pod, whose image carries it (no host has one).
kc_etcdutl() {
  local container=""
  container="$(kc_etcd_container)" || container=""
  if [[ -z "$container" ]]; then
    kc_log "no running etcd container on this node (crictl ps found none)"
    return 1
  fi
  crictl exec "$container" etcdutl "$@"
}

# kc_container_path PATH: a node's path as kubeadm's static pods see it (their hostPath mounts, such as
# /var/lib/etcd, keep the path; KCLUSTER_ROOT is only set where the node is a directory, in tests).
kc_container_path() {
  printf '%s' "${1#"${KCLUSTER_ROOT:-}"}"
}

# kc_snapshot_check FILE: KC_SNAPSHOT_STATUS (etcdutl snapshot status as JSON: hash, revision, totalKey,
# totalSize) and KC_SNAPSHOT_SHA256 (of the file), or fail snapshot-invalid. etcd appends the SHA-256 of the database
# to a snapshot it streams (the size is then 32 past a multiple of 512); `etcdutl snapshot restore`
# checks it, so a snapshot whose trailer does not match would be refused at the worst moment: refuse it now.
kc_snapshot_check() {
  local file="$1" size status trailer digest
  size="$(stat -c %s "$file")"
  if ((size < 512 + 32 || size % 512 != 32)); then
    kc_fail snapshot-invalid "the snapshot is ${size} bytes: not a database with etcd's SHA-256 trailer (truncated?)"
  fi
  trailer="$(tail -c 32 "$file" | od -An -v -tx1 | tr -d ' \n')"
  digest="$(head -c "$((size - 32))" "$file" | sha256sum | cut -d ' ' -f 1)"
  if [[ "$trailer" != "$digest" ]]; then
    kc_fail snapshot-invalid "the snapshot's SHA-256 does not match its trailer (corrupted)"
  fi
  if ! status="$(kc_etcdutl snapshot status "$(kc_container_path "$file")" -w json)" \
    || ! jq -e '(.revision | type) == "number" and (.hash | type) == "number" and .totalKey > 0' \
      <<<"$status" >/dev/null 2>&1; then
    kc_fail snapshot-invalid "etcdutl snapshot status refused the snapshot: $(tail -n 1 <<<"${status:-no output}")"
  fi
  # shellcheck disable=SC2034 # read by backup
  KC_SNAPSHOT_STATUS="$(jq -c '{hash, revision, total_keys: .totalKey, total_size: .totalSize}' <<<"$status")"
  # the whole file's, as stored: what a restore checks its download against
  # shellcheck disable=SC2034 # read by backup
  KC_SNAPSHOT_SHA256="$(sha256sum "$file" | cut -d ' ' -f 1)"
}
