"""Kubernetes versions and the version-skew policy (core/version_skew.py)."""

from __future__ import annotations

import pytest

from kcluster.core.version_skew import Components, KubeVersion, upgrade_refusal, violations


def test_versions_parse_with_or_without_the_v_and_order_by_number():
    assert KubeVersion.parse("v1.37.2") == KubeVersion(1, 37, 2)
    assert KubeVersion.parse("1.38") == KubeVersion(1, 38, 0)
    assert KubeVersion.parse("1.9.0") < KubeVersion.parse("1.10.0")  # numbers, not strings
    assert str(KubeVersion.parse("v1.37.2")) == "1.37.2"
    with pytest.raises(ValueError, match="not a Kubernetes version"):
        KubeVersion.parse("latest")


def test_kubeadm_upgrades_one_minor_at_a_time_and_names_the_minor_to_take_first():
    running = KubeVersion.parse("1.36.4")
    refusal = upgrade_refusal(running, KubeVersion.parse("1.38.0"))
    assert refusal is not None and "1.37 first" in refusal and "one minor at a time" in refusal
    assert upgrade_refusal(running, KubeVersion.parse("1.37.0")) is None
    assert upgrade_refusal(running, KubeVersion.parse("1.36.9")) is None  # a patch, up
    assert upgrade_refusal(running, KubeVersion.parse("1.36.1")) is None  # a patch, down: a rollback
    assert "does not downgrade" in (upgrade_refusal(running, KubeVersion.parse("1.35.9")) or "")


def test_apiservers_more_than_one_minor_apart_break_the_policy():
    assert violations(Components.of(["1.37.2", "1.38.0"], [])) == []
    assert violations(Components.of(["1.36.2", "1.38.0"], [])) == [
        "kube-apiservers 1.36.2 and 1.38.0 are more than one minor apart"
    ]


def test_no_worker_kubelet_newer_than_the_oldest_apiserver():
    # GIVEN one control plane already at 1.38, another still at 1.37
    apiservers = ["1.37.2", "1.38.0"]
    # THEN a worker at 1.38 may not join yet (the load balancer may send it to the 1.37 apiserver)
    assert violations(Components.of(apiservers, ["1.37.2", "1.38.0"])) == [
        "kubelet 1.38.0 is newer than the oldest kube-apiserver 1.37.2"
    ]
    assert violations(Components.of(apiservers, ["1.37.2"])) == []
    # a kubelet a patch newer within the same minor is fine
    assert violations(Components.of(["1.37.2"], ["1.37.5"])) == []


def test_kubelets_at_most_three_minors_older():
    assert violations(Components.of(["1.38.0"], ["1.35.0"])) == []
    assert violations(Components.of(["1.39.0"], ["1.35.0"])) == [
        "kubelet 1.35.0 is more than three minors older than kube-apiserver 1.39.0"
    ]


def test_a_control_plane_added_is_an_apiserver_and_a_worker_added_a_kubelet():
    # (a control plane's kubelet talks to its own apiserver: ControlPlaneKubeletLocalMode)
    base = Components.of(["1.37.2"], ["1.37.2"])
    new = KubeVersion.parse("1.38.0")
    worker = base.with_node(new, control_plane=False)
    assert (worker.apiservers, worker.kubelets) == (base.apiservers, (*base.kubelets, new))
    control_plane = base.with_node(new, control_plane=True)
    assert (control_plane.apiservers, control_plane.kubelets) == ((*base.apiservers, new), base.kubelets)
    assert violations(control_plane) == []
