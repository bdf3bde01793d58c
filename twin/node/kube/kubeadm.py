"""kubeadm on each host: init, join, reset, token create, upload-certs.

Bootstrap tokens expire (default TTL 24 h) and are checked at join; the uploaded-certs secret expires
2 h after upload and only the latest certificate key decrypts it; joins pin the CA by its public-key
hash; a control-plane join adds an etcd member (twin/node/kube/etcd.py); `kubeadm reset` removes the
local member only while etcd has quorum.
"""

from __future__ import annotations

import base64

import yaml

from twin.node.kube.etcd import etcd_id
from twin.node.kube.state import (
    _TOKEN_ALPHABET,
    CERTIFICATE_KEY_TTL_SECONDS,
    DEFAULT_TOKEN_TTL_SECONDS,
    KUBEADM_API_VERSION,
    ClusterState,
    Host,
    KubeError,
    _Epoch,
    parse_duration,
)
from twin.node.pki import make_ca


def _documents(config_text: str) -> dict[str, dict]:
    try:
        documents = [doc for doc in yaml.safe_load_all(config_text) if doc]
    except yaml.YAMLError as error:
        raise KubeError(f"error converting YAML to JSON: {error}") from error
    by_kind: dict[str, dict] = {}
    for document in documents:
        if document.get("apiVersion") != KUBEADM_API_VERSION:
            raise KubeError(f"unsupported kubeadm config apiVersion {document.get('apiVersion')!r}")
        by_kind[document.get("kind", "")] = document
    return by_kind


def _kubelet_args(node_registration: dict) -> dict[str, str]:
    extra = node_registration.get("kubeletExtraArgs") or []
    if not isinstance(extra, list) or not all(isinstance(arg, dict) and "name" in arg for arg in extra):
        raise KubeError(
            "json: cannot unmarshal object into Go struct field NodeRegistrationOptions"
            ".nodeRegistration.kubeletExtraArgs of type []v1beta4.Arg"
        )
    return {arg["name"]: str(arg.get("value", "")) for arg in extra}


def node_labels(kubelet_args: dict[str, str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in filter(None, kubelet_args.get("node-labels", "").split(",")):
        key, _, value = pair.partition("=")
        labels[key] = value
    return labels


class Kubeadm(ClusterState):
    """kubeadm init / join / reset / token create / upload-certs.

    Uses the etcd part (members added, dropped, quorum), the API server part (Node registration,
    kubeconfigs, which API answers) and the kubelet part (Node readiness).
    """

    def set_kubeadm_version(self, instance_id: str, version: str) -> None:
        with self._lock:
            self.host(instance_id).kubeadm_version = version

    def kubeadm_version(self, instance_id: str) -> str:
        return self.host(instance_id).kubeadm_version

    def kubeadm_init(self, instance_id: str, config_text: str, *, upload_certs: bool) -> str:
        with self._lock:
            host = self._live_host(instance_id)
            self._preflight_clean(host)
            configs = _documents(config_text)
            init = configs.get("InitConfiguration", {})
            cluster = configs.get("ClusterConfiguration", {})
            registration = init.get("nodeRegistration") or {}
            kubelet_args = _kubelet_args(registration)
            node_name = registration.get("name") or host.private_dns
            endpoint = cluster.get("controlPlaneEndpoint")
            if not endpoint:
                raise KubeError("controlPlaneEndpoint is required for a highly available control plane")
            networking = cluster.get("networking") or {}
            self._check_endpoint_reaches(host, endpoint)

            epoch = self._current
            split_brain = self._live_control_plane(epoch) is not None if epoch else False
            if not split_brain:
                number = max(self._epochs, default=0) + 1
                epoch = _Epoch(
                    number=number,
                    ca=make_ca(self._now()),
                    admin_client_key=self._secret(base64.b64encode(self._rng.randbytes(48)).decode()),
                    control_plane_endpoint=endpoint,
                    pod_subnet=networking.get("podSubnet", ""),
                    service_subnet=networking.get("serviceSubnet", ""),
                    kubernetes_version=str(cluster.get("kubernetesVersion", "")),
                    cluster_id=etcd_id(f"cluster/{number}/{endpoint}"),
                )
                self._epochs[number] = epoch
                self._current = epoch
            assert epoch is not None
            self._init_counts[epoch.number] = self._init_counts.get(epoch.number, 0) + 1

            token = self._issue_token(epoch, DEFAULT_TOKEN_TTL_SECONDS)
            certificate_key = self._upload_certs(epoch) if upload_certs else None
            self._add_member(epoch, host, node_name)
            self._register_node(epoch, host, node_name, kubelet_args, control_plane=True)
            self._write_control_plane_files(epoch, host)
            self._record(
                "kubeadm-init", instance_id, epoch=epoch.number, node=node_name, split_brain=split_brain
            )
            join = (
                f"kubeadm join {endpoint} --token {token} --discovery-token-ca-cert-hash {epoch.ca.cert_hash}"
            )
            lines = ["Your Kubernetes control-plane has initialized successfully!", ""]
            if certificate_key:
                lines += [f"  {join} --control-plane --certificate-key {certificate_key}", ""]
            lines += [f"  {join}", ""]
            return "\n".join(lines)

    def kubeadm_join(self, instance_id: str, config_text: str) -> str:
        with self._lock:
            host = self._live_host(instance_id)
            self._preflight_clean(host)
            join = _documents(config_text).get("JoinConfiguration")
            if join is None:
                raise KubeError("no JoinConfiguration found in the config file")
            bootstrap = (join.get("discovery") or {}).get("bootstrapToken") or {}
            registration = join.get("nodeRegistration") or {}
            kubelet_args = _kubelet_args(registration)
            node_name = registration.get("name") or host.private_dns
            control_plane = join.get("controlPlane")
            endpoint = bootstrap.get("apiServerEndpoint", "")

            epoch = self._current
            if epoch is None or epoch.control_plane_endpoint != endpoint:
                raise KubeError(
                    "error execution phase preflight: couldn't validate the identity of the API Server: "
                    f'Get "https://{endpoint}/api/v1/namespaces/kube-public/configmaps/cluster-info": '
                    "dial tcp: connect: connection refused"
                )
            self._require_api(epoch)
            token = str(bootstrap.get("token", ""))
            if epoch.tokens.get(token, float("-inf")) <= self._now():
                epoch.tokens.pop(token, None)
                raise KubeError(
                    "error execution phase preflight: couldn't validate the identity of the API Server: "
                    "could not find a JWS signature in the cluster-info ConfigMap for token ID "
                    f'"{token.partition(".")[0]}"'
                )
            pinned = bootstrap.get("caCertHashes") or []
            if epoch.ca.cert_hash not in pinned:
                raise KubeError(
                    "error execution phase preflight: couldn't validate the identity of the API Server: "
                    f"cluster CA found in cluster-info ConfigMap is invalid: none of the public keys "
                    f'"{epoch.ca.cert_hash}" are pinned'
                )
            existing = epoch.nodes.get(node_name)
            if existing and self._node_ready(epoch, existing):
                raise KubeError(
                    f'error execution phase kubelet-start: a Node with name "{node_name}" and status '
                    '"Ready" already exists in the cluster. You must delete the existing Node or change '
                    "the name of this new joining Node"
                )
            if control_plane is not None:
                self._check_certificate_key(epoch, str(control_plane.get("certificateKey", "")))
                self._check_can_add_member(epoch)
                self._add_member(epoch, host, node_name)
            self._register_node(epoch, host, node_name, kubelet_args, control_plane=control_plane is not None)
            if control_plane is not None:
                self._write_control_plane_files(epoch, host)
            else:
                self._write_node_files(epoch, host)
            role = "control-plane" if control_plane is not None else "worker"
            self._record("kubeadm-join", instance_id, epoch=epoch.number, node=node_name, role=role)
            return "This node has joined the cluster.\n"

    def kubeadm_reset(self, instance_id: str) -> str:
        with self._lock:
            host = self._live_host(instance_id)
            epoch = self._epochs.get(host.epoch) if host.epoch else None
            removed_member = False
            if epoch and instance_id in epoch.members and self._has_quorum(epoch):
                self._drop_member(epoch, instance_id)
                removed_member = True
            host.kubelet_running = False
            host.epoch = None
            for relative in (
                "etc/kubernetes/admin.conf",
                "etc/kubernetes/kubelet.conf",
                "etc/kubernetes/pki/ca.crt",
            ):
                (host.root / relative).unlink(missing_ok=True)
            self._record("kubeadm-reset", instance_id, removed_etcd_member=removed_member)
            return "[reset] Deleted contents of the etcd data directory\n"

    def token_create(self, instance_id: str, ttl: str | None) -> str:
        with self._lock:
            epoch = self._admin_epoch_on(instance_id)
            seconds = parse_duration(ttl) if ttl is not None else DEFAULT_TOKEN_TTL_SECONDS
            token = self._issue_token(epoch, seconds)
            self._record("token-create", instance_id, epoch=epoch.number, ttl_seconds=seconds)
            return token

    def upload_certs(self, instance_id: str) -> str:
        with self._lock:
            epoch = self._admin_epoch_on(instance_id)
            key = self._upload_certs(epoch)
            self._record("upload-certs", instance_id, epoch=epoch.number)
            return key

    def _check_endpoint_reaches(self, host: Host, endpoint: str) -> None:
        """init's kubeconfigs (admin.conf, super-admin.conf, kubelet.conf) point at controlPlaneEndpoint:
        once its own API server is up, every call init makes goes through the load balancer there, so
        this host must be one of its targets (kubeadm retries for minutes while a just-registered target
        passes its health checks; a host the load balancer does not know is never reached)."""
        routing = self._endpoint_routing
        registered = routing.registered_behind(endpoint) if routing is not None else None
        if registered is None or host.instance_id in registered:
            return
        self._record("kubeadm-init-endpoint-unreachable", host.instance_id, endpoint=endpoint)
        raise KubeError(
            "error execution phase upload-config/kubeadm: error uploading the kubeadm ClusterConfiguration: "
            f'unable to create ConfigMap: Post "https://{endpoint}/api/v1/namespaces/kube-system/configmaps'
            f'?timeout=10s": dial tcp {endpoint}: i/o timeout'
        )

    def _preflight_clean(self, host: Host) -> None:
        for relative in ("etc/kubernetes/kubelet.conf", "etc/kubernetes/admin.conf"):
            if (host.root / relative).exists():
                raise KubeError(
                    "error execution phase preflight: [preflight] Some fatal errors occurred:\n"
                    f"\t[ERROR FileAvailable--{relative.replace('/', '-')}]: /{relative} already exists"
                )

    def _issue_token(self, epoch: _Epoch, ttl_seconds: float) -> str:
        pick = self._rng.choice
        token = "".join(pick(_TOKEN_ALPHABET) for _ in range(6)) + "."
        token += "".join(pick(_TOKEN_ALPHABET) for _ in range(16))
        epoch.tokens[self._secret(token)] = self._now() + ttl_seconds
        return token

    def _upload_certs(self, epoch: _Epoch) -> str:
        epoch.certificate_key = self._secret(self._rng.randbytes(32).hex())
        epoch.certificate_key_expiry = self._now() + CERTIFICATE_KEY_TTL_SECONDS
        return epoch.certificate_key

    def _check_certificate_key(self, epoch: _Epoch, key: str) -> None:
        if epoch.certificate_key is None or epoch.certificate_key_expiry <= self._now():
            raise KubeError(
                "error execution phase control-plane-prepare/download-certs: error downloading certs: "
                'error downloading the secret: Secret "kubeadm-certs" was not found in the "kube-system" '
                "Namespace. This Secret might have expired. Please, run `kubeadm init phase upload-certs "
                "--upload-certs` on a control plane to generate a new one"
            )
        if key != epoch.certificate_key:
            raise KubeError(
                "error execution phase control-plane-prepare/download-certs: error downloading certs: "
                "error decoding certs: failed to decrypt data: cipher: message authentication failed"
            )

    def _write_node_files(self, epoch: _Epoch, host: Host) -> None:
        kube = host.root / "etc/kubernetes"
        (kube / "pki").mkdir(parents=True, exist_ok=True)
        (kube / "pki/ca.crt").write_text(epoch.ca.cert_pem)
        kubelet_pem = "/var/lib/kubelet/pki/kubelet-client-current.pem"
        credentials = {"client-certificate": kubelet_pem, "client-key": kubelet_pem}
        (kube / "kubelet.conf").write_text(self._kubeconfig(epoch, "system:node", credentials))

    def _write_cluster_identity_files(self, epoch: _Epoch, host: Host) -> None:
        """The rest of what `kubeadm init` makes and `join --control-plane` downloads, which a backup
        carries (stand-ins: only their presence and bytes matter to the scripts), and etcd's data
        directory's parent, where the backup document writes its snapshot."""
        pki = host.root / "etc/kubernetes/pki"
        for relative in (
            "ca.key",
            "sa.key",
            "sa.pub",
            "front-proxy-ca.crt",
            "front-proxy-ca.key",
            "etcd/ca.key",
        ):
            path = pki / relative
            path.write_text(f"kcluster twin {relative} of cluster epoch {epoch.number}\n")
            path.chmod(0o600)
        (host.root / "var/lib/etcd").mkdir(parents=True, exist_ok=True)

    def _write_control_plane_files(self, epoch: _Epoch, host: Host) -> None:
        host.apiserver_running = host.etcd_running = True
        host.apiserver_version = epoch.kubernetes_version or host.kubeadm_version
        host.certificates_issued_at = self._now()
        self._write_node_files(epoch, host)
        # kubeadm's etcd PKI; the twin's etcd CA is the cluster CA (etcdctl only checks the files exist)
        etcd_pki = host.root / "etc/kubernetes/pki/etcd"
        etcd_pki.mkdir(parents=True, exist_ok=True)
        (etcd_pki / "ca.crt").write_text(epoch.ca.cert_pem)
        (etcd_pki / "healthcheck-client.crt").write_text(epoch.ca.cert_pem)
        (etcd_pki / "healthcheck-client.key").write_text(f"etcd healthcheck client of epoch {epoch.number}\n")
        (etcd_pki / "healthcheck-client.key").chmod(0o600)
        self._write_cluster_identity_files(epoch, host)
        admin = host.root / "etc/kubernetes/admin.conf"
        admin.write_text(
            self._kubeconfig(epoch, "kubernetes-admin", {"client-key-data": epoch.admin_client_key})
        )
        admin.chmod(0o600)
