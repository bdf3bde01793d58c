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


def test_a_crashed_etcd_container_is_not_listed_and_cannot_be_execd_into(nodes: Nodes) -> None:
    # GIVEN a control plane whose etcd container crashed and exited (not a hung member: no container)
    cp = nodes.add(CONTROL_PLANE)
    assert nodes.run(cp, "init").output["ok"]
    nodes.model.crash_etcd(cp)
    # THEN crictl ps lists no etcd container, and an exec into the old id finds nothing
    ps = "crictl ps --quiet --state running --label io.kubernetes.container.name=etcd"
    assert _shell(nodes, cp, ps)[:2] == (0, "")
    status, _, stderr = _shell(nodes, cp, f"crictl exec {container_id(cp, 'etcd')} etcdctl member list")
    assert status == 1 and "NotFound" in stderr
    # and once it runs again, both work
    nodes.model.start_etcd(cp)
    assert _shell(nodes, cp, ps)[:2] == (0, container_id(cp, "etcd") + "\n")


def test_health_on_a_control_plane_whose_etcd_container_crashed_fails_with_its_own_error(
    nodes: Nodes,
) -> None:
    # GIVEN three control planes, the first one's etcd container crashed (the other two keep quorum)
    cps, _ = nodes.cluster(3, 0)
    nodes.model.crash_etcd(cps[0])
    # WHEN health runs there
    run = nodes.run(cps[0], "health")
    # THEN it says so, rather than reporting etcd unreachable for the whole cluster (a hung member's
    # container still runs, and health then reads etcd through the other members)
    assert (run.exit_code, run.output["ok"], run.output["error"]) == (1, False, "etcd-container-not-running")
    assert "crashed or has not started" in run.output["message"]
    # and from another control plane etcd is reachable, with the crashed member unhealthy
    other = nodes.run(cps[1], "health")
    assert (other.output["etcd"]["reachable"], other.output["etcd"]["healthy"]) == (True, 2)


def test_drain_remove_on_a_control_plane_whose_etcd_container_crashed_says_so(nodes: Nodes) -> None:
    cps, _ = nodes.cluster(3, 0)
    nodes.model.crash_etcd(cps[0])
    run = nodes.run(cps[0], "drain-remove", InstanceId=cps[2], RemoveEtcdMember="true")
    assert (run.exit_code, run.output["error"]) == (1, "etcd-container-not-running")
    # nothing was removed from etcd
    assert {member.instance_id for member in nodes.model.etcd_members()} == set(cps)
    # and it failed before touching the leaving Node: it is neither cordoned nor deleted
    (leaving,) = [view for view in nodes.model.nodes() if view.instance_id == cps[2]]
    assert not leaving.unschedulable
