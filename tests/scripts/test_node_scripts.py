"""The node scripts, really run by bash in twin sandboxes against the kubeadm/kubelet/etcd model."""

from __future__ import annotations

import pytest

from tests.scripts.conftest import AZ, CLUSTER, Nodes
from twin.terraform.documents import script_text

CONTROL_PLANE = "control-plane"
WORKER = "worker"


def _parameter(ssm, suffix: str) -> dict:
    return ssm.get_parameter(Name=f"/kcluster/{CLUSTER}/{suffix}", WithDecryption=True)["Parameter"]


def _bootstrap(nodes: Nodes) -> tuple[list[str], list[str]]:
    """init, refresh-join, two control-plane joins (one at a time) and three worker joins."""
    control_planes = [nodes.add(CONTROL_PLANE) for _ in range(3)]
    workers = [nodes.add(WORKER) for _ in range(3)]
    assert nodes.run(control_planes[0], "init").output["ok"]
    assert nodes.run(control_planes[0], "refresh-join").output["ok"]
    for instance_id in control_planes[1:]:
        nodes.clock.advance(30)  # etcd settles between membership changes
        assert nodes.run(instance_id, "join-control-plane").output["changed"]
    for instance_id in workers:
        assert nodes.run(instance_id, "join-worker").output["changed"]
    return control_planes, workers


def _model_snapshot(nodes: Nodes) -> tuple:
    operations = [entry.operation for entry in nodes.model.history if entry.operation.startswith("kubeadm-")]
    return nodes.model.init_count_by_epoch(), nodes.model.nodes(), nodes.model.etcd_members(), operations


def _assert_no_secret_leaked(nodes: Nodes) -> None:
    secrets = nodes.model.issued_secrets()
    assert secrets, "the model issued no secret: nothing was checked"
    for text in nodes.outputs:
        for secret in secrets:
            assert secret not in text


def test_bootstrap_builds_one_cluster_of_ready_nodes_with_instance_identity(nodes: Nodes, ssm) -> None:
    # GIVEN three control-plane and three worker instances, provisioned
    # WHEN the documents run in the order the control loop uses
    control_planes, workers = _bootstrap(nodes)

    # THEN one init, three healthy etcd members, six Ready nodes carrying their instance identity
    assert nodes.model.init_count_by_epoch() == {1: 1}
    members = nodes.model.etcd_members()
    assert sorted(m.instance_id for m in members) == sorted(control_planes)
    assert all(m.healthy for m in members)
    views = {view.instance_id: view for view in nodes.model.nodes()}
    assert sorted(views) == sorted(control_planes + workers)
    for instance_id, view in views.items():
        assert view.ready
        assert view.provider_id == f"aws:///{AZ}/{instance_id}"
        assert view.labels["kcluster.io/instance-id"] == instance_id
        assert view.control_plane == (instance_id in control_planes)
    # AND the join material is published where joining nodes look for it
    assert _parameter(ssm, "join/token")["Type"] == "SecureString"
    assert _parameter(ssm, "join/certificate-key")["Type"] == "SecureString"
    admin = ssm.get_parameter(Name=f"/kcluster/{CLUSTER}/admin/kubeconfig", WithDecryption=True)["Parameter"]
    assert admin["Type"] == "SecureString"
    assert (nodes.fleet.sandbox(control_planes[0]) / "etc/kubernetes/admin.conf").read_text() == admin[
        "Value"
    ]
    _assert_no_secret_leaked(nodes)


def test_init_reports_the_ca_hash_it_published_and_openssl_computes(nodes: Nodes, ssm) -> None:
    first = nodes.add(CONTROL_PLANE)
    run = nodes.run(first, "init")
    assert run.output["node_name"] == "ip-10-0-1-1.ec2.internal"
    published = _parameter(ssm, "join/ca-cert-hash")
    assert published["Type"] == "String"
    assert run.output["ca_cert_hash"] == published["Value"]
    # the model's own hash of its CA, computed with the cryptography package, agrees with openssl's pipeline
    joiner = nodes.add(WORKER)
    assert nodes.run(joiner, "join-worker").output["ok"]


def test_every_script_run_twice_changes_nothing_the_second_time(nodes: Nodes) -> None:
    control_planes, workers = _bootstrap(nodes)
    before = _model_snapshot(nodes)
    for instance_id, key in [
        (control_planes[0], "init"),
        (control_planes[1], "join-control-plane"),
        (workers[0], "join-worker"),
    ]:
        run = nodes.run(instance_id, key)
        assert run.exit_code == 0
        assert run.output == run.output | {"ok": True, "step": key, "changed": False}
    assert _model_snapshot(nodes) == before
    _assert_no_secret_leaked(nodes)


def test_refresh_join_publishes_fresh_material_each_run(nodes: Nodes, ssm) -> None:
    first = nodes.add(CONTROL_PLANE)
    nodes.run(first, "init")
    token, key = _parameter(ssm, "join/token")["Value"], _parameter(ssm, "join/certificate-key")["Value"]

    run = nodes.run(first, "refresh-join", TokenTtl="2h", UploadCertificates="false")
    assert run.output == {
        "ok": True, "step": "refresh-join", "changed": True, "node_name": "ip-10-0-1-1.ec2.internal",
        "token_ttl": "2h", "certificate_key_refreshed": False,
        "stray_members_removed": 0, "stray_nodes_deleted": 0,
    }  # fmt: skip
    new_token = _parameter(ssm, "join/token")["Value"]
    assert new_token != token
    assert _parameter(ssm, "join/certificate-key")["Value"] == key
    assert new_token in nodes.model.issued_secrets()

    run = nodes.run(first, "refresh-join")
    assert run.output["certificate_key_refreshed"] is True
    assert _parameter(ssm, "join/certificate-key")["Value"] != key
    _assert_no_secret_leaked(nodes)


def test_shell_metacharacters_in_a_parameter_are_refused_without_side_effect(nodes: Nodes, tmp_path) -> None:
    # GIVEN a parameter value that would run a command if it ever became shell text
    pwned = tmp_path / "pwned"
    first = nodes.add(CONTROL_PLANE)
    # WHEN init runs with it
    run = nodes.run(first, "init", ClusterName=f"x;touch {pwned}")
    # THEN it is refused before anything happens
    assert run.exit_code == 2
    assert run.output["error"] == "invalid-parameter"
    assert "ClusterName" in run.output["message"]
    assert not pwned.exists()
    assert nodes.model.init_count_by_epoch() == {}
    assert [entry.operation for entry in nodes.model.history] == ["host-added"]


@pytest.mark.parametrize(
    ("key", "name", "value"),
    [
        ("init", "PodCidr", "10.0.0.0/16\nx"),
        ("join-worker", "ControlPlaneEndpoint", "$(id):6443"),
        ("refresh-join", "TokenTtl", "15m; reboot"),
        ("refresh-join", "UploadCertificates", "yes"),
    ],
)
def test_each_parameter_is_validated_in_bash(nodes: Nodes, key: str, name: str, value: str) -> None:
    first = nodes.add(CONTROL_PLANE)
    run = nodes.run(first, key, **{name: value})
    assert (run.exit_code, run.output["error"], run.output["ok"]) == (2, "invalid-parameter", False)
    assert name in run.output["message"]


def test_a_missing_parameter_is_refused(nodes: Nodes) -> None:
    first = nodes.add(CONTROL_PLANE)
    env = {"SSM_ClusterName": CLUSTER}
    result = nodes.fleet.run_script(first, script_text("join-worker"), env)
    assert result.exit_code == 2
    assert '"error":"invalid-parameter"' in result.stdout


def test_an_unprovisioned_node_refuses_to_act(nodes: Nodes) -> None:
    first = nodes.add(CONTROL_PLANE, provisioned=False)
    run = nodes.run(first, "init")
    assert (run.exit_code, run.output["error"]) == (3, "not-provisioned")
    assert nodes.model.init_count_by_epoch() == {}


def test_a_kubeadm_of_another_version_is_refused(nodes: Nodes) -> None:
    first = nodes.add(CONTROL_PLANE)
    nodes.model.set_kubeadm_version(first, "v1.32.9")
    run = nodes.run(first, "init")
    assert (run.exit_code, run.output["error"]) == (1, "version-mismatch")
    assert nodes.model.init_count_by_epoch() == {}


def test_join_before_any_material_is_published_fails_clearly(nodes: Nodes) -> None:
    worker = nodes.add(WORKER)
    run = nodes.run(worker, "join-worker")
    assert (run.exit_code, run.output["error"]) == (1, "join-material-missing")
    assert nodes.model.nodes() == []


def test_an_expired_token_makes_the_join_fail_until_refreshed(nodes: Nodes) -> None:
    # GIVEN a cluster whose published token (15 minutes) has expired
    first, worker = nodes.add(CONTROL_PLANE), nodes.add(WORKER)
    nodes.run(first, "init")
    nodes.clock.advance(16 * 60)
    # WHEN a worker joins with it THEN kubeadm refuses, and the message names the problem, not the token
    run = nodes.run(worker, "join-worker")
    assert (run.exit_code, run.output["error"]) == (1, "kubeadm-failed")
    assert "could not find a JWS signature" in run.output["message"]
    assert not nodes.model.nodes()[1:]
    # AND after refresh-join the same node joins
    nodes.run(first, "refresh-join")
    assert nodes.run(worker, "join-worker").output["changed"] is True
    assert len(nodes.model.nodes()) == 2
    _assert_no_secret_leaked(nodes)


def test_an_expired_certificate_key_makes_a_control_plane_join_fail(nodes: Nodes) -> None:
    first, second, worker = nodes.add(CONTROL_PLANE), nodes.add(CONTROL_PLANE), nodes.add(WORKER)
    nodes.run(first, "init")
    nodes.run(first, "refresh-join", TokenTtl="3h")
    nodes.clock.advance(2 * 3600 + 1)
    run = nodes.run(second, "join-control-plane")
    assert (run.exit_code, run.output["error"]) == (1, "kubeadm-failed")
    assert "kubeadm-certs" in run.output["message"]
    assert len(nodes.model.etcd_members()) == 1
    # the token itself is still good: a worker joins
    assert nodes.run(worker, "join-worker").output["ok"]
    _assert_no_secret_leaked(nodes)


def test_a_control_plane_join_right_after_another_waits_out_etcds_refusal_as_kubeadm_does(
    nodes: Nodes,
) -> None:
    # GIVEN a control plane that joined a moment ago (etcd refuses member add for 5 s after a change)
    first, second, third = (nodes.add(CONTROL_PLANE) for _ in range(3))
    nodes.run(first, "init")
    nodes.clock.advance(30)
    assert nodes.run(second, "join-control-plane").output["ok"]
    # WHEN the next one joins at once
    run = nodes.run(third, "join-control-plane")
    # THEN kubeadm's member add retried (every 0.5 s for up to 2 min) until etcd accepted it
    assert (run.output["ok"], run.output["changed"]) == (True, True)
    assert nodes.model.operation_counts().get("kubeadm-etcd-member-add-retried") == 1
    assert len(nodes.model.etcd_members()) == 3


def test_a_control_plane_join_while_too_few_etcd_members_run_fails_after_kubeadms_retries(
    nodes: Nodes,
) -> None:
    # GIVEN three control planes, one's etcd stopped (quorum kept): a fourth voting member would leave
    # 2 started of 4, below quorum, which etcd refuses for as long as it lasts
    cps, _ = nodes.cluster(3, 0)
    fourth = nodes.add(CONTROL_PLANE)
    nodes.model.stop_etcd(cps[2])
    # WHEN the fourth joins
    run = nodes.run(fourth, "join-control-plane")
    # THEN kubeadm gives up with etcd's answer, and no member was added
    assert (run.output["ok"], run.output["error"]) == (False, "kubeadm-failed")
    assert "unhealthy cluster" in run.output["message"]
    assert fourth not in {member.instance_id for member in nodes.model.etcd_members()}
    # and once that etcd runs again, a retry joins (the failed attempt left no kubelet.conf)
    nodes.model.start_etcd(cps[2])
    assert nodes.run(fourth, "join-control-plane").output["changed"] is True
    assert len(nodes.model.etcd_members()) == 4


def test_init_over_a_dead_control_plane_refuses_instead_of_starting_a_second_cluster(nodes: Nodes) -> None:
    first, second = nodes.add(CONTROL_PLANE), nodes.add(CONTROL_PLANE)
    nodes.run(first, "init")
    nodes.clock.advance(30)
    nodes.run(second, "join-control-plane")
    nodes.fleet.remove_instance(first)  # quorum of two is lost: the API stops answering
    run = nodes.run(second, "init")
    assert (run.exit_code, run.output["error"]) == (1, "stale-control-plane")
    assert nodes.model.init_count_by_epoch() == {1: 1}


def test_a_half_joined_node_is_reset_and_joined_again(nodes: Nodes) -> None:
    first, worker = nodes.add(CONTROL_PLANE), nodes.add(WORKER)
    nodes.run(first, "init")
    nodes.run(worker, "join-worker")
    # kubelet died after kubeadm join wrote kubelet.conf
    kubelet_conf = nodes.fleet.sandbox(worker) / "etc/kubernetes/kubelet.conf"
    assert kubelet_conf.exists()
    nodes.model.host(worker).kubelet_running = False
    run = nodes.run(worker, "join-worker")
    assert run.output["changed"] is True
    assert nodes.model.kubelet_active(worker)
    assert [e.operation for e in nodes.model.history if e.instance_id == worker][-2:] == [
        "kubeadm-reset",
        "kubeadm-join",
    ]


def test_secret_temp_files_are_removed(nodes: Nodes) -> None:
    first, second = nodes.add(CONTROL_PLANE), nodes.add(CONTROL_PLANE)
    nodes.run(first, "init")
    nodes.clock.advance(30)
    nodes.run(second, "join-control-plane")
    for instance_id in (first, second):
        assert list((nodes.fleet.sandbox(instance_id) / "tmp").iterdir()) == []


def test_a_node_of_a_cluster_that_was_replaced_by_a_new_init_resets_and_joins_the_new_one(
    nodes: Nodes,
) -> None:
    # GIVEN a worker joined to a cluster whose only control plane is gone, and a new cluster initialized
    first, worker = nodes.add(CONTROL_PLANE), nodes.add(WORKER)
    assert nodes.run(first, "init").output["ok"]
    assert nodes.run(worker, "join-worker").output["changed"]
    nodes.model.remove_host(first)
    second = nodes.add(CONTROL_PLANE)
    assert nodes.run(second, "init").output["changed"]
    assert nodes.model.current_epoch() == 2
    # WHEN join-worker runs on it again
    run = nodes.run(worker, "join-worker")
    # THEN "already joined" is not taken at its word: the worker is reset and joins the new cluster
    assert (run.output["ok"], run.output["changed"]) == (True, True), run.result.stderr
    assert {view.instance_id: view.ready for view in nodes.model.nodes()} == {second: True, worker: True}
    # and a run after that is the usual no-op
    assert nodes.run(worker, "join-worker").output["changed"] is False
