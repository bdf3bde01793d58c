"""drain-remove.sh, unmodified, against the real kube-apiserver, kube-controller-manager and kubectl.

The leaving node has no kubelet (it is leaving): an evicted pod with a grace period stays Terminating, as
on a node whose kubelet died; a pod with grace period 0 is gone at once.
"""

from __future__ import annotations

import pytest

from tests.kubernetes.conftest import RealNodes

pytestmark = pytest.mark.kubernetes

CP = "control-plane"
WORKER = "worker"


def _drain_remove(real: RealNodes, on: str, leaving: str, timeout: str = "60s"):
    return real.run(on, "drain-remove", InstanceId=leaving, RemoveEtcdMember="false", DrainTimeout=timeout)


def _expected(name: str, *, changed: bool, drained: bool, timed_out: bool, deleted: bool) -> dict:
    return {
        "ok": True, "step": "drain-remove", "changed": changed, "node_name": name, "drained": drained,
        "drain_timed_out": timed_out, "node_deleted": deleted, "etcd_member_removed": False,
    }  # fmt: skip


def test_a_normal_drain_evicts_the_pods_and_deletes_the_node(real: RealNodes) -> None:
    cp, worker, other = real.add(CP), real.add(WORKER), real.add(WORKER)
    name = real.node_name(worker)
    real.plane.add_pod(name, "web-1")

    run = _drain_remove(real, cp, worker)

    assert run.exit_code == 0, run.result.stderr
    assert run.output == _expected(name, changed=True, drained=True, timed_out=False, deleted=True)
    assert "evicting pod default/web-1" in run.result.stderr
    assert real.plane.pod("web-1") is None
    assert real.plane.node_names() == sorted([real.node_name(cp), real.node_name(other)])
    # a second run is a no-op: no Node names the instance any more
    again = _drain_remove(real, cp, worker)
    assert again.exit_code == 0, again.result.stderr
    assert again.output == _expected("", changed=False, drained=False, timed_out=False, deleted=False)


def test_a_pdb_that_blocks_eviction_times_out_the_drain_and_the_node_is_still_deleted(
    real: RealNodes,
) -> None:
    cp, worker, other = real.add(CP), real.add(WORKER), real.add(WORKER)
    name = real.node_name(worker)
    real.plane.add_pod(name, "web-1", labels={"app": "web"})
    real.plane.add_pod(real.node_name(other), "web-2", labels={"app": "web"})
    real.plane.add_pdb("web", {"app": "web"}, min_available=2)

    run = _drain_remove(real, cp, worker, timeout="3s")

    assert run.exit_code == 0, run.result.stderr
    assert run.output == _expected(name, changed=True, drained=False, timed_out=True, deleted=True)
    assert "Cannot evict pod as it would violate the pod's disruption budget" in run.result.stderr
    assert "global timeout reached: 3s" in run.result.stderr
    assert name not in real.plane.node_names()


def test_a_pod_that_never_terminates_times_out_the_drain_and_the_node_is_still_deleted(
    real: RealNodes,
) -> None:
    # The bug real kubectl showed: from 1.32 such a drain ends with "... to terminate: context deadline
    # exceeded"; drain-remove grepped only "global timeout reached", reported drain-failed and never
    # deleted the Node.
    cp, worker = real.add(CP), real.add(WORKER)
    name = real.node_name(worker)
    real.plane.add_pod(name, "slow-1", grace_seconds=300)

    run = _drain_remove(real, cp, worker, timeout="3s")

    assert run.exit_code == 0, run.result.stderr
    assert run.output == _expected(name, changed=True, drained=False, timed_out=True, deleted=True)
    assert (
        'error when waiting for pod "slow-1" in namespace "default" to terminate: context deadline exceeded'
        in (run.result.stderr)
    )
    assert name not in real.plane.node_names()
    pod = real.plane.pod("slow-1")
    assert pod is not None and pod["metadata"].get("deletionTimestamp")  # Terminating: no kubelet finishes it


def test_an_instance_without_a_node_is_a_no_op(real: RealNodes) -> None:
    cp, worker = real.add(CP), real.add(WORKER, node=False)

    run = _drain_remove(real, cp, worker)

    assert run.exit_code == 0, run.result.stderr
    assert run.output == _expected("", changed=False, drained=False, timed_out=False, deleted=False)
