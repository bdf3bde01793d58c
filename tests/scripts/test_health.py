"""The health document, really run by bash in twin sandboxes against the model: Ready conditions and their
transition times, etcd membership and health, a dead API server, the 24,000-character output limit."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime

import boto3
import pytest

from tests.scripts.conftest import AZ, CLUSTER, ENDPOINT, REGION, Nodes, Run
from tests.scripts.test_etcd_membership import etcd_bin, real_etcd  # noqa: F401 - fixtures shared with the membership tests
from twin.node.model import INSTANCE_ID_LABEL, READY_UNKNOWN, KubeError, rfc3339
from twin.terraform.documents import script_text

CONTROL_PLANE = "control-plane"
WORKER = "worker"
SSM_OUTPUT_LIMIT = 24_000


def _cluster(nodes: Nodes, control_planes: int = 3, workers: int = 2) -> tuple[list[str], list[str]]:
    return nodes.cluster(control_planes, workers, worker_gap=10, settle=60)


def _health(nodes: Nodes, on: str, **env: str) -> Run:
    result = nodes.run_env(on, "health", {"SSM_ClusterName": CLUSTER, **env})
    lines = result.stdout.splitlines()
    assert len(lines) == 1, f"expected one result line, got {result.stdout!r}; stderr {result.stderr}"
    return Run(result, json.loads(lines[0]))


def _by_instance(run: Run) -> dict[str, dict]:
    return {node["instance_id"]: node for node in run.output["nodes"]}


def _views(nodes: Nodes) -> dict:
    return {view.instance_id: view for view in nodes.model.nodes()}


def test_a_healthy_cluster_reports_every_node_ready_and_a_full_etcd(nodes: Nodes) -> None:
    cps, wks = _cluster(nodes)
    run = _health(nodes, cps[1])
    assert run.exit_code == 0, run.result.stderr
    output = run.output
    assert (output["ok"], output["step"], output["changed"], output["api_ready"]) == (
        True,
        "health",
        False,
        True,
    )
    assert output["counts"] == {"ready": 5, "not_ready": 0, "ready_control_planes": 3}
    assert (output["nodes_truncated"], output["warnings"]) == (False, [])
    views = _views(nodes)
    assert sorted(_by_instance(run)) == sorted(cps + wks)
    for instance_id, node in _by_instance(run).items():
        view = views[instance_id]
        # Ready since the CNI went in (init) for the first control plane, else since the kubelet registered
        assert node == {
            "name": view.name, "instance_id": instance_id, "control_plane": instance_id in cps,
            "ready": True, "ready_since": int(view.ready_transition), "unschedulable": False,
        }  # fmt: skip
    joined_at = {
        e.instance_id: e.time for e in nodes.model.history if e.operation in ("kubeadm-join", "kubeadm-init")
    }
    assert {i: n["ready_since"] for i, n in _by_instance(run).items()} == {
        i: int(t) for i, t in joined_at.items()
    }
    etcd = output["etcd"]
    names = {view.instance_id: view.name for view in views.values()}
    leader = nodes.model.etcd_leader()
    assert leader is not None
    assert (etcd["reachable"], etcd["members"], etcd["healthy"], etcd["leader"]) == (True, 3, 3, leader.name)
    assert sorted(etcd["member_health"], key=lambda m: m["name"]) == sorted(
        ({"name": names[cp], "healthy": True} for cp in cps), key=lambda m: m["name"]
    )
    assert len(run.result.stdout) < 2_000


def test_a_stopped_kubelet_shows_notready_since_it_stopped(nodes: Nodes) -> None:
    cps, wks = _cluster(nodes)
    nodes.clock.advance(300)
    stopped_at = nodes.clock.now()
    nodes.model.stop_kubelet(wks[0])
    nodes.clock.advance(120)
    run = _health(nodes, cps[0])
    node = _by_instance(run)[wks[0]]
    assert (node["ready"], node["not_ready_since"], "ready_since" in node) == (False, int(stopped_at), False)
    assert run.output["counts"] == {"ready": 4, "not_ready": 1, "ready_control_planes": 3}
    assert _by_instance(run)[wks[1]]["ready"] is True
    # the API object carries the condition as the API server serves it
    admin = (nodes.fleet.sandbox(cps[0]) / "etc/kubernetes/admin.conf").read_text()
    item = next(
        i
        for i in nodes.model.get_nodes(admin)["items"]
        if i["metadata"]["labels"][INSTANCE_ID_LABEL] == wks[0]
    )
    (condition,) = item["status"]["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "Ready",
        "Unknown",
        "NodeStatusUnknown",
    )
    assert condition["lastTransitionTime"] == datetime.fromtimestamp(stopped_at, UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    # the kubelet started again: Ready, since then
    nodes.clock.advance(30)
    nodes.model.kubelet_restart(wks[0])
    again = _by_instance(_health(nodes, cps[0]))[wks[0]]
    assert (again["ready"], again["ready_since"]) == (True, int(nodes.clock.now()))


def test_nodes_are_notready_until_the_cni_is_applied(nodes: Nodes) -> None:
    # the first control plane registered before its CNI went in: False (KubeletNotReady), then True
    first = nodes.add(CONTROL_PLANE)
    assert nodes.run(first, "init").output["ok"]
    registered = next(e.time for e in nodes.model.history if e.operation == "kubeadm-init")
    cni = next(e.time for e in nodes.model.history if e.operation == "cni-applied")
    (view,) = nodes.model.nodes()
    assert (view.ready_status, view.ready_transition) == ("True", cni)
    assert registered <= cni
    assert rfc3339(1_767_225_600.9) == "2026-01-01T00:00:00Z"


def test_a_dead_control_plane_host_leaves_two_of_three_members_healthy(nodes: Nodes) -> None:
    cps, _ = _cluster(nodes)
    nodes.clock.advance(45)
    died_at = nodes.clock.now()
    nodes.terminate(cps[2])
    run = _health(nodes, cps[0])
    assert (run.exit_code, run.output["ok"], run.output["api_ready"]) == (0, True, True)
    etcd = run.output["etcd"]
    names = {view.instance_id: view.name for view in nodes.model.nodes()}
    assert (etcd["members"], etcd["healthy"]) == (3, 2)
    assert {m["name"]: m["healthy"] for m in etcd["member_health"]} == {
        names[cps[0]]: True, names[cps[1]]: True, names[cps[2]]: False,
    }  # fmt: skip
    assert etcd["leader"] in (names[cps[0]], names[cps[1]])
    dead = _by_instance(run)[cps[2]]
    assert (dead["ready"], dead["not_ready_since"], dead["control_plane"]) == (False, int(died_at), True)
    assert run.output["counts"] == {"ready": 4, "not_ready": 1, "ready_control_planes": 2}


def test_the_dead_leader_is_replaced_in_the_report(nodes: Nodes) -> None:
    cps, _ = _cluster(nodes, workers=0)
    leader = nodes.model.etcd_leader()
    assert leader is not None and leader.instance_id == cps[0]
    nodes.terminate(cps[0])
    etcd = _health(nodes, cps[1]).output["etcd"]
    new_leader = nodes.model.etcd_leader()
    assert new_leader is not None and etcd["leader"] == new_leader.name != leader.name


def test_a_stopped_api_server_on_this_node_reports_api_not_ready_and_still_etcd(nodes: Nodes) -> None:
    cps, _ = _cluster(nodes)
    nodes.model.stop_apiserver(cps[0])
    run = _health(nodes, cps[0])
    assert (run.exit_code, run.output["ok"], run.output["api_ready"]) == (0, True, False)
    assert (run.output["nodes"], run.output["counts"], run.output["nodes_truncated"]) == (None, None, False)
    assert (run.output["etcd"]["members"], run.output["etcd"]["healthy"]) == (3, 3)
    (warning,) = run.output["warnings"]
    assert "does not answer /readyz" in warning
    # the other control planes still serve the API, and see every Node Ready
    other = _health(nodes, cps[1])
    assert (other.output["api_ready"], other.output["counts"]["ready"]) == (True, 5)
    # kubeadm on the node with the dead API server fails too
    assert nodes.run(cps[0], "refresh-join").output["error"] == "control-plane-unhealthy"
    nodes.model.start_apiserver(cps[0])
    assert _health(nodes, cps[0]).output["api_ready"] is True


def test_api_servers_all_down_means_no_api_anywhere(nodes: Nodes) -> None:
    cps, _ = _cluster(nodes, workers=1)
    for cp in cps:
        nodes.model.stop_apiserver(cp)
    assert not any(
        nodes.model.api_ready((nodes.fleet.sandbox(cp) / "etc/kubernetes/admin.conf").read_text())
        for cp in cps
    )
    run = _health(nodes, cps[1])
    assert (run.output["ok"], run.output["api_ready"], run.output["etcd"]["healthy"]) == (True, False, 3)


def test_etcd_unreachable_everywhere_reports_zero_healthy_with_a_warning(nodes: Nodes) -> None:
    (cp,) = [nodes.add(CONTROL_PLANE)]
    assert nodes.run(cp, "init").output["ok"]
    nodes.model.stop_etcd(cp)  # the only member: no quorum, no API either
    run = _health(nodes, cp)
    assert (run.exit_code, run.output["ok"], run.output["api_ready"]) == (0, True, False)
    assert run.output["etcd"] == {
        "reachable": False,
        "members": 0,
        "healthy": 0,
        "leader": None,
        "member_health": [],
    }
    warnings = run.output["warnings"]
    assert len(warnings) == 2 and "etcd does not answer" in warnings[1]
    ip = nodes.model.host(cp).private_ip
    assert f"https://{ip}:2379" in warnings[1]  # it tried the control planes EC2 lists


def test_a_stopped_local_etcd_is_read_through_the_other_control_planes(nodes: Nodes) -> None:
    cps, _ = _cluster(nodes, workers=0)
    nodes.model.stop_etcd(cps[0])
    run = _health(nodes, cps[0])
    etcd = run.output["etcd"]
    assert (run.output["api_ready"], etcd["reachable"], etcd["members"], etcd["healthy"]) == (
        True,
        True,
        3,
        2,
    )
    names = {view.instance_id: view.name for view in nodes.model.nodes()}
    assert {m["name"]: m["healthy"] for m in etcd["member_health"]}[names[cps[0]]] is False
    assert "local etcd member does not answer" in run.output["warnings"][0]


def test_an_unstarted_member_counts_and_has_no_name(nodes: Nodes) -> None:
    cps, _ = _cluster(nodes, workers=0)
    nodes.model.add_unstarted_etcd_member("https://10.0.1.99:2380")
    etcd = _health(nodes, cps[0]).output["etcd"]
    assert (etcd["members"], etcd["healthy"]) == (4, 3)
    assert {"name": None, "healthy": False} in etcd["member_health"]


def test_without_quorum_no_member_is_healthy_and_there_is_no_leader(nodes: Nodes) -> None:
    # one started member and one that never started: two voting members, one up, no quorum
    cps, _ = _cluster(nodes, control_planes=1, workers=0)
    nodes.model.add_unstarted_etcd_member("https://10.0.1.99:2380")
    run = _health(nodes, cps[0])
    etcd = run.output["etcd"]
    assert (run.output["api_ready"], etcd["reachable"], etcd["members"], etcd["healthy"], etcd["leader"]) == (
        False, True, 2, 0, None,
    )  # fmt: skip


def _add_workers_directly(nodes: Nodes, control_plane: str, count: int) -> list[str]:
    """Workers joined through the model's kubeadm join (the same path the script takes), without bash."""
    ssm = boto3.client("ssm", region_name=REGION)
    token = ssm.get_parameter(Name=f"/kcluster/{CLUSTER}/join/token", WithDecryption=True)["Parameter"][
        "Value"
    ]
    ca_hash = ssm.get_parameter(Name=f"/kcluster/{CLUSTER}/join/ca-cert-hash")["Parameter"]["Value"]
    instance_ids = []
    for index in range(count):
        instance_id = f"i-{index + 1:017x}"
        ip = f"10.0.{2 + index // 250}.{1 + index % 250}"
        name = f"ip-{ip.replace('.', '-')}.ec2.internal"
        nodes.fleet.add_instance(
            instance_id, availability_zone=AZ, private_ip=ip, private_dns=name, region=REGION,
            cluster=CLUSTER, role=WORKER,
        )  # fmt: skip
        config = {
            "apiVersion": "kubeadm.k8s.io/v1beta4",
            "kind": "JoinConfiguration",
            "discovery": {
                "bootstrapToken": {"apiServerEndpoint": ENDPOINT, "token": token, "caCertHashes": [ca_hash]}
            },
            "nodeRegistration": {
                "name": name,
                "kubeletExtraArgs": [
                    {"name": "provider-id", "value": f"aws:///{AZ}/{instance_id}"},
                    {"name": "node-labels", "value": f"{INSTANCE_ID_LABEL}={instance_id}"},
                ],
            },
        }
        nodes.model.kubeadm_join(instance_id, json.dumps(config))
        instance_ids.append(instance_id)
    return instance_ids


def test_above_200_nodes_only_notready_ones_are_listed(nodes: Nodes) -> None:
    cps, _ = _cluster(nodes, workers=0)
    workers = _add_workers_directly(nodes, cps[0], 247)
    nodes.clock.advance(100)
    stopped = workers[10:17]
    for instance_id in stopped:
        nodes.clock.advance(5)
        nodes.model.stop_kubelet(instance_id)
    run = _health(nodes, cps[0])
    output = run.output
    assert output["counts"] == {"ready": 243, "not_ready": 7, "ready_control_planes": 3}
    assert output["nodes_truncated"] is True
    assert sorted(_by_instance(run)) == sorted(stopped)
    assert all(not node["ready"] for node in output["nodes"])
    transitions = {i: v.ready_transition for i, v in _views(nodes).items()}
    assert {i: n["not_ready_since"] for i, n in _by_instance(run).items()} == {
        i: int(transitions[i]) for i in stopped
    }
    assert len(run.result.stdout) < SSM_OUTPUT_LIMIT


def test_a_mass_outage_list_is_cut_to_fit_the_ssm_output_oldest_first(nodes: Nodes) -> None:
    cps, _ = _cluster(nodes, workers=0)
    workers = _add_workers_directly(nodes, cps[0], 247)
    for instance_id in reversed(workers):  # the last worker stops first
        nodes.clock.advance(1)
        nodes.model.stop_kubelet(instance_id)
    run = _health(nodes, cps[0])
    output = run.output
    assert len(run.result.stdout) < SSM_OUTPUT_LIMIT
    assert output["counts"] == {"ready": 3, "not_ready": 247, "ready_control_planes": 3}
    assert output["nodes_truncated"] is True
    listed = [node["instance_id"] for node in output["nodes"]]
    assert 50 < len(listed) < 247
    # the ones NotReady longest are kept, oldest first
    assert listed == list(reversed(workers))[: len(listed)]
    since = [node["not_ready_since"] for node in output["nodes"]]
    assert since == sorted(since)


def test_200_nodes_or_fewer_are_all_listed(nodes: Nodes) -> None:
    cps, _ = _cluster(nodes, workers=0)
    _add_workers_directly(nodes, cps[0], 120)
    run = _health(nodes, cps[0])
    assert (len(run.output["nodes"]), run.output["nodes_truncated"]) == (123, False)
    assert len(run.result.stdout) < SSM_OUTPUT_LIMIT


def test_a_second_run_gives_the_same_report_and_changes_nothing(nodes: Nodes) -> None:
    cps, wks = _cluster(nodes)
    nodes.model.stop_kubelet(wks[1])
    nodes.terminate(cps[2])
    first = _health(nodes, cps[0])
    before = (nodes.model.nodes(), nodes.model.etcd_members(), len(nodes.model.history))
    second = _health(nodes, cps[0])
    assert second.result.stdout == first.result.stdout
    assert (nodes.model.nodes(), nodes.model.etcd_members(), len(nodes.model.history)) == before
    assert first.output["changed"] is False


def test_health_refuses_a_node_without_the_admin_kubeconfig(nodes: Nodes) -> None:
    _, wks = _cluster(nodes, control_planes=1, workers=1)
    run = _health(nodes, wks[0])
    assert (run.exit_code, run.output["ok"], run.output["error"]) == (1, False, "not-a-control-plane")


def test_a_bad_cluster_name_is_refused(nodes: Nodes) -> None:
    cps, _ = _cluster(nodes, control_planes=1, workers=0)
    run = _health(nodes, cps[0], SSM_ClusterName="Bad;name")
    assert (run.exit_code, run.output["error"]) == (2, "invalid-parameter")


def test_nothing_secret_reaches_the_output(nodes: Nodes) -> None:
    cps, _ = _cluster(nodes)
    nodes.model.stop_apiserver(cps[0])
    nodes.model.stop_etcd(cps[0])
    for on in cps:
        _health(nodes, on)
    text = "".join(nodes.outputs)
    assert nodes.model.issued_secrets()
    assert not [secret for secret in nodes.model.issued_secrets() if secret in text]


def test_the_rendered_health_document_passes_shellcheck(tmp_path) -> None:
    rendered = tmp_path / "health.sh"
    rendered.write_text(script_text("health"))
    result = subprocess.run(["shellcheck", "-s", "bash", str(rendered)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_kubelet_stop_only_on_a_live_host_and_api_faults_only_on_control_planes(nodes: Nodes) -> None:
    cps, wks = _cluster(nodes, control_planes=1, workers=1)
    with pytest.raises(KubeError, match="runs no control plane"):
        nodes.model.stop_apiserver(wks[0])
    assert nodes.model.apiserver_running(cps[0]) and not nodes.model.apiserver_running(wks[0])
    nodes.model.stop_kubelet(wks[0])
    assert _views(nodes)[wks[0]].ready_status == READY_UNKNOWN
    assert not nodes.model.kubelet_active(wks[0])


@pytest.mark.etcd
def test_against_a_real_etcd_cluster_member_health_and_leader_are_etcds_own(real_etcd) -> None:  # noqa: F811
    # the REAL etcdctl 3.4 against three real etcd members named after the model's control planes
    cluster = real_etcd(3)
    local = cluster.control_planes[0]
    run = cluster.run(local, "health")
    etcd = run.output["etcd"]
    assert run.exit_code == 0, run.result.stderr
    assert (etcd["reachable"], etcd["members"], etcd["healthy"]) == (True, 3, 3)
    assert etcd["leader"] == cluster.etcd.leader()
    assert sorted(m["name"] for m in etcd["member_health"]) == sorted(cluster.names.values())
    # one member stops: two of three healthy, a leader still
    down = next(cp for cp in cluster.control_planes if cp != local)
    cluster.etcd.stop(cluster.names[down])
    etcd = cluster.run(local, "health").output["etcd"]
    assert (etcd["members"], etcd["healthy"]) == (3, 2)
    assert {m["name"]: m["healthy"] for m in etcd["member_health"]}[cluster.names[down]] is False
    assert etcd["leader"] in {cluster.names[cp] for cp in cluster.control_planes if cp != down}
