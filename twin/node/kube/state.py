"""The Kubernetes model's shared state: its objects (hosts, Nodes, etcd members, pods, cluster epochs),
the views the invariant checks read, and what every part of the model does to it (hosts come and go,
history is recorded, secrets are remembered). All state sits behind one lock: tool calls arrive from
concurrent script runs. Time comes from the injected `now()` (virtual seconds), randomness from the
injected seeded generator, so a seed replays exactly.
"""

from __future__ import annotations

import math
import re
import string
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from random import Random
from typing import TYPE_CHECKING

from twin import versions
from twin.node.pki import ClusterCa

if TYPE_CHECKING:
    from twin.ports import ApiEndpointRouting

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


@dataclass(frozen=True)
class ComponentVersions:
    instance_id: str
    kubelet: str
    apiserver: str | None  # None: no control plane on this instance
    certificates_issued_at: float | None


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
    # The etcd static pod's container exists and runs (`crictl ps` lists it); False once it crashed and
    # exited (CrashLoopBackOff): nothing to `crictl exec` into. A hung member keeps its container.
    etcd_container_running: bool = True
    epoch: int | None = None
    # The kube-apiserver's version: kubeadm writes the static Pod from ClusterConfiguration's
    # kubernetesVersion (kubeadm-config), not from its own binary's version. None on workers.
    apiserver_version: str | None = None
    # When kubeadm issued this control plane's leaf certificates (they last one year).
    certificates_issued_at: float | None = None


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


class ClusterState:
    """The state every part of the model shares, and the host registry.

    Each part of twin/node/kube/ is a class over this state and KubeModel inherits them all, so one
    part calls another through `self` (a control-plane join adds an etcd member and registers a Node),
    always under the one lock.
    """

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
        # The load balancer in front of the control-plane endpoint; None: every API server is reached
        # directly (the model alone, as the script and contract tests use it).
        self._endpoint_routing: ApiEndpointRouting | None = None

    def route_endpoint_through(self, routing: ApiEndpointRouting) -> None:
        """Calls to the control-plane endpoint go through this load balancer from now on."""
        with self._lock:
            self._endpoint_routing = routing

    def init_count_by_epoch(self) -> dict[int, int]:
        with self._lock:
            return dict(self._init_counts)

    def current_epoch(self) -> int | None:
        with self._lock:
            return self._current.number if self._current else None

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

    def add_host(self, host: Host) -> None:
        with self._lock:
            self._hosts[host.instance_id] = host
            self._record("host-added", host.instance_id, role=host.role)

    def new_host(self, instance_id: str, root: Path, **identity: str) -> Host:
        return Host(
            instance_id=instance_id, root=root, kubeadm_version=self._default_kubeadm_version, **identity
        )

    def component_versions(self) -> list[ComponentVersions]:
        """Each live member of the current cluster: its kubelet's version (the packages its instance
        installed) and, on a control plane, its kube-apiserver's."""
        with self._lock:
            epoch = self._current
            if epoch is None:
                return []
            registered = {node.host_id for node in epoch.nodes.values()}
            return [
                ComponentVersions(
                    host.instance_id,
                    host.kubeadm_version,
                    host.apiserver_version if self._is_control_plane(host) else None,
                    host.certificates_issued_at,
                )
                for host in self._hosts.values()
                if host.alive and host.epoch == epoch.number and host.instance_id in registered
            ]

    def remove_host(self, instance_id: str) -> None:
        """The instance is gone: its kubelet stops and its etcd member stops answering."""
        with self._lock:
            host = self.host(instance_id)
            host.alive = False
            host.kubelet_running = False
            self._record("host-removed", instance_id)

    def _sync_ready_conditions(self) -> None:
        """Move each Node's Ready condition to what its kubelet would post now: the kubelet part's job
        (twin/node/kube/kubelet.py overrides this); every recorded change calls it."""

    def _record(self, operation: str, instance_id: str | None, **detail: object) -> None:
        # every change of state is recorded: the moment a Node's Ready condition transitions
        self._sync_ready_conditions()
        self.history.append(HistoryEntry(self._now(), operation, instance_id, detail))

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
