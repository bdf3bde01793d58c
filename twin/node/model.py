"""One Kubernetes cluster as kubeadm, kubelet, kubectl and etcd see it: the twin's KubeModel.

The fake binaries on every sandbox's PATH reach it through twin/node/server.py; the invariant checks
read it directly. KubeModel composes the parts of twin/node/kube/, one per thing it models, over one
shared state (twin/node/kube/state.py: hosts, objects, history, the lock):

* kubeadm.py: init, join, reset, tokens and the uploaded certificates;
* kubelet.py: the kubelet (systemctl) and each Node's Ready condition;
* apiserver.py: the API server's Node objects, manifests (the CNI), cordon and delete;
* workloads.py: pods, PodDisruptionBudgets, eviction and drain;
* etcd.py: etcd membership, health, the leader and etcdctl's answers.

Faults for the scenarios: `stop_kubelet` (the instance stays), `stop_apiserver` and `stop_etcd`, each
with a start; `crash_etcd` (the etcd container exited, nothing to exec into; `start_etcd` undoes it).
"""

from __future__ import annotations

from twin.node.kube.apiserver import ApiServer
from twin.node.kube.etcd import Etcd
from twin.node.kube.kubeadm import Kubeadm
from twin.node.kube.kubelet import Kubelet
from twin.node.kube.state import (
    CERTIFICATE_KEY_TTL_SECONDS,
    CONTROL_PLANE_LABEL,
    DEFAULT_KUBEADM_VERSION,
    DEFAULT_TOKEN_TTL_SECONDS,
    ETCD_CLIENT_PORT,
    ETCD_PEER_PORT,
    ETCD_VERSION,
    ETCDCTL_EXIT_BAD_ARGS,
    ETCDCTL_EXIT_ERROR,
    INSTANCE_ID_LABEL,
    KUBEADM_API_VERSION,
    MEMBERSHIP_SETTLE_SECONDS,
    POD_NAMESPACE,
    READY_FALSE,
    READY_TRUE,
    READY_UNKNOWN,
    EtcdMember,
    HistoryEntry,
    Host,
    KubeError,
    NodeView,
    PodView,
    parse_duration,
    rfc3339,
)
from twin.node.kube.workloads import Workloads


class KubeModel(Kubeadm, Kubelet, ApiServer, Workloads, Etcd):
    """The whole cluster: every part of twin/node/kube/ over one shared state."""


__all__ = [
    "CERTIFICATE_KEY_TTL_SECONDS",
    "CONTROL_PLANE_LABEL",
    "DEFAULT_KUBEADM_VERSION",
    "DEFAULT_TOKEN_TTL_SECONDS",
    "ETCDCTL_EXIT_BAD_ARGS",
    "ETCDCTL_EXIT_ERROR",
    "ETCD_CLIENT_PORT",
    "ETCD_PEER_PORT",
    "ETCD_VERSION",
    "INSTANCE_ID_LABEL",
    "KUBEADM_API_VERSION",
    "MEMBERSHIP_SETTLE_SECONDS",
    "POD_NAMESPACE",
    "READY_FALSE",
    "READY_TRUE",
    "READY_UNKNOWN",
    "EtcdMember",
    "HistoryEntry",
    "Host",
    "KubeError",
    "KubeModel",
    "NodeView",
    "PodView",
    "parse_duration",
    "rfc3339",
]
