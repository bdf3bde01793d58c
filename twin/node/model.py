"""One Kubernetes cluster as kubeadm, kubelet, kubectl and etcd see it: the twin's KubeModel.

The fake binaries on every sandbox's PATH reach it through twin/node/server.py; the invariant checks
read it directly. Time comes from the injected `now()` (virtual seconds), randomness from the injected
seeded RNG, so a seed replays exactly. All state sits behind one lock: tool calls arrive from
concurrent script runs.

Honoured (kubeadm/etcd): bootstrap tokens expire (default TTL 24 h) and are checked at join; the
uploaded-certs secret expires 2 h after upload and only the latest certificate key decrypts it; joins
pin the CA by its public-key hash; a control-plane join adds an etcd member and needs quorum of
started members (etcd's IsReadyToAddVotingMember) and is refused with "etcdserver: unhealthy cluster"
right after another membership change; `kubeadm reset` removes the local member only while etcd has
quorum; Nodes are Ready once their kubelet runs and a CNI manifest was applied.
"""

from __future__ import annotations

import base64
import re
import string
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from random import Random

import yaml

from twin.node.pki import ClusterCa, make_ca

DEFAULT_TOKEN_TTL_SECONDS = 24 * 3600
CERTIFICATE_KEY_TTL_SECONDS = 2 * 3600
# etcd refuses another membership change this soon after the last one.
MEMBERSHIP_SETTLE_SECONDS = 5.0
DEFAULT_KUBEADM_VERSION = "v1.33.5"
KUBEADM_API_VERSION = "kubeadm.k8s.io/v1beta4"
INSTANCE_ID_LABEL = "kcluster.io/instance-id"
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"

_TOKEN_ALPHABET = string.ascii_lowercase + string.digits
_DURATION_PART = re.compile(r"([0-9]+)(h|m|s)")


class KubeError(Exception):
    """A tool failure: the message goes to the tool's stderr, `exit_code` is its status."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class NodeView:
    name: str
    instance_id: str
    provider_id: str
    labels: dict[str, str]
    ready: bool
    control_plane: bool


@dataclass(frozen=True)
class EtcdMember:
    name: str
    peer_url: str
    instance_id: str
    healthy: bool


@dataclass(frozen=True)
class HistoryEntry:
    time: float
    operation: str
    instance_id: str | None
    detail: dict


@dataclass
class Host:
    """One instance as the model sees it: identity, liveness, kubelet and its disk (the sandbox)."""

    instance_id: str
    root: Path
    availability_zone: str
    private_ip: str
    private_dns: str
    region: str
    cluster: str
    role: str
    kubeadm_version: str
    alive: bool = True
    kubelet_running: bool = False
    kubelet_enabled: bool = False
    epoch: int | None = None


@dataclass
class _Node:
    name: str
    host_id: str  # the instance the kubelet runs on (what the model knows, not what the label claims)
    instance_id: str  # the kcluster.io/instance-id label
    provider_id: str
    labels: dict[str, str]
    control_plane: bool


@dataclass
class _Member:
    name: str
    peer_url: str
    instance_id: str
    added_at: float


@dataclass
class _Epoch:
    number: int
    ca: ClusterCa
    admin_client_key: str
    control_plane_endpoint: str
    pod_subnet: str
    service_subnet: str
    kubernetes_version: str
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (inf: never)
    certificate_key: str | None = None
    certificate_key_expiry: float = 0.0
    cni_manifests: list[str] = field(default_factory=list)
    members: dict[str, _Member] = field(default_factory=dict)  # by instance id
    nodes: dict[str, _Node] = field(default_factory=dict)  # by node name
    last_membership_change: float = float("-inf")
    # PodDisruptionBudgets (a later issue) belong here, next to the Nodes they protect.


def parse_duration(text: str) -> float:
    """A kubeadm --ttl (Go duration: 15m, 1h30m, 90s; 0 never expires) in seconds."""
    if text == "0":
        return float("inf")
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(amount + unit for amount, unit in parts) != text:
        raise KubeError(f'invalid argument "{text}" for "--ttl" flag: time: invalid duration "{text}"')
    seconds = sum(int(amount) * {"h": 3600, "m": 60, "s": 1}[unit] for amount, unit in parts)
    return float("inf") if seconds == 0 else float(seconds)


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


def _node_labels(kubelet_args: dict[str, str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in filter(None, kubelet_args.get("node-labels", "").split(",")):
        key, _, value = pair.partition("=")
        labels[key] = value
    return labels


class KubeModel:
    def __init__(
        self,
        now: Callable[[], float],
        rng: Random,
        *,
        default_kubeadm_version: str = DEFAULT_KUBEADM_VERSION,
    ) -> None:
        self._now = now
        self._rng = rng
        self._default_kubeadm_version = default_kubeadm_version
        self._lock = threading.RLock()
        self._hosts: dict[str, Host] = {}
        self._epochs: dict[int, _Epoch] = {}
        self._current: _Epoch | None = None
        self._init_counts: dict[int, int] = {}
        self._secrets: set[str] = set()
        self.history: list[HistoryEntry] = []

    # ----- read API (invariants) -----

    def init_count_by_epoch(self) -> dict[int, int]:
        with self._lock:
            return dict(self._init_counts)

    def current_epoch(self) -> int | None:
        with self._lock:
            return self._current.number if self._current else None

    def nodes(self) -> list[NodeView]:
        with self._lock:
            if self._current is None:
                return []
            return [self._node_view(self._current, node) for node in self._current.nodes.values()]

    def etcd_members(self) -> list[EtcdMember]:
        with self._lock:
            if self._current is None:
                return []
            return [
                EtcdMember(m.name, m.peer_url, m.instance_id, self._member_healthy(m))
                for m in self._current.members.values()
            ]

    def issued_secrets(self) -> set[str]:
        with self._lock:
            return set(self._secrets)

    def host(self, instance_id: str) -> Host:
        with self._lock:
            if instance_id not in self._hosts:
                raise KubeError(f"unknown instance {instance_id}", exit_code=70)
            return self._hosts[instance_id]

    # ----- hosts (the fleet calls these) -----

    def add_host(self, host: Host) -> None:
        with self._lock:
            self._hosts[host.instance_id] = host
            self._record("host-added", host.instance_id, role=host.role)

    def new_host(self, instance_id: str, root: Path, **identity: str) -> Host:
        return Host(
            instance_id=instance_id, root=root, kubeadm_version=self._default_kubeadm_version, **identity
        )

    def remove_host(self, instance_id: str) -> None:
        """The instance is gone: its kubelet stops and its etcd member stops answering."""
        with self._lock:
            host = self.host(instance_id)
            host.alive = False
            host.kubelet_running = False
            self._record("host-removed", instance_id)

    def set_kubeadm_version(self, instance_id: str, version: str) -> None:
        with self._lock:
            self.host(instance_id).kubeadm_version = version

    # ----- kubeadm -----

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
                del epoch.members[instance_id]
                epoch.last_membership_change = self._now()
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

    # ----- kubelet (systemctl) -----

    def kubelet_active(self, instance_id: str) -> bool:
        with self._lock:
            host = self.host(instance_id)
            return host.alive and host.kubelet_running

    def kubelet_enable(self, instance_id: str) -> None:
        with self._lock:
            self.host(instance_id).kubelet_enabled = True

    def kubelet_restart(self, instance_id: str) -> None:
        """kubelet only stays up with a kubeconfig to talk to; without one it crash-loops."""
        with self._lock:
            host = self._live_host(instance_id)
            host.kubelet_running = (host.root / "etc/kubernetes/kubelet.conf").exists()
            self._record("kubelet-restart", instance_id, running=host.kubelet_running)

    # ----- API server (kubectl) -----

    def api_ready(self, kubeconfig_text: str) -> bool:
        with self._lock:
            epoch = self._epoch_of_kubeconfig(kubeconfig_text)
            return epoch is not None and epoch is self._current and self._api_answers(epoch)

    def apply_manifest(self, kubeconfig_text: str, url: str) -> str:
        with self._lock:
            epoch = self._api_epoch(kubeconfig_text)
            created = url not in epoch.cni_manifests
            if created:
                epoch.cni_manifests.append(url)
                self._record("cni-applied", None, epoch=epoch.number, url=url)
            verb = "created" if created else "unchanged"
            return f"daemonset.apps/calico-node {verb}\ndeployment.apps/calico-kube-controllers {verb}\n"

    def get_nodes(self, kubeconfig_text: str, name: str | None = None) -> dict:
        with self._lock:
            epoch = self._api_epoch(kubeconfig_text)
            nodes = [n for n in epoch.nodes.values() if name is None or n.name == name]
            if name is not None and not nodes:
                raise KubeError(f'Error from server (NotFound): nodes "{name}" not found')
            items = [self._node_object(epoch, node) for node in nodes]
            return items[0] if name is not None else {"apiVersion": "v1", "kind": "List", "items": items}

    def label_node(
        self, kubeconfig_text: str, name: str, labels: dict[str, str | None], overwrite: bool
    ) -> str:
        with self._lock:
            epoch = self._api_epoch(kubeconfig_text)
            node = epoch.nodes.get(name)
            if node is None:
                raise KubeError(f'Error from server (NotFound): nodes "{name}" not found')
            for key, value in labels.items():
                if value is None:
                    node.labels.pop(key, None)
                elif key in node.labels and node.labels[key] != value and not overwrite:
                    raise KubeError(
                        f"error: '{key}' already has a value ({node.labels[key]}), and --overwrite is false"
                    )
                else:
                    node.labels[key] = value
            self._record("label-node", node.instance_id, node=name, labels=dict(labels))
            return f"node/{name} labeled\n"

    # ----- internals -----

    def _record(self, operation: str, instance_id: str | None, **detail: object) -> None:
        self.history.append(HistoryEntry(self._now(), operation, instance_id, detail))

    def _secret(self, value: str) -> str:
        self._secrets.add(value)
        return value

    def _live_host(self, instance_id: str) -> Host:
        host = self.host(instance_id)
        if not host.alive:
            raise KubeError(f"instance {instance_id} is not running", exit_code=70)
        return host

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

    def _member_healthy(self, member: _Member) -> bool:
        host = self._hosts.get(member.instance_id)
        return host is not None and host.alive

    def _has_quorum(self, epoch: _Epoch) -> bool:
        healthy = sum(self._member_healthy(m) for m in epoch.members.values())
        return healthy > len(epoch.members) // 2

    def _check_can_add_member(self, epoch: _Epoch) -> None:
        started = sum(self._member_healthy(m) for m in epoch.members.values())
        voting_after = len(epoch.members) + 1
        ready = (started == 1 and voting_after == 2) or started >= voting_after // 2 + 1
        settling = self._now() - epoch.last_membership_change < MEMBERSHIP_SETTLE_SECONDS
        if not ready or settling:
            raise KubeError(
                "error execution phase control-plane-join/etcd: error creating local etcd static pod "
                "manifest file: etcdserver: unhealthy cluster"
            )

    def _add_member(self, epoch: _Epoch, host: Host, node_name: str) -> None:
        epoch.members[host.instance_id] = _Member(
            name=node_name,
            peer_url=f"https://{host.private_ip}:2380",
            instance_id=host.instance_id,
            added_at=self._now(),
        )
        epoch.last_membership_change = self._now()

    def _live_control_plane(self, epoch: _Epoch) -> _Member | None:
        if not self._has_quorum(epoch):
            return None
        return next((m for m in epoch.members.values() if self._member_healthy(m)), None)

    def _api_answers(self, epoch: _Epoch) -> bool:
        return bool(epoch.members) and self._live_control_plane(epoch) is not None

    def _require_api(self, epoch: _Epoch) -> None:
        if not self._api_answers(epoch):
            raise KubeError(
                f"The connection to the server {epoch.control_plane_endpoint} was refused - "
                "did you specify the right host or port?"
            )

    def _epoch_of_kubeconfig(self, kubeconfig_text: str) -> _Epoch | None:
        for epoch in self._epochs.values():
            if epoch.admin_client_key in kubeconfig_text:
                return epoch
        return None

    def _api_epoch(self, kubeconfig_text: str) -> _Epoch:
        epoch = self._epoch_of_kubeconfig(kubeconfig_text)
        if epoch is None or epoch is not self._current:
            raise KubeError("error: You must be logged in to the server (Unauthorized)")
        self._require_api(epoch)
        return epoch

    def _admin_epoch_on(self, instance_id: str) -> _Epoch:
        """Commands kubeadm runs with the node's /etc/kubernetes/admin.conf."""
        host = self._live_host(instance_id)
        admin = host.root / "etc/kubernetes/admin.conf"
        if not admin.exists():
            raise KubeError(
                "failed to load admin kubeconfig: open /etc/kubernetes/admin.conf: no such file or directory"
            )
        return self._api_epoch(admin.read_text())

    def _register_node(
        self, epoch: _Epoch, host: Host, name: str, kubelet_args: dict[str, str], *, control_plane: bool
    ) -> None:
        labels = _node_labels(kubelet_args)
        labels.setdefault("kubernetes.io/hostname", name)
        if control_plane:
            labels[CONTROL_PLANE_LABEL] = ""
        epoch.nodes[name] = _Node(
            name=name,
            host_id=host.instance_id,
            instance_id=labels.get(INSTANCE_ID_LABEL, ""),
            provider_id=kubelet_args.get("provider-id", ""),
            labels=labels,
            control_plane=control_plane,
        )
        host.epoch = epoch.number
        host.kubelet_running = True

    def _node_ready(self, epoch: _Epoch, node: _Node) -> bool:
        host = self._hosts.get(node.host_id)
        running = host is not None and host.epoch == epoch.number and host.alive and host.kubelet_running
        return running and bool(epoch.cni_manifests)

    def _node_view(self, epoch: _Epoch, node: _Node) -> NodeView:
        return NodeView(
            name=node.name,
            instance_id=node.instance_id,
            provider_id=node.provider_id,
            labels=dict(node.labels),
            ready=self._node_ready(epoch, node),
            control_plane=node.control_plane,
        )

    def _node_object(self, epoch: _Epoch, node: _Node) -> dict:
        ready = self._node_ready(epoch, node)
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": node.name, "labels": dict(node.labels)},
            "spec": {"providerID": node.provider_id},
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True" if ready else "False",
                        "reason": "KubeletReady" if ready else "KubeletNotReady",
                    }
                ]
            },
        }

    def _kubeconfig(self, epoch: _Epoch, user: str, credentials: dict[str, str]) -> str:
        ca_data = base64.b64encode(epoch.ca.cert_pem.encode()).decode()
        return yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "kubernetes",
                        "cluster": {
                            "certificate-authority-data": ca_data,
                            "server": f"https://{epoch.control_plane_endpoint}",
                        },
                    }
                ],
                "contexts": [
                    {"name": f"{user}@kubernetes", "context": {"cluster": "kubernetes", "user": user}}
                ],
                "current-context": f"{user}@kubernetes",
                "users": [{"name": user, "user": credentials}],
            },
            sort_keys=False,
        )

    def _write_node_files(self, epoch: _Epoch, host: Host) -> None:
        kube = host.root / "etc/kubernetes"
        (kube / "pki").mkdir(parents=True, exist_ok=True)
        (kube / "pki/ca.crt").write_text(epoch.ca.cert_pem)
        kubelet_pem = "/var/lib/kubelet/pki/kubelet-client-current.pem"
        credentials = {"client-certificate": kubelet_pem, "client-key": kubelet_pem}
        (kube / "kubelet.conf").write_text(self._kubeconfig(epoch, "system:node", credentials))

    def _write_control_plane_files(self, epoch: _Epoch, host: Host) -> None:
        self._write_node_files(epoch, host)
        admin = host.root / "etc/kubernetes/admin.conf"
        admin.write_text(
            self._kubeconfig(epoch, "kubernetes-admin", {"client-key-data": epoch.admin_client_key})
        )
        admin.chmod(0o600)
