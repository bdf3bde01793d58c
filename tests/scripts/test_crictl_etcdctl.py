"""Issue 17, fault 2: no node has etcdctl on the host. The scripts reach etcd's own etcdctl with
`crictl exec` in kubeadm's etcd static pod; the twin's sandboxes offer crictl and no etcdctl."""

from __future__ import annotations

from tests.scripts.conftest import Nodes
from twin.node.crictl import container_id

CONTROL_PLANE = "control-plane"


def _shell(nodes: Nodes, instance_id: str, command: str) -> tuple[int, str, str]:
    result = nodes.fleet.run_script(instance_id, command, {})
    return result.exit_code, result.stdout, result.stderr


def test_a_node_has_crictl_and_no_etcdctl(nodes: Nodes) -> None:
    cp = nodes.add(CONTROL_PLANE)
    status, stdout, _ = _shell(nodes, cp, "command -v crictl; command -v etcdctl")
    assert status == 1
    assert stdout.strip().endswith("/crictl")


def test_the_scripts_etcd_calls_run_inside_the_etcd_container(nodes: Nodes) -> None:
    cp = nodes.add(CONTROL_PLANE)
    assert nodes.run(cp, "init").output["ok"]
    run = nodes.run(cp, "health")
    assert (run.output["etcd"]["reachable"], run.output["etcd"]["healthy"]) == (True, 1)


def test_crictl_ps_finds_the_etcd_container_by_its_labels(nodes: Nodes) -> None:
    cp = nodes.add(CONTROL_PLANE)
    worker = nodes.add("worker")
    assert nodes.run(cp, "init").output["ok"]
    ps = "crictl ps --quiet --state running --label io.kubernetes.container.name=etcd"
    assert _shell(nodes, cp, ps)[:2] == (0, container_id(cp, "etcd") + "\n")
    assert _shell(nodes, worker, ps)[:2] == (0, "")


def test_crictl_exec_passes_no_environment_and_sees_only_kubeadms_mounts(nodes: Nodes) -> None:
    cp = nodes.add(CONTROL_PLANE)
    assert nodes.run(cp, "init").output["ok"]
    etcd = container_id(cp, "etcd")
    pki = "/etc/kubernetes/pki/etcd"
    flags = f"--cacert={pki}/ca.crt --cert={pki}/healthcheck-client.crt --key={pki}/healthcheck-client.key"
    # the script's ETCDCTL_* stay on the host: etcdctl in the container finds no certificates
    status, _, stderr = _shell(
        nodes, cp, f"ETCDCTL_CACERT={pki}/ca.crt crictl exec {etcd} etcdctl member list -w json"
    )
    assert status == 1 and "--cacert not given" in stderr
    # the host's other files are not in the container
    status, _, stderr = _shell(
        nodes, cp, f"crictl exec {etcd} etcdctl --cacert=/tmp/x {flags[29:]} member list"
    )
    assert status == 1 and "open /tmp/x: no such file or directory" in stderr
    status, stdout, _ = _shell(nodes, cp, f"crictl exec {etcd} etcdctl {flags} member list -w json")
    assert status == 0 and '"members"' in stdout
    # only the etcd image carries etcdctl
    apiserver = container_id(cp, "kube-apiserver")
    status, _, stderr = _shell(nodes, cp, f"crictl exec {apiserver} etcdctl {flags} member list -w json")
    assert status == 1 and "executable file not found" in stderr
