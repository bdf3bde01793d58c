"""Issue 17, fault 4: a control plane is "already joined" only when its etcd member is a started member
of the cluster and its own kube-apiserver answers, not merely when kubelet.conf exists and kubelet runs.
A `join --control-plane` that failed after kubelet-start is reset (as kubeadm expects) and joined again."""

from __future__ import annotations

from tests.scripts.conftest import Nodes

CONTROL_PLANE = "control-plane"


def _three_control_planes(nodes: Nodes) -> list[str]:
    control_planes, _ = nodes.cluster(3, 0)
    return control_planes


def _kubeadm_operations(nodes: Nodes, instance_id: str) -> list[str]:
    return [
        e.operation for e in nodes.model.history if e.instance_id == instance_id and "kubeadm" in e.operation
    ]


def test_a_working_control_plane_is_already_joined(nodes: Nodes) -> None:
    cps = _three_control_planes(nodes)
    run = nodes.run(cps[2], "join-control-plane")
    assert (run.exit_code, run.output["ok"], run.output["changed"]) == (0, True, False)


def test_a_join_that_failed_after_kubelet_start_is_reset_and_joined_again(nodes: Nodes) -> None:
    # GIVEN the third control plane's join stopped after kubelet-start: kubelet.conf written and kubelet
    # running, but its etcd member and kube-apiserver never came up
    cps = _three_control_planes(nodes)
    broken = cps[2]
    nodes.model.stop_etcd(broken)
    nodes.model.stop_apiserver(broken)
    assert (nodes.fleet.sandbox(broken) / "etc/kubernetes/kubelet.conf").exists()
    assert nodes.model.kubelet_active(broken)

    # WHEN the join document runs again
    first = nodes.run(broken, "join-control-plane")

    # THEN it is not "already joined": kubeadm reset removed the dead member (etcd keeps quorum) and the
    # join ran again, its member add retried by kubeadm until etcd accepted it after that change
    assert (first.output["ok"], first.output["changed"]) == (True, True)
    operations = _kubeadm_operations(nodes, broken)
    assert operations[-2:] == ["kubeadm-reset", "kubeadm-join"]
    assert nodes.model.operation_counts().get("kubeadm-etcd-member-add-retried") == 1
    names = {m.instance_id: m.healthy for m in nodes.model.etcd_members()}
    assert names == dict.fromkeys(cps, True)
    assert nodes.model.apiserver_running(broken)


def test_a_worker_is_joined_with_kubelet_conf_and_a_running_kubelet(nodes: Nodes) -> None:
    _, workers = nodes.cluster(1, 1)
    run = nodes.run(workers[0], "join-worker")
    assert (run.output["ok"], run.output["changed"]) == (True, False)
