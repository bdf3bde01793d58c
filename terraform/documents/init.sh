# init: kubeadm init on the first control plane of a cluster epoch, then publish the join material
# (bootstrap token, certificate key, CA cert hash) and the admin kubeconfig to SSM parameters.
# Re-running it on a node that already runs the control plane only re-publishes (changed: false).
# kubeadm init mints no long-lived secret: its bootstrap token gets the cluster's short join_token_ttl
# (InitConfiguration bootstrapTokens) instead of kubeadm's 24 h default, certificates are uploaded
# afterwards by `kubeadm init phase upload-certs` (whose key goes straight to a 0600 file), and its
# output is logged redacted only (kc_run_logged).
KC_STEP=init
kc_require_params ClusterName KubernetesVersion ControlPlaneEndpoint PodCidr ServiceCidr CniManifestUrl
kc_require_provisioned
kc_load_identity
kc_require_kubeadm_version
kc_load_cluster_config
kc_scrub_logs

publish_join_material() {
  local hash_file="" token_file="" key_file=""
  kc_tmpfile hash_file
  kc_ca_cert_hash >"$hash_file"
  KC_CA_HASH="$(<"$hash_file")"
  kc_put_plain "$(kc_join_param_name ca-cert-hash)" "$hash_file"

  kc_tmpfile token_file
  kc_capture_secret token-create-failed "$token_file" kubeadm token create --ttl "$KC_JOIN_TOKEN_TTL"
  kc_put_secret "$(kc_join_param_name token)" "$token_file"

  # upload-certs prints the new certificate key on its last line.
  kc_tmpfile key_file
  kc_capture_secret upload-certs-failed "$key_file" kubeadm init phase upload-certs --upload-certs
  kc_put_secret "$(kc_join_param_name certificate-key)" "$key_file"

  kc_put_secret "/kcluster/${SSM_ClusterName}/admin/kubeconfig" "$KC_ADMIN_CONF" --tier Advanced
}

# apply_cni: Calico's manifest, with its images pulled from the cluster's CNI registry. Upstream names
# them on Docker Hub (docker.io/calico/*), whose anonymous pulls are rate-limited per IP (and every node
# behind one NAT gateway shares that IP); Calico publishes the same images at quay.io/calico, the
# default of cni.image_registry in the cluster config, which may also name a mirror.
apply_cni() {
  local manifest="" stray
  kc_tmpfile manifest
  if ! curl -fsSL --retry 5 -o "$manifest" "$SSM_CniManifestUrl"; then
    kc_fail cni-failed "cannot download the CNI manifest ${SSM_CniManifestUrl}"
  fi
  sed -i -E "s#^([[:space:]-]*image:[[:space:]]*[\"']?)(docker\.io/)?calico/#\1${KC_CNI_IMAGE_REGISTRY}/#" "$manifest"
  stray="$(sed -n -E "s/^[[:space:]-]*image:[[:space:]]*[\"']?([^\"'[:space:]]+).*/\1/p" "$manifest" \
    | awk -v registry="${KC_CNI_IMAGE_REGISTRY}/" 'index($0, registry) != 1' | sort -u | paste -sd ' ' -)"
  if [[ -n "$stray" ]]; then
    kc_fail cni-image-unmirrored "the CNI manifest pulls images from outside ${KC_CNI_IMAGE_REGISTRY}: ${stray}"
  fi
  kc_run_logged cni-failed cni-apply kubectl --kubeconfig "$KC_ADMIN_CONF" apply -f "$manifest"
}

if [[ -f "$KC_ADMIN_CONF" ]]; then
  if ! kc_api_answers "$KC_ADMIN_CONF"; then
    # Half-initialized or left over: re-running init here could start a second cluster. Let the
    # control loop replace the instance instead.
    kc_fail stale-control-plane "admin.conf exists but the API server does not answer"
  fi
  kc_log "control plane already initialized on ${KC_NODE_NAME}; re-publishing join material"
  # A first run may have stopped before the CNI went in; apply is idempotent.
  apply_cni
  publish_join_material
  kc_succeed false "node_name=${KC_NODE_NAME}" "ca_cert_hash=${KC_CA_HASH}"
fi

init_config=""
kc_tmpfile init_config
cat >"$init_config" <<EOF
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- ttl: "${KC_JOIN_TOKEN_TTL}"
  usages: ["signing", "authentication"]
  groups: ["system:bootstrappers:kubeadm:default-node-token"]
nodeRegistration:
  name: "${KC_NODE_NAME}"
$(kc_kubelet_extra_args_yaml "  ")
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: "v${SSM_KubernetesVersion}"
controlPlaneEndpoint: "${SSM_ControlPlaneEndpoint}"
networking:
  podSubnet: "${SSM_PodCidr}"
  serviceSubnet: "${SSM_ServiceCidr}"
EOF

kc_log "kubeadm init on ${KC_NODE_NAME} (${KC_PROVIDER_ID})"
kc_run_logged kubeadm-failed kubeadm-init kubeadm init --config "$init_config"
KC_CHANGED=true
systemctl enable kubelet

apply_cni

publish_join_material
kc_succeed true "node_name=${KC_NODE_NAME}" "ca_cert_hash=${KC_CA_HASH}"
