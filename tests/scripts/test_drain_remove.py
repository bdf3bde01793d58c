"""drain-remove and refresh-join's stray cleanup, really run by bash in twin sandboxes against the model
(kubectl drain with PodDisruptionBudgets, the fake etcdctl over the model's etcd membership)."""

from __future__ import annotations

import pytest

from tests.scripts.conftest import Nodes
from twin.node.model import KubeError

CONTROL_PLANE = "control-plane"
WORKER = "worker"


def _cluster(nodes: Nodes, control_planes: int = 3, workers: int = 3) -> tuple[list[str], list[str]]:
    return nodes.cluster(control_planes, workers)


def _node_name(nodes: Nodes, instance_id: str) -> str:
    return next(view.name for view in nodes.model.nodes() if view.instance_id == instance_id)


def _drain_remove(nodes: Nodes, on: str, leaving: str, *, etcd: bool = False, **overrides: str):
    return nodes.run(
        on, "drain-remove", InstanceId=leaving, RemoveEtcdMember="true" if etcd else "false", **overrides
    )


def _admin(nodes: Nodes, instance_id: str) -> str:
    return (nodes.fleet.sandbox(instance_id) / "etc/kubernetes/admin.conf").read_text()


def test_a_pdb_that_blocks_the_drain_times_out_and_the_node_is_still_deleted(nodes: Nodes) -> None:
    # GIVEN two replicas guarded by a PDB that allows no disruption
    cps, wks = _cluster(nodes)
    nodes.model.add_pod(_node_name(nodes, wks[0]), "web-1", pdb="web")
    nodes.model.add_pod(_node_name(nodes, wks[1]), "web-2", pdb="web")
    nodes.model.set_pdb("web", 2)
    # WHEN the first worker leaves
    run = _drain_remove(nodes, cps[0], wks[0], DrainTimeout="30s")
    # THEN the drain timed out, which is reported, and the Node is gone anyway
    assert run.exit_code == 0
    assert run.output == {
        "ok": True, "step": "drain-remove", "changed": True, "node_name": _node_name_of_removed(run),
        "drained": False, "drain_timed_out": True, "node_deleted": True, "etcd_member_removed": False,
    }  # fmt: skip
    assert wks[0] not in {view.instance_id for view in nodes.model.nodes()}
    assert "global timeout reached: 30s" in run.result.stderr
    counts = nodes.model.operation_counts()
    assert (counts.get("node-drain-timed-out"), counts.get("node-deleted"), counts.get("node-drained")) == (
        1, 1, None,
    )  # fmt: skip
    # the blocked pod was not evicted by the drain; its controller recreated it once the Node went
    assert {pod.name: pod.node for pod in nodes.model.pods()}["web-2"] == _node_name(nodes, wks[1])
    assert len(nodes.model.etcd_members()) == 3


def test_a_pod_that_never_terminates_times_out_the_drain_and_the_node_is_still_deleted(nodes: Nodes) -> None:
    # kubectl 1.32 and newer end such a drain with "... to terminate: context deadline exceeded", not
    # "global timeout reached": the script reported drain-failed and never deleted the Node.
    # GIVEN a worker whose kubelet is dead, running a pod with a grace period (it can only ever be
    # Terminating), in a cluster at the version kcluster installs
    cps, wks = _cluster(nodes)
    leaving = _node_name(nodes, wks[0])
    nodes.model.add_pod(leaving, "db-0", grace_seconds=30)
    nodes.model.stop_kubelet(wks[0])
    # WHEN it leaves
    run = _drain_remove(nodes, cps[0], wks[0], DrainTimeout="30s")
    # THEN the drain timed out, which is reported, and the Node is gone anyway
    assert run.exit_code == 0, run.output
    assert (run.output["drain_timed_out"], run.output["node_deleted"]) == (True, True)
    assert 'waiting for pod "db-0" in namespace "default" to terminate: context deadline exceeded' in (
        run.result.stderr
    )
    assert wks[0] not in {view.instance_id for view in nodes.model.nodes()}


def _node_name_of_removed(run) -> str:
    return run.output["node_name"]


def test_daemonset_and_emptydir_pods_do_not_stop_the_drain(nodes: Nodes) -> None:
    cps, wks = _cluster(nodes)
    leaving = _node_name(nodes, wks[0])
    nodes.model.add_pod(leaving, "calico-node-x", daemonset=True)
    nodes.model.add_pod(leaving, "cache-0", emptydir=True)
    nodes.model.add_pod(leaving, "web-1", pdb="web")
    nodes.model.add_pod(_node_name(nodes, wks[1]), "web-2", pdb="web")
    nodes.model.set_pdb("web", 1)

    run = _drain_remove(nodes, cps[0], wks[0])

    assert (run.output["drained"], run.output["drain_timed_out"], run.output["node_deleted"]) == (
        True, False, True,
    )  # fmt: skip
    pods = {pod.name: pod.node for pod in nodes.model.pods()}
    assert "calico-node-x" not in pods  # a DaemonSet pod goes with its Node
    remaining_workers = {_node_name(nodes, w) for w in wks[1:]}
    assert pods["cache-0"] in remaining_workers and pods["web-1"] in remaining_workers
    assert nodes.model.operation_counts()["node-drained"] == 1


def test_kubectl_drain_refuses_daemonset_and_emptydir_pods_without_the_flags(nodes: Nodes) -> None:
    cps, wks = _cluster(nodes, control_planes=1, workers=1)
    name = _node_name(nodes, wks[0])
    nodes.model.add_pod(name, "calico-node-x", daemonset=True)
    nodes.model.add_pod(name, "cache-0", emptydir=True)
    with pytest.raises(KubeError) as refused:
        nodes.model.drain(_admin(nodes, cps[0]), name, ignore_daemonsets=False, delete_emptydir_data=False,
                          timeout="10s")  # fmt: skip
    assert "--ignore-daemonsets" in str(refused.value) and "--delete-emptydir-data" in str(refused.value)
    # the cordon took effect even though the drain failed, as with kubectl
    assert next(view for view in nodes.model.nodes() if view.name == name).unschedulable
    assert {pod.name for pod in nodes.model.pods()} == {"calico-node-x", "cache-0"}


def test_removing_the_leader_control_plane_moves_leadership_then_removes_its_member(nodes: Nodes) -> None:
    cps, _ = _cluster(nodes)
    leader = nodes.model.etcd_leader()
    assert leader is not None and leader.instance_id == cps[0]
    # WHEN the leader's instance leaves (run from another control plane)
    run = _drain_remove(nodes, cps[1], cps[0], etcd=True)
    # THEN leadership moved first, then the member and the Node went
    assert run.exit_code == 0, run.result.stderr
    assert (run.output["etcd_member_removed"], run.output["node_deleted"], run.output["drained"]) == (
        True, True, True,
    )  # fmt: skip
    members = nodes.model.etcd_members()
    assert sorted(m.instance_id for m in members) == sorted(cps[1:])
    new_leader = nodes.model.etcd_leader()
    assert new_leader is not None and new_leader.instance_id in cps[1:]
    operations = [entry.operation for entry in nodes.model.history]
    assert operations.index("etcd-leader-moved") < operations.index("etcd-member-removed")


def test_a_second_run_is_a_no_op_success(nodes: Nodes) -> None:
    cps, _ = _cluster(nodes)
    first = _drain_remove(nodes, cps[0], cps[2], etcd=True)
    assert first.output["changed"] is True
    before = (nodes.model.nodes(), nodes.model.etcd_members(), nodes.model.operation_counts())
    second = _drain_remove(nodes, cps[0], cps[2], etcd=True)
    assert second.exit_code == 0
    assert second.output == {
        "ok": True, "step": "drain-remove", "changed": False, "node_name": "", "drained": False,
        "drain_timed_out": False, "node_deleted": False, "etcd_member_removed": False,
    }  # fmt: skip
    assert (nodes.model.nodes(), nodes.model.etcd_members()) == before[:2]


def test_removal_that_would_break_quorum_is_refused_and_nothing_is_removed(nodes: Nodes) -> None:
    # GIVEN three members, one of them dead
    cps, _ = _cluster(nodes, workers=0)
    nodes.terminate(cps[2])
    members_before = nodes.model.etcd_members()
    # WHEN a healthy one is to be removed
    run = _drain_remove(nodes, cps[0], cps[1], etcd=True)
    # THEN refused: one healthy member would be left of two
    assert (run.exit_code, run.output["ok"], run.output["error"]) == (4, False, "quorum-risk")
    assert "2 of 3 members are healthy" in run.output["message"]
    assert nodes.model.etcd_members() == members_before
    assert "etcd-member-removed" not in nodes.model.operation_counts()


def test_two_removals_right_after_each_other_succeed_through_the_retry(nodes: Nodes) -> None:
    cps, _ = _cluster(nodes, control_planes=5, workers=0)
    assert _drain_remove(nodes, cps[0], cps[4], etcd=True).output["etcd_member_removed"]
    # no time passes: etcd refuses the next membership change until its peers settle
    run = _drain_remove(nodes, cps[0], cps[3], etcd=True)
    assert run.output["etcd_member_removed"] is True
    assert "unhealthy cluster" in run.result.stderr
    slept = [e.detail["seconds"] for e in nodes.model.history if e.operation == "script-slept"]
    assert slept and slept == [1.0, 2.0, 4.0][: len(slept)]
    assert sorted(m.instance_id for m in nodes.model.etcd_members()) == sorted(cps[:3])


def test_the_member_of_an_instance_whose_node_is_gone_is_found_through_ec2(nodes: Nodes) -> None:
    cps, _ = _cluster(nodes, workers=0)
    # the Node was deleted by an earlier run that did not remove the member
    assert _drain_remove(nodes, cps[0], cps[2]).output["node_deleted"] is True
    assert len(nodes.model.etcd_members()) == 3
    run = _drain_remove(nodes, cps[0], cps[2], etcd=True)
    assert (run.output["node_name"], run.output["etcd_member_removed"]) == ("", True)
    assert cps[2] not in {m.instance_id for m in nodes.model.etcd_members()}


def test_drain_remove_refuses_to_run_on_the_leaving_node(nodes: Nodes) -> None:
    cps, _ = _cluster(nodes, workers=0)
    run = _drain_remove(nodes, cps[1], cps[1], etcd=True)
    assert (run.exit_code, run.output["error"]) == (2, "invalid-target")
    assert len(nodes.model.etcd_members()) == 3


@pytest.mark.parametrize(
    ("name", "value"),
    [("InstanceId", "i-123;reboot"), ("RemoveEtcdMember", "yes"), ("DrainTimeout", "0s"),
     ("DrainTimeout", "5m")],
)  # fmt: skip
def test_drain_remove_parameters_are_validated_in_bash(nodes: Nodes, name: str, value: str) -> None:
    cps, _ = _cluster(nodes, control_planes=1, workers=0)
    run = nodes.run(cps[0], "drain-remove", **{name: value})
    assert (run.exit_code, run.output["error"]) == (2, "invalid-parameter")
    assert name in run.output["message"]


def test_refresh_join_removes_stray_members_and_nodes_but_keeps_live_ones(nodes: Nodes) -> None:
    # GIVEN a dead control plane and a dead worker, both terminated without drain-remove
    cps, wks = _cluster(nodes, control_planes=5, workers=2)
    nodes.terminate(cps[4])
    nodes.terminate(wks[1])
    # and a live control plane whose etcd is down right now (not stray: its instance lives)
    nodes.model.host(cps[3]).alive = False
    # WHEN refresh-join runs before a control-plane join
    run = nodes.run(cps[0], "refresh-join")
    nodes.model.host(cps[3]).alive = True
    # THEN the dead instances' member and Nodes are gone, the live ones stay
    assert run.exit_code == 0, run.result.stderr
    assert (run.output["stray_members_removed"], run.output["stray_nodes_deleted"]) == (1, 2)
    assert sorted(m.instance_id for m in nodes.model.etcd_members()) == sorted(cps[:4])
    assert sorted(v.instance_id for v in nodes.model.nodes()) == sorted(cps[:4] + wks[:1])
    # AND a second run finds nothing more to remove
    nodes.clock.advance(30)
    again = nodes.run(cps[0], "refresh-join")
    assert (again.output["stray_members_removed"], again.output["stray_nodes_deleted"]) == (0, 0)


def test_refresh_join_removes_an_unstarted_member_a_failed_join_left_behind(nodes: Nodes) -> None:
    cps, _ = _cluster(nodes, control_planes=3, workers=0)
    nodes.model.add_unstarted_etcd_member("https://10.0.9.9:2380")
    nodes.clock.advance(30)
    assert len(nodes.model.etcd_members()) == 4
    run = nodes.run(cps[0], "refresh-join")
    assert (run.output["stray_members_removed"], run.output["stray_nodes_deleted"]) == (1, 0)
    assert sorted(m.instance_id for m in nodes.model.etcd_members()) == sorted(cps)


def test_refresh_join_removes_nothing_when_ec2_does_not_list_this_instance(nodes: Nodes) -> None:
    cps, wks = _cluster(nodes, control_planes=1, workers=1)
    nodes.ec2.delete_tags(Resources=[cps[0]], Tags=[{"Key": "kcluster:role"}])
    nodes.terminate(wks[0])
    run = nodes.run(cps[0], "refresh-join")
    assert (run.output["stray_members_removed"], run.output["stray_nodes_deleted"]) == (0, 0)
    assert len(nodes.model.nodes()) == 2
