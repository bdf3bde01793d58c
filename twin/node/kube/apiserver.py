"""The API server as kubectl sees it: Node objects, labels, manifests (the CNI), cordon and delete,
and which kube-apiserver answers a kubeconfig.

`stop_apiserver` stops the kube-apiserver static pod on one control plane: kubectl and kubeadm there
see the API down (the twin routes a control plane's admin kubeconfig to its own API server).
"""

from __future__ import annotations

import base64

import yaml

from twin.node.kube.kubeadm import node_labels
from twin.node.kube.state import (
    CONTROL_PLANE_LABEL,
    INSTANCE_ID_LABEL,
    ClusterState,
    Host,
    KubeError,
    NodeView,
    _Epoch,
    _Member,
    _Node,
)


class ApiServer(ClusterState):
    """The API server: Node objects, manifests, cordon and delete; which apiserver answers.

    Uses the etcd part (the API answers while etcd has quorum), the kubelet part (the Ready condition)
    and the workloads part (a deleted Node's pods are rescheduled).
    """

    def nodes(self) -> list[NodeView]:
        with self._lock:
            if self._current is None:
                return []
            self._sync_ready_conditions()
            return [self._node_view(self._current, node) for node in self._current.nodes.values()]

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

    def apiserver_running(self, instance_id: str) -> bool:
        """Whether this instance's own kube-apiserver answers (false on workers and stopped ones)."""
        with self._lock:
            host = self.host(instance_id)
            return host.alive and host.apiserver_running and self._is_control_plane(host)

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

    def apply_manifest(self, kubeconfig_text: str, url: str, images: tuple[str, ...] = ()) -> str:
        """The CNI manifest (by URL, or a file's content key with the images it names). Its pods come up,
        and Nodes turn Ready, only when every image can be pulled: anonymous Docker Hub pulls are not
        (Docker's rate limit, shared by every node behind one NAT gateway, makes them fail at scale)."""
        with self._lock:
            epoch = self._api_epoch(kubeconfig_text)
            created = url not in epoch.cni_manifests
            unpullable = [image for image in images if _anonymous_docker_hub(image)]
            if created:
                self._record(
                    "cni-applied",
                    None,
                    epoch=epoch.number,
                    url=url,
                    images=list(images),
                    unpullable=unpullable,
                )
                if not unpullable:
                    epoch.cni_manifests.append(url)
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

    def cordon(self, kubeconfig_text: str, name: str) -> str:
        with self._lock:
            node = self._api_node(kubeconfig_text, name)
            if node.unschedulable:
                return f"node/{name} already cordoned\n"
            node.unschedulable = True
            self._record("node-cordoned", node.instance_id, node=name)
            return f"node/{name} cordoned\n"

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

    def _api_node(self, kubeconfig_text: str, name: str) -> _Node:
        epoch = self._api_epoch(kubeconfig_text)
        node = epoch.nodes.get(name)
        if node is None:
            raise KubeError(f'Error from server (NotFound): nodes "{name}" not found')
        return node

    def _live_control_plane(self, epoch: _Epoch) -> _Member | None:
        if not self._has_quorum(epoch):
            return None
        return next((m for m in epoch.members.values() if self._member_healthy(m)), None)

    def _api_answers(self, epoch: _Epoch) -> bool:
        """Some API server the control-plane endpoint routes to runs, and etcd, its storage, has quorum."""
        if not epoch.members or self._live_control_plane(epoch) is None:
            return False
        routing = self._endpoint_routing
        routed = routing.routed_behind(epoch.control_plane_endpoint) if routing is not None else None
        return any(
            self._member_healthy(member)
            and self._hosts[member.instance_id].apiserver_running
            and (routed is None or member.instance_id in routed)
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
        labels = node_labels(kubelet_args)
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


def _anonymous_docker_hub(image: str) -> bool:
    """An image reference pulled from Docker Hub: no registry host (docker.io implied) or docker.io's."""
    first, slash, _ = image.partition("/")
    if not slash or ("." not in first and ":" not in first and first != "localhost"):
        return True
    return first in ("docker.io", "index.docker.io", "registry-1.docker.io")
