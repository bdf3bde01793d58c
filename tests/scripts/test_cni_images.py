"""Issue 17, fault 3: Calico's manifest names its images on Docker Hub, whose anonymous pulls are
rate-limited per IP (every node behind one NAT gateway shares it). init applies it with the images moved
to the cluster's CNI registry: quay.io/calico by default, or a mirror named in the cluster config."""

from __future__ import annotations

import json

from tests.scripts.conftest import CLUSTER, Nodes

CONTROL_PLANE = "control-plane"


def _applied_images(nodes: Nodes) -> list[str]:
    (applied,) = [entry for entry in nodes.model.history if entry.operation == "cni-applied"]
    return applied.detail["images"]


def _set_registry(nodes: Nodes, registry: str) -> None:
    ssm = nodes.fleet._ssm_client("us-east-1", "")
    name = f"/kcluster/{CLUSTER}/config"
    config = json.loads(ssm.get_parameter(Name=name)["Parameter"]["Value"])
    config["cni"] = {"image_registry": registry}
    ssm.put_parameter(Name=name, Value=json.dumps(config), Type="String", Overwrite=True)


def test_init_pulls_calicos_images_from_quay_not_docker_hub(nodes: Nodes) -> None:
    cp = nodes.add(CONTROL_PLANE)
    run = nodes.run(cp, "init")
    assert run.output["ok"], run.result.stderr
    images = _applied_images(nodes)
    assert images and all(image.startswith("quay.io/calico/") for image in images)
    assert {image.split(":")[0] for image in images} == {
        "quay.io/calico/cni",
        "quay.io/calico/node",
        "quay.io/calico/kube-controllers",
    }
    assert all(view.ready for view in nodes.model.nodes())


def test_init_pulls_them_from_a_mirror_the_cluster_config_names(nodes: Nodes) -> None:
    mirror = "123456789012.dkr.ecr.us-east-1.amazonaws.com/quay/calico"
    _set_registry(nodes, mirror)
    cp = nodes.add(CONTROL_PLANE)
    assert nodes.run(cp, "init").output["ok"]
    assert all(image.startswith(mirror + "/") for image in _applied_images(nodes))


def test_a_registry_that_is_not_one_is_refused_before_anything_changes(nodes: Nodes) -> None:
    _set_registry(nodes, "https://quay.io/calico")
    cp = nodes.add(CONTROL_PLANE)
    run = nodes.run(cp, "init")
    assert (run.output["ok"], run.output["error"], run.output["changed"]) == (False, "config-invalid", False)
    assert not [entry for entry in nodes.model.history if entry.operation == "kubeadm-init"]


def test_the_twin_keeps_nodes_notready_when_the_cni_images_come_from_docker_hub(nodes: Nodes) -> None:
    # Terraform refuses Docker Hub as cni_image_registry; if its images came from there anyway, the
    # twin's CNI pods never pull them and no Node turns Ready, as under Docker's rate limit at scale
    _set_registry(nodes, "docker.io/calico")
    cp = nodes.add(CONTROL_PLANE)
    assert nodes.run(cp, "init").output["ok"]
    (applied,) = [entry for entry in nodes.model.history if entry.operation == "cni-applied"]
    assert applied.detail["unpullable"] == applied.detail["images"] != []
    assert [view.ready for view in nodes.model.nodes()] == [False]
