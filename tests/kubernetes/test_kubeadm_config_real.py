"""The kubeadm configurations the node scripts write, read by the real kubeadm at kubernetes_version.

The twin's kubeadm accepts whatever the scripts hand it; the real one validates every field of the
v1beta4 API. Here init.sh and the joins run unmodified up to their `kubeadm init|join --config FILE`;
a shim in front of the real kubeadm keeps FILE and stops the script there (no kubelet, no container
runtime here). Then the real kubeadm judges FILE: `kubeadm config validate`, and for init the
ClusterConfiguration uploaded with `kubeadm init phase upload-config kubeadm` and read back from the
kubeadm-config ConfigMap, which is what every later join and `kubeadm upgrade` reads of the cluster.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.kubernetes.conftest import RealNodes
from tests.scripts.conftest import CLUSTER, ENDPOINT, default_parameters

pytestmark = pytest.mark.kubernetes

CP = "control-plane"
WORKER = "worker"
# Join material of the published shapes (common.sh checks them before writing the JoinConfiguration).
TOKEN = "abcdef.0123456789abcdef"
CA_HASH = "sha256:" + "0123456789abcdef" * 4
CERTIFICATE_KEY = "fedcba9876543210" * 4


def _capturing_bin(real: RealNodes, directory: Path) -> Path:
    """The real tools, with a kubeadm that keeps `init|join --config FILE`'s FILE and fails the step."""
    directory.mkdir()
    for tool in real.bin.iterdir():
        if tool.name != "kubeadm":
            (directory / tool.name).symlink_to(tool)
    kubeadm = directory / "kubeadm"
    kubeadm.write_text(
        "#!/usr/bin/env bash\n"
        'if [[ ( "$1" == init || "$1" == join ) && "$2" == --config ]]; then\n'
        f'  cp "$3" "{directory}/$1.yaml"\n'
        "  exit 1\n"
        "fi\n"
        f'exec "{real.bin}/kubeadm" "$@"\n'
    )
    kubeadm.chmod(0o755)
    return directory


def _written_config(real: RealNodes, tmp_path: Path, instance_id: str, key: str, verb: str) -> Path:
    shim = _capturing_bin(real, tmp_path / "capture")
    real.bin = shim
    run = real.run(instance_id, key)
    # the shim stops the script at kubeadm, which it reports as kubeadm's failure
    assert run.output.get("error") == "kubeadm-failed", (run.output, run.result.stderr[-2000:])
    written = shim / f"{verb}.yaml"
    assert written.is_file(), f"{key} never reached kubeadm {verb}: {run.output} {run.result.stderr[-2000:]}"
    return written


def _validate(real: RealNodes, config: Path) -> None:
    validated = real.plane.kubeadm("config", "validate", "--config", str(config), check=False)
    assert validated.returncode == 0, f"{config.read_text()}\n{validated.stdout}{validated.stderr}"


def _publish_join_material(real: RealNodes) -> None:
    ssm = real.nodes.fleet._ssm_client("us-east-1", "")
    for name, value in (("token", TOKEN), ("ca-cert-hash", CA_HASH), ("certificate-key", CERTIFICATE_KEY)):
        ssm.put_parameter(
            Name=f"/kcluster/{CLUSTER}/join/{name}", Value=value, Type="SecureString", Overwrite=True
        )


def _cluster_configuration(real: RealNodes) -> dict:
    configmap = real.plane.get("configmap", "kubeadm-config", "-n", "kube-system")
    return yaml.safe_load(configmap["data"]["ClusterConfiguration"])


def test_init_writes_a_configuration_kubeadm_accepts_and_the_cluster_reads_back(
    real: RealNodes, tmp_path: Path
) -> None:
    # GIVEN a control plane that has not run kubeadm init
    cp = real.add(CP, node=False)
    shutil.rmtree(real.nodes.fleet.sandbox(cp) / "etc/kubernetes", ignore_errors=True)

    # WHEN init.sh writes its configuration, and the real kubeadm validates and uploads it
    config = _written_config(real, tmp_path, cp, "init", "init")
    _validate(real, config)
    plane_config = real.plane.workdir / "kubeadm.yaml"
    try:
        real.plane.kubeadm(
            "init", "phase", "upload-config", "kubeadm", "--config", str(config),
            "--kubeconfig", str(real.plane.admin_conf),
        )  # fmt: skip
        uploaded = _cluster_configuration(real)
    finally:
        real.plane.kubeadm(
            "init", "phase", "upload-config", "kubeadm", "--config", str(plane_config),
            "--kubeconfig", str(real.plane.admin_conf),
        )  # fmt: skip

    # THEN the cluster holds what the cluster config asked for
    parameters = default_parameters("init")
    assert uploaded["kubernetesVersion"] == f"v{real.plane.version}"
    assert uploaded["controlPlaneEndpoint"] == ENDPOINT
    assert uploaded["networking"]["podSubnet"] == parameters["PodCidr"]
    assert uploaded["networking"]["serviceSubnet"] == parameters["ServiceCidr"]
    # and the node's registration carries its provider id, as the cloud's instance id
    init = next(yaml.safe_load_all(config.read_text()))
    extra = {arg["name"]: arg["value"] for arg in init["nodeRegistration"]["kubeletExtraArgs"]}
    assert extra["provider-id"].endswith(f"/{cp}")
    assert init["nodeRegistration"]["name"] == real.node_name(cp)


@pytest.mark.parametrize(("role", "key"), [(WORKER, "join-worker"), (CP, "join-control-plane")])
def test_a_join_writes_a_configuration_kubeadm_accepts(
    real: RealNodes, tmp_path: Path, role: str, key: str
) -> None:
    # GIVEN published join material and a node that has not joined
    _publish_join_material(real)
    instance_id = real.add(role, node=False)
    shutil.rmtree(real.nodes.fleet.sandbox(instance_id) / "etc/kubernetes", ignore_errors=True)

    # WHEN the join script writes its JoinConfiguration
    config = _written_config(real, tmp_path, instance_id, key, "join")

    # THEN the real kubeadm accepts it, and it says what the published material says
    _validate(real, config)
    join = yaml.safe_load(config.read_text())
    token = join["discovery"]["bootstrapToken"]
    assert (token["apiServerEndpoint"], token["token"], token["caCertHashes"]) == (ENDPOINT, TOKEN, [CA_HASH])
    assert join.get("controlPlane", {}).get("certificateKey") == (CERTIFICATE_KEY if role == CP else None)
