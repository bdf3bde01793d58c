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

Scale-in (drain-remove): Nodes can be cordoned, drained and deleted; pods are minimal (a node, an
optional PodDisruptionBudget, DaemonSet-managed or not, emptyDir or not) and an eviction that would
take a PDB below minAvailable is refused, so a drain times out the way kubectl's does. etcd members
carry etcd's 64-bit ids, a leader (the first member until moved or removed; re-elected among healthy
members while there is quorum) and answer etcdctl's member list / endpoint health / endpoint status /
move-leader / member remove with the real etcdctl 3.4 JSON shapes and refusals. A script's `sleep`
counts as time etcd had to settle (the virtual clock does not move during one script run).

Health (the health document): every Node carries a Ready condition as the API serves it: "True" (kubelet
posting, CNI applied), "False" (kubelet posting NotReady: no CNI yet), "Unknown" (kubelet stopped
posting: kubelet stopped or instance gone; the node lifecycle controller's grace period is folded into
the twin's latencies), with lastTransitionTime = the virtual time of the last status change. Faults for
the scenarios: `stop_kubelet` (the instance stays), `stop_apiserver` (the kube-apiserver static pod on
one control plane: kubectl and kubeadm there see the API down; the twin routes a control plane's admin
kubeconfig to its own API server) and `stop_etcd` (its etcd member stops answering), each with a start.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import string
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from random import Random

import yaml

from twin import versions
from twin.node.pki import ClusterCa, make_ca

DEFAULT_TOKEN_TTL_SECONDS = 24 * 3600
CERTIFICATE_KEY_TTL_SECONDS = 2 * 3600
# etcd refuses another membership change this soon after the last one.
MEMBERSHIP_SETTLE_SECONDS = 5.0
DEFAULT_KUBEADM_VERSION = f"v{versions.kubernetes_version()}"
KUBEADM_API_VERSION = "kubeadm.k8s.io/v1beta4"
INSTANCE_ID_LABEL = "kcluster.io/instance-id"
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"

ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
ETCD_VERSION = "3.5.21"
# etcdctl's exit statuses (etcdctl/ctlv3/command/error.go).
ETCDCTL_EXIT_ERROR = 1
ETCDCTL_EXIT_BAD_ARGS = 128
POD_NAMESPACE = "default"
READY_TRUE, READY_FALSE, READY_UNKNOWN = "True", "False", "Unknown"

_TOKEN_ALPHABET = string.ascii_lowercase + string.digits
_DURATION_PART = re.compile(r"([0-9]+)(h|m|s)")


class KubeError(Exception):
    """A tool failure: the message goes to the tool's stderr, `exit_code` is its status, `stdout` what the
    tool printed before it failed (kubectl drain's cordon and eviction lines)."""

    def __init__(self, message: str, exit_code: int = 1, *, stdout: str = "") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.stdout = stdout


@dataclass(frozen=True)
class NodeView:
    name: str
    instance_id: str
    provider_id: str
    labels: dict[str, str]
    ready: bool
    control_plane: bool
    unschedulable: bool = False
    ready_status: str = READY_UNKNOWN  # the Ready condition's status: "True", "False" or "Unknown"
    ready_transition: float = 0.0  # its lastTransitionTime (virtual epoch seconds)


@dataclass(frozen=True)
class EtcdMember:
    name: str
    peer_url: str
    instance_id: str
    healthy: bool
    member_id: int = 0


@dataclass(frozen=True)
class PodView:
    name: str
    node: str | None  # None: pending, no schedulable node
    pdb: str | None
    daemonset: bool
    emptydir: bool


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
    apiserver_running: bool = True  # the kube-apiserver static pod (control planes only)
    etcd_running: bool = True  # the etcd static pod (control planes only)
    epoch: int | None = None


@dataclass
class _Node:
    name: str
    host_id: str  # the instance the kubelet runs on (what the model knows, not what the label claims)
    instance_id: str  # the kcluster.io/instance-id label
    provider_id: str
    labels: dict[str, str]
    control_plane: bool
    internal_ip: str = ""
    unschedulable: bool = False
    ready_status: str = READY_UNKNOWN
    ready_transition: float = 0.0


@dataclass
class _Member:
    name: str
    peer_url: str
    instance_id: str
    added_at: float
    member_id: int = 0
    client_url: str = ""  # empty: added but never started (no name, no client URLs yet)


@dataclass
class _Pod:
    name: str
    node: str | None
    pdb: str | None
    daemonset: bool
    emptydir: bool
    # Seconds its kubelet gives it to stop. 0: an evicted pod is gone at once (the API deletes it with
    # no kubelet involved); otherwise only a running kubelet can finish its termination.
    grace_seconds: int = 0


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
    cluster_id: int = 0
    leader: str | None = None  # instance id of the leader's member
    raft_term: int = 1


def parse_duration(text: str) -> float:
    """A kubeadm --ttl (Go duration: 15m, 1h30m, 90s; 0 never expires) in seconds."""
    if text == "0":
        return float("inf")
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(amount + unit for amount, unit in parts) != text:
        raise KubeError(f'invalid argument "{text}" for "--ttl" flag: time: invalid duration "{text}"')
    seconds = sum(int(amount) * {"h": 3600, "m": 60, "s": 1}[unit] for amount, unit in parts)
    return float("inf") if seconds == 0 else float(seconds)


def rfc3339(seconds: float) -> str:
    """A Kubernetes metav1.Time: RFC 3339 in UTC, whole seconds."""
    return datetime.fromtimestamp(math.floor(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _etcd_id(seed: str) -> int:
    """A 64-bit member/cluster id as etcd makes them (a hash), stable for a seed."""
    return int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big") or 1


def _parse_member_id(text: str) -> int:
    try:
        return int(text, 16)
    except ValueError:
        raise KubeError(
            f'Error: bad member ID arg (strconv.ParseUint: parsing "{text}": invalid syntax), '
            "expecting ID in Hex",
            ETCDCTL_EXIT_BAD_ARGS,
        ) from None


def _member_json(member: _Member) -> dict:
    answer: dict = {"ID": member.member_id}
    if member.client_url:
        answer["name"] = member.name
    answer["peerURLs"] = [member.peer_url]
    if member.client_url:
        answer["clientURLs"] = [member.client_url]
    return answer


def _kubectl_minor(version: str) -> int:
    return int(version.lstrip("v").split(".")[1])


def _drain_error(node: str, reasons: str) -> str:
    return (
        f'error: unable to drain node "{node}" due to error: {reasons}, continuing command...\n'
        f"There are pending nodes to be drained:\n {node}\n"
        f"error: {reasons}"
    )


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
        self._pods: dict[str, _Pod] = {}
        self._pdbs: dict[str, int] = {}  # PodDisruptionBudget name -> minAvailable
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
            self._sync_ready_conditions()
            return [self._node_view(self._current, node) for node in self._current.nodes.values()]

    def etcd_members(self) -> list[EtcdMember]:
        with self._lock:
            if self._current is None:
                return []
            return [
                EtcdMember(m.name, m.peer_url, m.instance_id, self._member_healthy(m), m.member_id)
                for m in self._current.members.values()
            ]

    def etcd_leader(self) -> EtcdMember | None:
        """The member etcd would name leader now (None without quorum)."""
        with self._lock:
            if self._current is None:
                return None
            leader = self._elect(self._current)
            return next((m for m in self.etcd_members() if m.instance_id == leader), None)

    def pods(self) -> list[PodView]:
        with self._lock:
            return [PodView(p.name, p.node, p.pdb, p.daemonset, p.emptydir) for p in self._pods.values()]

    def operation_counts(self) -> dict[str, int]:
        """How often each history operation happened (node-drained, node-deleted, etcd-member-removed...)."""
        with self._lock:
            counts: dict[str, int] = {}
            for entry in self.history:
                counts[entry.operation] = counts.get(entry.operation, 0) + 1
            return counts

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

    # ----- faults (scenarios and tests): the instance stays, one of its components stops -----

    def stop_kubelet(self, instance_id: str) -> None:
        """kubelet stops (crash, OOM, a bad config): its Node goes Ready=Unknown; static pods keep running."""
        with self._lock:
            self._live_host(instance_id).kubelet_running = False
            self._record("kubelet-stopped", instance_id)

    def start_kubelet(self, instance_id: str) -> None:
        """kubelet runs again (the partition healed, someone restarted it): its Node posts Ready again."""
        with self._lock:
            self._live_host(instance_id).kubelet_running = True
            self._record("kubelet-started", instance_id)

    def stop_apiserver(self, instance_id: str) -> None:
        """The control plane's kube-apiserver dies: /readyz there fails, kubectl and kubeadm there see the
        API down; other control planes still serve it."""
        with self._lock:
            self._control_plane_host(instance_id).apiserver_running = False
            self._record("apiserver-stopped", instance_id)

    def start_apiserver(self, instance_id: str) -> None:
        with self._lock:
            self._control_plane_host(instance_id).apiserver_running = True
            self._record("apiserver-started", instance_id)

    def stop_etcd(self, instance_id: str) -> None:
        """The control plane's etcd member stops answering (its client URL refuses: it is unhealthy)."""
        with self._lock:
            self._control_plane_host(instance_id).etcd_running = False
            self._record("etcd-stopped", instance_id)

    def start_etcd(self, instance_id: str) -> None:
        with self._lock:
            self._control_plane_host(instance_id).etcd_running = True
            self._record("etcd-started", instance_id)

    def apiserver_running(self, instance_id: str) -> bool:
        """Whether this instance's own kube-apiserver answers (false on workers and stopped ones)."""
        with self._lock:
            host = self.host(instance_id)
            return host.alive and host.apiserver_running and self._is_control_plane(host)

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
                    cluster_id=_etcd_id(f"cluster/{number}/{endpoint}"),
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

    def api_ready(self, kubeconfig_text: str, instance_id: str | None = None) -> bool:
        """GET /readyz with this kubeconfig; from `instance_id`, its own API server must be up too."""
        with self._lock:
            if instance_id is not None and self.local_apiserver_down(instance_id):
                return False
            epoch = self._epoch_of_kubeconfig(kubeconfig_text)
            return epoch is not None and epoch is self._current and self._api_answers(epoch)

    def local_apiserver_down(self, instance_id: str) -> bool:
        """A control plane whose own API server is stopped: its admin kubeconfig reaches no API server."""
        with self._lock:
            host = self._hosts.get(instance_id)
            return host is not None and not host.apiserver_running

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
            self._sync_ready_conditions()
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

    # ----- pods and PodDisruptionBudgets (tests and scenarios set them up) -----

    def add_pod(
        self,
        node_name: str,
        name: str,
        *,
        pdb: str | None = None,
        daemonset: bool = False,
        emptydir: bool = False,
        grace_seconds: int = 0,
    ) -> None:
        with self._lock:
            if self._current is None or node_name not in self._current.nodes:
                raise KubeError(f'nodes "{node_name}" not found')
            self._pods[name] = _Pod(name, node_name, pdb, daemonset, emptydir, grace_seconds)

    def set_pdb(self, name: str, min_available: int) -> None:
        with self._lock:
            self._pdbs[name] = min_available

    # ----- scale-in through kubectl -----

    def cordon(self, kubeconfig_text: str, name: str) -> str:
        with self._lock:
            node = self._api_node(kubeconfig_text, name)
            if node.unschedulable:
                return f"node/{name} already cordoned\n"
            node.unschedulable = True
            self._record("node-cordoned", node.instance_id, node=name)
            return f"node/{name} cordoned\n"

    def drain(
        self,
        kubeconfig_text: str,
        name: str,
        *,
        ignore_daemonsets: bool,
        delete_emptydir_data: bool,
        timeout: str,
    ) -> str:
        """kubectl drain: cordon, then evict every pod but DaemonSet-managed ones, honouring PDBs.

        An eviction a PDB refuses is retried by kubectl until --timeout; the model answers at once with
        kubectl's timeout error (the twin's latency model accounts for the time), cordon kept.
        """
        with self._lock:
            stdout = self.cordon(kubeconfig_text, name)
            node = self._api_node(kubeconfig_text, name)
            on_node = [pod for pod in self._pods.values() if pod.node == name]
            daemonset_pods = [f"kube-system/{p.name}" for p in on_node if p.daemonset]
            emptydir_pods = [f"{POD_NAMESPACE}/{p.name}" for p in on_node if p.emptydir and not p.daemonset]
            problems = []
            if daemonset_pods and not ignore_daemonsets:
                problems.append(
                    "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): "
                    + ", ".join(daemonset_pods)
                )
            if emptydir_pods and not delete_emptydir_data:
                problems.append(
                    "cannot delete Pods with local storage (use --delete-emptydir-data to override): "
                    + ", ".join(emptydir_pods)
                )
            if problems:
                self._record("node-drain-refused", node.instance_id, node=name)
                raise KubeError(_drain_error(name, ", ".join(problems)))
            stderr_warning = ""
            if daemonset_pods:
                stderr_warning = f"Warning: ignoring DaemonSet-managed Pods: {', '.join(daemonset_pods)}\n"
            blocked, stuck = [], []  # kubectl prints "evicting pod" before every eviction attempt
            host = self._hosts.get(node.host_id)
            kubelet_running = host is not None and host.alive and host.kubelet_running
            for pod in [p for p in on_node if not p.daemonset]:
                stdout += f"evicting pod {POD_NAMESPACE}/{pod.name}\n"
                if not self._eviction_allowed(pod):
                    blocked.append(pod)
                    continue
                stdout += f"pod/{pod.name} evicted\n"
                if pod.grace_seconds > 0 and not kubelet_running:
                    stuck.append(pod)  # Terminating until a kubelet that is not there finishes it
                else:
                    self._reschedule(pod, leaving=name)
            if stuck and not blocked:
                self._record("node-drain-timed-out", node.instance_id, node=name, timeout=timeout)
                raise KubeError(
                    _drain_error(name, "; ".join(self._termination_timeout(p, timeout) for p in stuck)),
                    stdout=stdout,
                )
            if blocked:
                self._record("node-drain-timed-out", node.instance_id, node=name, timeout=timeout)
                reasons = "; ".join(
                    f'error when evicting pods/"{pod.name}" -n "{POD_NAMESPACE}": global timeout reached: '
                    f"{timeout}"
                    for pod in blocked
                )
                retries = "".join(
                    f'error when evicting pods/"{pod.name}" -n "{POD_NAMESPACE}" (will retry after 5s): '
                    "Cannot evict pod as it would violate the pod's disruption budget.\n"
                    for pod in blocked
                )
                raise KubeError(stderr_warning + retries + _drain_error(name, reasons), stdout=stdout)
            self._record("node-drained", node.instance_id, node=name)
            return stdout + f"node/{name} drained\n"

    def _termination_timeout(self, pod: _Pod, timeout: str) -> str:
        """kubectl's words for an evicted pod still Terminating at --timeout: from kubectl 1.32 the wait
        ends with the context's error; before, with its own "global timeout reached" (the kubectl is
        the cluster's version: the nodes install kubectl with kubeadm)."""
        version = self._current.kubernetes_version if self._current else ""
        waiting = f'error when waiting for pod "{pod.name}" in namespace "{POD_NAMESPACE}" to terminate'
        if version and _kubectl_minor(version) >= 32:
            return f"{waiting}: context deadline exceeded"
        return f"{waiting}: global timeout reached: {timeout}"

    def delete_node(self, kubeconfig_text: str, name: str, *, ignore_not_found: bool) -> str:
        with self._lock:
            epoch = self._api_epoch(kubeconfig_text)
            node = epoch.nodes.pop(name, None)
            if node is None:
                if ignore_not_found:
                    return ""
                raise KubeError(f'Error from server (NotFound): nodes "{name}" not found')
            # The pod garbage collector removes the node's pods; controllers recreate theirs elsewhere.
            for pod in [p for p in self._pods.values() if p.node == name]:
                if pod.daemonset:
                    del self._pods[pod.name]
                else:
                    self._reschedule(pod, leaving=name)
            self._record("node-deleted", node.instance_id, node=name)
            return f'node "{name}" deleted\n'

    # ----- etcd through etcdctl (the calling instance's local member serves 127.0.0.1) -----

    def etcd_member_list(self, instance_id: str, endpoints: list[str]) -> dict:
        with self._lock:
            epoch, serving = self._etcd_serving(instance_id, endpoints)
            return {
                "header": self._etcd_header(epoch, serving),
                "members": [_member_json(m) for m in epoch.members.values()],
            }

    def etcd_endpoint_health(self, instance_id: str, endpoints: list[str]) -> list[dict]:
        """`endpoint health --cluster`: one answer per member with client URLs (unstarted ones have none)."""
        with self._lock:
            epoch, _ = self._etcd_serving(instance_id, endpoints)
            quorum = self._has_quorum(epoch)
            answers = []
            for member in epoch.members.values():
                if not member.client_url:
                    continue
                if self._member_healthy(member) and quorum:
                    answers.append({"endpoint": member.client_url, "health": True, "took": "2.315ms"})
                else:
                    answers.append(
                        {
                            "endpoint": member.client_url,
                            "health": False,
                            "took": "5.000914377s",
                            "error": "context deadline exceeded",
                        }
                    )
            return answers

    def etcd_endpoint_status(self, instance_id: str, endpoints: list[str]) -> tuple[list[dict], list[str]]:
        """`endpoint status --cluster`: statuses of reachable members, and the client URLs that failed."""
        with self._lock:
            epoch, _ = self._etcd_serving(instance_id, endpoints)
            leader = self._elect(epoch)
            leader_id = epoch.members[leader].member_id if leader else 0
            statuses, failed = [], []
            for member in epoch.members.values():
                if not member.client_url:
                    continue
                if not self._member_healthy(member):
                    failed.append(member.client_url)
                    continue
                index = 8 + 3 * len(epoch.members) + epoch.raft_term
                statuses.append(
                    {
                        "Endpoint": member.client_url,
                        "Status": {
                            "header": {
                                "cluster_id": epoch.cluster_id,
                                "member_id": member.member_id,
                                "revision": 1,
                                "raft_term": epoch.raft_term,
                            },
                            "version": ETCD_VERSION,
                            "dbSize": 20480,
                            "leader": leader_id,
                            "raftIndex": index,
                            "raftTerm": epoch.raft_term,
                            "raftAppliedIndex": index,
                            "dbSizeInUse": 16384,
                        },
                    }
                )
            return statuses, failed

    def etcd_move_leader(self, instance_id: str, endpoints: list[str], target_hex: str) -> str:
        with self._lock:
            epoch = self._etcd_epoch(instance_id)
            target_id = _parse_member_id(target_hex)
            leader = self._elect(epoch)
            reachable = [self._member_at(epoch, instance_id, url) for url in endpoints]
            if leader is None or leader not in [m.instance_id for m in reachable if m is not None]:
                raise KubeError(
                    f"Error: no leader endpoint given at [{' '.join(endpoints)}]", ETCDCTL_EXIT_BAD_ARGS
                )
            target = next((m for m in epoch.members.values() if m.member_id == target_id), None)
            if target is None or not self._member_healthy(target) or target.instance_id == leader:
                raise KubeError("Error: etcdserver: bad leader transferee", ETCDCTL_EXIT_ERROR)
            previous = epoch.members[leader]
            epoch.leader = target.instance_id
            epoch.raft_term += 1
            self._record("etcd-leader-moved", target.instance_id, previous=previous.name, leader=target.name)
            return f"Leadership transferred from {previous.member_id:x} to {target.member_id:x}\n"

    def etcd_member_remove(self, instance_id: str, endpoints: list[str], member_hex: str) -> str:
        """etcd's mayRemoveMember with --strict-reconfig-check (the default), then the removal."""
        with self._lock:
            epoch, _ = self._etcd_serving(instance_id, endpoints)
            member_id = _parse_member_id(member_hex)
            if not self._has_quorum(epoch):
                raise KubeError("Error: context deadline exceeded", ETCDCTL_EXIT_ERROR)
            member = next((m for m in epoch.members.values() if m.member_id == member_id), None)
            if member is None:
                raise KubeError("Error: etcdserver: member not found", ETCDCTL_EXIT_ERROR)
            if self._member_healthy(member):
                others = [m for m in epoch.members.values() if m is not member]
                started_after = sum(bool(m.client_url) for m in others)
                if started_after < len(others) // 2 + 1:
                    raise KubeError(
                        "Error: etcdserver: re-configuration failed due to not enough started members",
                        ETCDCTL_EXIT_ERROR,
                    )
                active = sum(self._member_healthy(m) for m in epoch.members.values())
                if active - 1 < 1 + (len(epoch.members) - 1) // 2:
                    raise KubeError("Error: etcdserver: unhealthy cluster", ETCDCTL_EXIT_ERROR)
            if self._now() - epoch.last_membership_change < MEMBERSHIP_SETTLE_SECONDS:
                # peers connected less than etcd's HealthInterval ago do not count as active yet
                raise KubeError("Error: etcdserver: unhealthy cluster", ETCDCTL_EXIT_ERROR)
            self._drop_member(epoch, member.instance_id)
            self._record("etcd-member-removed", member.instance_id, name=member.name)
            return f"Member {member_id:x} removed from cluster {epoch.cluster_id:x}\n"

    def add_unstarted_etcd_member(self, peer_url: str) -> int:
        """`etcdctl member add` whose etcd never started (a join that died half-way).

        Such a member has no name and no client URLs, and counts towards the quorum size.
        """
        with self._lock:
            epoch = self._current
            if epoch is None:
                raise KubeError("no cluster")
            key = f"unstarted:{peer_url}"
            epoch.members[key] = _Member(
                name="",
                peer_url=peer_url,
                instance_id=key,
                added_at=self._now(),
                member_id=_etcd_id(f"{epoch.number}/{peer_url}/{self._now()}"),
            )
            epoch.last_membership_change = self._now()
            self._record("etcd-member-added-unstarted", None, peer_url=peer_url)
            return epoch.members[key].member_id

    def script_slept(self, instance_id: str, seconds: float) -> None:
        """A script's `sleep`: time etcd had to settle after a membership change."""
        with self._lock:
            if self._current is not None:
                self._current.last_membership_change -= seconds
            self._record("script-slept", instance_id, seconds=seconds)

    # ----- internals -----

    def _api_node(self, kubeconfig_text: str, name: str) -> _Node:
        epoch = self._api_epoch(kubeconfig_text)
        node = epoch.nodes.get(name)
        if node is None:
            raise KubeError(f'Error from server (NotFound): nodes "{name}" not found')
        return node

    def _pod_healthy(self, pod: _Pod) -> bool:
        if pod.node is None or self._current is None or pod.node not in self._current.nodes:
            return False
        return self._node_ready(self._current, self._current.nodes[pod.node])

    def _eviction_allowed(self, pod: _Pod) -> bool:
        """The eviction API: allowed unless it takes the pod's PDB below minAvailable healthy pods."""
        if pod.pdb is None or pod.pdb not in self._pdbs or not self._pod_healthy(pod):
            return True
        healthy = sum(self._pod_healthy(p) for p in self._pods.values() if p.pdb == pod.pdb)
        return healthy - 1 >= self._pdbs[pod.pdb]

    def _reschedule(self, pod: _Pod, *, leaving: str) -> None:
        """The pod's controller recreates it on a schedulable Ready worker, else it stays Pending."""
        epoch = self._current
        candidates = sorted(
            node.name
            for node in (epoch.nodes.values() if epoch else [])
            if node.name != leaving
            and not node.unschedulable
            and not node.control_plane
            and self._node_ready(epoch, node)
        )
        pod.node = candidates[0] if candidates else None

    def _etcd_epoch(self, instance_id: str) -> _Epoch:
        host = self._live_host(instance_id)
        epoch = self._epochs.get(host.epoch) if host.epoch else None
        if epoch is None or epoch is not self._current:
            raise KubeError("Error: dial tcp 127.0.0.1:2379: connect: connection refused", ETCDCTL_EXIT_ERROR)
        return epoch

    def _member_at(self, epoch: _Epoch, instance_id: str, url: str) -> _Member | None:
        """The member a client URL reaches, if it answers (127.0.0.1 is the calling instance)."""
        host = url.split("://", 1)[-1].rsplit(":", 1)[0]
        for member in epoch.members.values():
            member_host = self._hosts.get(member.instance_id)
            if member_host is None or not member.client_url:
                continue
            local = host in ("127.0.0.1", "localhost") and member.instance_id == instance_id
            if (local or member_host.private_ip == host) and self._member_healthy(member):
                return member
        return None

    def _etcd_serving(self, instance_id: str, endpoints: list[str]) -> tuple[_Epoch, _Member]:
        epoch = self._etcd_epoch(instance_id)
        for url in endpoints:
            member = self._member_at(epoch, instance_id, url)
            if member is not None:
                return epoch, member
        raise KubeError("Error: context deadline exceeded", ETCDCTL_EXIT_ERROR)

    def _etcd_header(self, epoch: _Epoch, serving: _Member) -> dict:
        return {"cluster_id": epoch.cluster_id, "member_id": serving.member_id, "raft_term": epoch.raft_term}

    def _elect(self, epoch: _Epoch) -> str | None:
        """The leader's instance id: kept while healthy; else the first healthy member, with quorum."""
        if not self._has_quorum(epoch):
            return None
        current = epoch.members.get(epoch.leader) if epoch.leader else None
        if current is None or not self._member_healthy(current):
            elected = next((m for m in epoch.members.values() if self._member_healthy(m)), None)
            epoch.leader = elected.instance_id if elected else None
            epoch.raft_term += 1
        return epoch.leader

    def _drop_member(self, epoch: _Epoch, instance_id: str) -> None:
        del epoch.members[instance_id]
        epoch.last_membership_change = self._now()
        if epoch.leader == instance_id:
            epoch.leader = None
            self._elect(epoch)

    def _record(self, operation: str, instance_id: str | None, **detail: object) -> None:
        # every change of state is recorded: the moment a Node's Ready condition transitions
        self._sync_ready_conditions()
        self.history.append(HistoryEntry(self._now(), operation, instance_id, detail))

    def _ready_status(self, epoch: _Epoch, node: _Node) -> str:
        host = self._hosts.get(node.host_id)
        if host is None or host.epoch != epoch.number or not host.alive or not host.kubelet_running:
            return READY_UNKNOWN
        return READY_TRUE if epoch.cni_manifests else READY_FALSE

    def _sync_ready_conditions(self) -> None:
        """Move each Node's Ready condition to what its kubelet would post now, stamping the transition.

        Also called on reads, so a state changed behind the model's back (a test flipping a Host field)
        transitions no later than the first observation."""
        if self._current is None:
            return
        for node in self._current.nodes.values():
            status = self._ready_status(self._current, node)
            if status != node.ready_status:
                node.ready_status = status
                node.ready_transition = self._now()

    def _control_plane_host(self, instance_id: str) -> Host:
        host = self._live_host(instance_id)
        if not self._is_control_plane(host):
            raise KubeError(f"instance {instance_id} runs no control plane", exit_code=70)
        return host

    def _is_control_plane(self, host: Host) -> bool:
        epoch = self._epochs.get(host.epoch) if host.epoch else None
        return epoch is not None and host.instance_id in epoch.members

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
        return host is not None and host.alive and host.etcd_running and bool(member.client_url)

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
        peer_url = f"https://{host.private_ip}:{ETCD_PEER_PORT}"
        epoch.members[host.instance_id] = _Member(
            name=node_name,
            peer_url=peer_url,
            instance_id=host.instance_id,
            added_at=self._now(),
            member_id=_etcd_id(f"{epoch.number}/{peer_url}/{self._now()}"),
            client_url=f"https://{host.private_ip}:{ETCD_CLIENT_PORT}",
        )
        epoch.last_membership_change = self._now()
        if epoch.leader is None:
            epoch.leader = host.instance_id

    def _live_control_plane(self, epoch: _Epoch) -> _Member | None:
        if not self._has_quorum(epoch):
            return None
        return next((m for m in epoch.members.values() if self._member_healthy(m)), None)

    def _api_answers(self, epoch: _Epoch) -> bool:
        """Some API server runs, and etcd, its storage, has quorum."""
        if not epoch.members or self._live_control_plane(epoch) is None:
            return False
        return any(
            self._member_healthy(member) and self._hosts[member.instance_id].apiserver_running
            for member in epoch.members.values()
        )

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
        if not host.apiserver_running:
            raise KubeError(
                f"The connection to the server {host.private_ip}:6443 was refused - "
                "did you specify the right host or port?"
            )
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
            internal_ip=host.private_ip,
        )
        host.epoch = epoch.number
        host.kubelet_running = True
        node = epoch.nodes[name]
        node.ready_status = self._ready_status(epoch, node)
        node.ready_transition = self._now()

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
            unschedulable=node.unschedulable,
            ready_status=node.ready_status,
            ready_transition=node.ready_transition,
        )

    def _node_object(self, epoch: _Epoch, node: _Node) -> dict:
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": node.name, "labels": dict(node.labels)},
            "spec": {"providerID": node.provider_id}
            | ({"unschedulable": True} if node.unschedulable else {}),
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": node.internal_ip},
                    {"type": "Hostname", "address": node.name},
                ],
                "conditions": [self._ready_condition(node)],
            },
        }

    def _ready_condition(self, node: _Node) -> dict:
        """The Ready condition as the API serves it (the node lifecycle controller's wording for Unknown)."""
        posting = node.ready_status != READY_UNKNOWN
        reason, message = {
            READY_TRUE: ("KubeletReady", "kubelet is posting ready status"),
            READY_FALSE: (
                "KubeletNotReady",
                "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
                "message:Network plugin returns error: cni plugin not initialized",
            ),
            READY_UNKNOWN: ("NodeStatusUnknown", "Kubelet stopped posting node status."),
        }[node.ready_status]
        return {
            "type": "Ready",
            "status": node.ready_status,
            "lastHeartbeatTime": rfc3339(self._now() if posting else node.ready_transition),
            "lastTransitionTime": rfc3339(node.ready_transition),
            "reason": reason,
            "message": message,
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
        host.apiserver_running = host.etcd_running = True
        self._write_node_files(epoch, host)
        # kubeadm's etcd PKI; the twin's etcd CA is the cluster CA (etcdctl only checks the files exist)
        etcd_pki = host.root / "etc/kubernetes/pki/etcd"
        etcd_pki.mkdir(parents=True, exist_ok=True)
        (etcd_pki / "ca.crt").write_text(epoch.ca.cert_pem)
        (etcd_pki / "healthcheck-client.crt").write_text(epoch.ca.cert_pem)
        (etcd_pki / "healthcheck-client.key").write_text(f"etcd healthcheck client of epoch {epoch.number}\n")
        (etcd_pki / "healthcheck-client.key").chmod(0o600)
        admin = host.root / "etc/kubernetes/admin.conf"
        admin.write_text(
            self._kubeconfig(epoch, "kubernetes-admin", {"client-key-data": epoch.admin_client_key})
        )
        admin.chmod(0o600)
