"""A control plane's whole removal on the real thing at once: drain-remove.sh, unmodified, drains and
deletes the Node on the real kube-apiserver and moves leadership off and removes the member on a real
three-member etcd cluster (the etcd kubeadm deploys), as it does when the terminate hook holds a
control plane. The members carry the control planes' Node names, as kubeadm names them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kubernetes.cluster import binaries
from tests.kubernetes.conftest import RealNodes
from tests.scripts.etcd_cluster import EtcdCluster

pytestmark = pytest.mark.kubernetes

CP = "control-plane"
WORKER = "worker"
ETCD_CLIENT_FILES = ("ca.crt", "healthcheck-client.crt", "healthcheck-client.key")


class ControlPlanes:
    """Three control planes: Nodes on the real API server, members of a real etcd cluster of their own."""

    def __init__(self, real: RealNodes, workdir: Path) -> None:
        self.real = real
        self.instances = [real.add(CP) for _ in range(3)]
        self.names = {instance: real.node_name(instance) for instance in self.instances}
        bin_dir = binaries()
        self.etcd = EtcdCluster.start(
            workdir, list(self.names.values()), etcd=str(bin_dir / "etcd"), etcdctl=str(bin_dir / "etcdctl")
        )
        for instance in self.instances:
            pki = real.nodes.fleet.sandbox(instance) / "etc/kubernetes/pki/etcd"
            for name in ETCD_CLIENT_FILES:
                (pki / name).write_bytes(self.etcd.pki[name].read_bytes())

    def instance_of(self, name: str) -> str:
        return next(instance for instance, node in self.names.items() if node == name)

    def drain_remove(self, on: str, leaving: str):
        return self.real.run(
            on, "drain-remove", etcd_endpoints=self.etcd.members[self.names[on]].client_url,
            InstanceId=leaving, RemoveEtcdMember="true", DrainTimeout="30s",
        )  # fmt: skip


@pytest.fixture
def control_planes(real: RealNodes, tmp_path: Path) -> Iterator[ControlPlanes]:
    planes = ControlPlanes(real, tmp_path / "etcd")
    try:
        yield planes
    finally:
        planes.etcd.close()


def test_removing_the_leading_control_plane_drains_deletes_moves_leadership_and_removes_it(
    control_planes: ControlPlanes,
) -> None:
    # GIVEN the etcd leader's control plane runs a pod, and a worker can take it
    real, etcd = control_planes.real, control_planes.etcd
    worker = real.add(WORKER)
    leaving = control_planes.instance_of(etcd.leader())
    local = next(cp for cp in control_planes.instances if cp != leaving)
    real.plane.add_pod(control_planes.names[leaving], "web-1")

    # WHEN drain-remove runs on another control plane
    run = control_planes.drain_remove(local, leaving)

    # THEN the pod was evicted and the Node deleted on the real API server...
    assert run.exit_code == 0, run.result.stderr
    out = run.output
    assert (out["drained"], out["node_deleted"], out["etcd_member_removed"]) == (True, True, True), out
    assert real.plane.pod("web-1") is None
    staying = sorted(control_planes.names[cp] for cp in control_planes.instances if cp != leaving)
    assert real.plane.node_names() == sorted([*staying, real.node_name(worker)])
    # ...and leadership moved before the member left the real etcd cluster
    assert "Leadership transferred" in run.result.stderr
    assert etcd.member_names() == staying
    assert etcd.leader() in staying
    # a second run finds nothing to do
    again = control_planes.drain_remove(local, leaving)
    assert again.exit_code == 0, again.result.stderr
    assert (again.output["changed"], again.output["etcd_member_removed"]) == (False, False)
