"""The kubelet on each host (systemctl) and the Ready condition it posts.

Every Node carries a Ready condition as the API serves it: "True" (kubelet posting, CNI applied),
"False" (kubelet posting NotReady: no CNI yet), "Unknown" (kubelet stopped posting: kubelet stopped or
instance gone; the node lifecycle controller's grace period is folded into the twin's latencies), with
lastTransitionTime = the virtual time of the last status change.
"""

from __future__ import annotations

from twin.node.kube.state import (
    READY_FALSE,
    READY_TRUE,
    READY_UNKNOWN,
    ClusterState,
    _Epoch,
    _Node,
    rfc3339,
)


class Kubelet(ClusterState):
    """The kubelet (systemctl) and the Ready condition it posts."""

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

    def running_static_pods(self, instance_id: str) -> list[str]:
        """The kube-system static pods whose containers run on this host (what `crictl ps` lists): a
        control plane's etcd and kube-apiserver. `stop_etcd` models a member that stops answering (hung,
        partitioned) while its container runs, so `crictl exec` into it still works; `crash_etcd` one
        whose container exited, which `crictl ps` no longer lists."""
        with self._lock:
            host = self.host(instance_id)
            if not host.alive or not self._is_control_plane(host):
                return []
            etcd = ["etcd"] if host.etcd_container_running else []
            return etcd + (["kube-apiserver"] if host.apiserver_running else [])

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

    def _node_ready(self, epoch: _Epoch, node: _Node) -> bool:
        host = self._hosts.get(node.host_id)
        running = host is not None and host.epoch == epoch.number and host.alive and host.kubelet_running
        return running and bool(epoch.cni_manifests)

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
