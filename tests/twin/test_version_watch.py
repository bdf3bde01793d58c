"""The twin's own version-skew check (twin/version_watch.py), behind the `version_skew_ok` invariant."""

from __future__ import annotations

from twin.node.kube.state import ComponentVersions
from twin.version_watch import skew_problems


def control_plane(iid: str, version: str) -> ComponentVersions:
    return ComponentVersions(iid, version, version, 0.0)


def worker(iid: str, version: str) -> ComponentVersions:
    return ComponentVersions(iid, version, None, None)


def test_a_cluster_at_one_version_is_within_the_policy():
    assert skew_problems([control_plane("i-1", "v1.37.2"), worker("i-2", "v1.37.2")]) == []
    assert skew_problems([]) == []


def test_mid_rollout_a_new_control_plane_beside_old_ones_is_fine_but_a_new_worker_is_not():
    cluster = [control_plane("i-1", "v1.37.2"), control_plane("i-2", "v1.38.0"), worker("i-3", "v1.37.2")]
    assert skew_problems(cluster) == []
    assert skew_problems([*cluster, worker("i-4", "v1.38.0")]) == [
        "kubelet of i-4 at 1.38 with kube-apiservers 1.37+"
    ]


def test_apiservers_two_minors_apart_and_kubelets_four_behind_break_it():
    assert skew_problems([control_plane("i-1", "v1.36.0"), control_plane("i-2", "v1.38.0")]) == [
        "kube-apiservers 1.36 and 1.38 apart"
    ]
    assert skew_problems([control_plane("i-1", "1.39.0"), worker("i-2", "1.35.9")]) == [
        "kubelet of i-2 at 1.35 with kube-apiservers 1.39+"
    ]


def test_the_model_runs_the_apiserver_at_the_cluster_configurations_version_with_fresh_certificates(tmp_path):
    from random import Random

    from twin.node.model import KubeModel

    now = [1_000.0]
    model = KubeModel(lambda: now[0], Random(7))
    host = model.new_host(
        "i-00000001",
        tmp_path,
        availability_zone="us-east-1a",
        private_ip="10.0.1.10",
        private_dns="ip-10-0-1-10.ec2.internal",
        region="us-east-1",
        cluster="demo",
        role="control-plane",
    )
    model.add_host(host)
    model.set_kubeadm_version("i-00000001", "v1.38.0")  # its packages are newer than the cluster's config
    config = (
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  name: cp-1\n---\n"
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.37.2\n"
        "controlPlaneEndpoint: nlb.example:6443\n"
    )
    model.kubeadm_init("i-00000001", config, upload_certs=False)
    (versions,) = model.component_versions()
    assert (versions.kubelet, versions.apiserver, versions.certificates_issued_at) == (
        "v1.38.0",
        "v1.37.2",
        1_000.0,
    )
