"""Pods, PodDisruptionBudgets and eviction: what `kubectl drain` meets.

Pods are minimal (a node, an optional PodDisruptionBudget, DaemonSet-managed or not, emptyDir or not);
an eviction that would take a PDB below minAvailable is refused, so a drain times out the way
kubectl's does; an evicted pod with a grace period is only gone once a running kubelet ends it.
"""

from __future__ import annotations

from twin.node.kube.state import POD_NAMESPACE, ClusterState, KubeError, PodView, _Pod


def _kubectl_minor(version: str) -> int:
    return int(version.lstrip("v").split(".")[1])


def _drain_error(node: str, reasons: str) -> str:
    return (
        f'error: unable to drain node "{node}" due to error: {reasons}, continuing command...\n'
        f"There are pending nodes to be drained:\n {node}\n"
        f"error: {reasons}"
    )


class Workloads(ClusterState):
    """Pods, PodDisruptionBudgets, eviction and drain.

    Uses the API server part (the Node to drain, cordon) and the kubelet part (a pod on a Ready Node is
    healthy).
    """

    def pods(self) -> list[PodView]:
        with self._lock:
            return [PodView(p.name, p.node, p.pdb, p.daemonset, p.emptydir) for p in self._pods.values()]

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
