# refresh-join: on a healthy control plane, a fresh short-TTL bootstrap token and, when asked, a fresh
# certificate key (kubeadm init phase upload-certs), written to SecureString parameters. Every run
# mints new material on purpose (that is what it is for); repeating it is safe.
KC_STEP=refresh-join
kc_require_params ClusterName TokenTtl UploadCertificates
kc_require_provisioned
kc_load_identity

if [[ ! -f "$KC_ADMIN_CONF" ]] || ! kc_api_answers "$KC_ADMIN_CONF"; then
  kc_fail control-plane-unhealthy "no answering control plane on this node"
fi

token_file=""
kc_tmpfile token_file
kc_capture_secret token-create-failed "$token_file" kubeadm token create --ttl "$SSM_TokenTtl"
kc_put_secret "$(kc_join_param_name token)" "$token_file"

certificate_key_refreshed=false
if [[ "$SSM_UploadCertificates" == true ]]; then
  key_file=""
  kc_tmpfile key_file
  kc_capture_secret upload-certs-failed "$key_file" kubeadm init phase upload-certs --upload-certs
  kc_put_secret "$(kc_join_param_name certificate-key)" "$key_file"
  certificate_key_refreshed=true
fi

kc_succeed true "node_name=${KC_NODE_NAME}" "token_ttl=${SSM_TokenTtl}" \
  "certificate_key_refreshed:=${certificate_key_refreshed}"
