"""The launch workflow core, without AWS: init claim, join lease, batches, retries, idempotency."""

from __future__ import annotations

from kcluster import contract
from kcluster.core import launch, workflow
from kcluster.core.models import (
    CompleteLifecycle,
    LifecycleLaunch,
    LifecycleTerminate,
    NodeProvisioned,
    SendCommand,
)

from .conftest import CP_ASG, Harness, make_config


def start_cluster(h: Harness, first: str = "i-0000000a") -> None:
    """GIVEN a cluster whose first control plane initialized successfully."""
    h.launch(first, "control-plane")
    (init,) = h.sends(h.dispatch())
    command_id = h.send(init)
    h.finish(command_id, first)
    assert h.view.cluster.phase == "ready"


def test_three_control_planes_at_once_claim_init_exactly_once(harness):
    # GIVEN three control planes provisioned at the same instant
    for iid in ("i-00000003", "i-00000001", "i-00000002"):
        harness.launch(iid, "control-plane")
    # WHEN dispatch runs (twice, as concurrent deciders would)
    first = harness.sends(harness.dispatch())
    second = harness.sends(harness.dispatch())
    # THEN one init is sent, to one node, and the second dispatch adds nothing
    assert [a.document for a in first] == [contract.DOC_INIT]
    assert second == []
    assert harness.view.cluster.phase == "initializing"
    assert harness.view.cluster.epoch == 1
    assert sum(1 for n in harness.view.nodes.values() if n.phase == "initializing") == 1


def test_concurrent_deciders_write_the_same_cluster_version():
    # Two deciders that loaded the same view both produce a claim; each writes cluster version 1
    # over "absent", so the conditional write lets exactly one of them win.
    h = Harness(make_config())
    for iid in ("i-00000001", "i-00000002"):
        h.launch(iid, "control-plane")
    plan_a = workflow.dispatch(h.view, h.config, h.now)
    plan_b = workflow.dispatch(h.view, h.config, h.now)
    claim_a = next(w for w in plan_a.batches[0].writes if w.__class__.__name__ == "ClusterState")
    claim_b = next(w for w in plan_b.batches[0].writes if w.__class__.__name__ == "ClusterState")
    assert claim_a.version == claim_b.version == h.view.cluster.version + 1


def test_init_success_makes_cluster_ready_and_continues_lifecycle(harness):
    harness.launch("i-0000000a", "control-plane")
    (init,) = harness.sends(harness.dispatch())
    command_id = harness.send(init)
    actions = harness.finish(command_id, "i-0000000a")
    assert harness.view.cluster.phase == "ready"
    assert harness.view.cluster.init_owner == "i-0000000a"
    assert harness.phase("i-0000000a") == "joined"
    assert harness.view.nodes["i-0000000a"].node_name == "ip-i-0000000a"
    assert [(a.instance_id, a.result) for a in actions if isinstance(a, CompleteLifecycle)] == [
        ("i-0000000a", "CONTINUE")
    ]


def test_control_planes_join_one_at_a_time_after_a_fresh_certificate_key(harness):
    start_cluster(harness)
    harness.launch("i-0000000b", "control-plane")
    harness.launch("i-0000000c", "control-plane")
    # WHEN dispatch runs: one refresh-join with certificates, on the healthy control plane, for one joiner
    (refresh,) = harness.sends(harness.dispatch())
    assert refresh.document == contract.DOC_REFRESH_JOIN
    assert refresh.targets == ("i-0000000a",)
    assert refresh.parameters["UploadCertificates"] == "true"
    assert refresh.for_instances == ("i-0000000b",)
    assert harness.view.cluster.lease_owner == "i-0000000b"
    # the second control plane waits while the lease is held
    assert harness.sends(harness.dispatch()) == []
    refresh_id = harness.send(refresh)
    (join,) = harness.sends(harness.finish(refresh_id, "i-0000000a", result={"ok": True}))
    assert join.document == contract.DOC_JOIN_CONTROL_PLANE and join.targets == ("i-0000000b",)
    assert harness.sends(harness.dispatch()) == []
    join_id = harness.send(join)
    harness.finish(join_id, "i-0000000b")
    # THEN the lease is released and the next control plane's turn comes
    assert harness.view.cluster.lease_owner is None
    (next_refresh,) = harness.sends(harness.dispatch())
    assert next_refresh.for_instances == ("i-0000000c",)


def test_workers_join_in_batches_of_at_most_fifty(harness):
    start_cluster(harness)
    workers = [f"i-{n:08x}" for n in range(0x100, 0x100 + 120)]
    for iid in workers:
        harness.launch(iid, "worker")
    refreshes = harness.sends(harness.dispatch())
    assert [len(r.for_instances) for r in refreshes] == [50, 50, 20]
    assert all(r.parameters["UploadCertificates"] == "false" for r in refreshes)
    joins: list[SendCommand] = []
    for refresh in refreshes:
        refresh_id = harness.send(refresh)
        joins += harness.sends(harness.finish(refresh_id, "i-0000000a", result={"ok": True}))
    assert [len(j.targets) for j in joins] == [50, 50, 20]
    assert {iid for j in joins for iid in j.targets} == set(workers)
    assert all(j.document == contract.DOC_JOIN_WORKER for j in joins)


def test_duplicate_late_and_reordered_events_change_nothing(harness):
    start_cluster(harness)
    harness.launch("i-0000000b", "worker")
    (refresh,) = harness.sends(harness.dispatch())
    refresh_id = harness.send(refresh)
    (join,) = harness.sends(harness.finish(refresh_id, "i-0000000a", result={"ok": True}))
    join_id = harness.send(join)
    harness.finish(join_id, "i-0000000b")
    settled = harness.view
    # duplicate launch, duplicate provisioned, duplicate and late command events
    assert workflow.on_event(
        settled,
        LifecycleLaunch(
            "i-0000000b", "kcluster-demo-workers", "worker", "kcluster-launch", "token-i-0000000b"
        ),
        harness.config,
        harness.now,
    ).empty
    assert workflow.on_event(
        settled, NodeProvisioned("i-0000000b", "worker"), harness.config, harness.now
    ).empty
    from kcluster.core.models import CommandFinished

    for event in (
        CommandFinished(join_id, "i-0000000b", "Success", {"ok": True}),
        CommandFinished(join_id, "i-0000000b", "Failed", {"ok": False, "error": "kubeadm-failed"}),
        CommandFinished(refresh_id, "i-0000000a", "Success", {"ok": True}),
    ):
        assert workflow.on_event(settled, event, harness.config, harness.now).empty


def test_provisioned_before_launch_event_is_remembered(harness):
    start_cluster(harness)
    harness.event(NodeProvisioned("i-0000000b", "worker"))
    assert harness.sends(harness.dispatch()) == []  # no hook known yet
    harness.event(LifecycleLaunch("i-0000000b", "kcluster-demo-workers", "worker", "kcluster-launch", "t"))
    assert harness.phase("i-0000000b") == "waiting"
    assert len(harness.sends(harness.dispatch())) == 1


def test_unknown_command_is_deferred_not_dropped(harness):
    from kcluster.core.models import CommandFinished

    plan = workflow.on_event(
        harness.view, CommandFinished("x" * 36, "i-0000000a", "Success"), harness.config, 0
    )
    assert plan.deferred and plan.empty


def test_failed_join_retries_then_abandons(harness):
    start_cluster(harness)
    harness.launch("i-0000000b", "worker")
    abandons = []
    for attempt in range(1, harness.config.max_attempts + 1):
        harness.now += 1_000  # past any backoff
        (refresh,) = harness.sends(harness.dispatch())
        refresh_id = harness.send(refresh)
        (join,) = harness.sends(harness.finish(refresh_id, "i-0000000a", result={"ok": True}))
        join_id = harness.send(join)
        actions = harness.finish(join_id, "i-0000000b", "Failed", {"ok": False, "error": "kubeadm-failed"})
        assert harness.view.nodes["i-0000000b"].attempts == attempt
        abandons += [a for a in actions if isinstance(a, CompleteLifecycle)]
    assert harness.phase("i-0000000b") == "abandoned"
    assert [(a.instance_id, a.result) for a in abandons] == [("i-0000000b", "ABANDON")]
    harness.now += 1_000
    assert harness.sends(harness.dispatch()) == []


def test_failed_join_waits_for_its_backoff(harness):
    start_cluster(harness)
    harness.launch("i-0000000b", "worker")
    (refresh,) = harness.sends(harness.dispatch())
    (join,) = harness.sends(harness.finish(harness.send(refresh), "i-0000000a", result={"ok": True}))
    harness.finish(harness.send(join), "i-0000000b", "Failed", {"ok": False, "error": "kubeadm-failed"})
    assert harness.sends(harness.dispatch()) == []
    harness.now += launch.FAILURE_BACKOFF_SECONDS
    assert len(harness.sends(harness.dispatch())) == 1


def test_not_provisioned_does_not_spend_an_attempt(harness):
    start_cluster(harness)
    harness.launch("i-0000000b", "worker")
    (refresh,) = harness.sends(harness.dispatch())
    (join,) = harness.sends(harness.finish(harness.send(refresh), "i-0000000a", result={"ok": True}))
    harness.finish(harness.send(join), "i-0000000b", "Failed", {"ok": False, "error": "not-provisioned"})
    node = harness.view.nodes["i-0000000b"]
    assert (node.phase, node.attempts, node.not_before) == ("waiting", 0, harness.now + 30)


def test_init_refused_before_kubeadm_ran_releases_the_claim_for_another_control_plane(harness):
    for iid in ("i-00000001", "i-00000002"):
        harness.launch(iid, "control-plane")
    (init,) = harness.sends(harness.dispatch())
    failed_owner = init.targets[0]
    # WHEN the script refuses before running kubeadm (nothing was started on the owner)
    harness.finish(harness.send(init), failed_owner, "Failed", {"ok": False, "error": "version-mismatch"})
    # THEN the claim is free and the other control plane inits, in a new epoch
    assert harness.view.cluster.phase == "uninitialized"
    assert harness.view.cluster.init_owner is None
    (retry,) = harness.sends(harness.dispatch())
    assert retry.document == contract.DOC_INIT
    assert retry.targets != (failed_owner,)
    assert harness.view.cluster.epoch == 2


def test_init_that_may_have_started_a_control_plane_is_retried_by_its_owner_only(harness):
    # GIVEN two control planes, one of which owns the init claim
    for iid in ("i-00000001", "i-00000002"):
        harness.launch(iid, "control-plane")
    (init,) = harness.sends(harness.dispatch())
    owner = init.targets[0]
    # WHEN init reports a failure after kubeadm may have run (the CNI apply failed; or a timeout, no line)
    harness.finish(harness.send(init), owner, "Failed", {"ok": False, "error": "cni-failed"})
    # THEN the owner keeps the claim (a second init elsewhere would start a second cluster) ...
    cluster = harness.view.cluster
    assert (cluster.phase, cluster.init_owner, cluster.epoch) == ("initializing", owner, 1)
    assert harness.sends(harness.dispatch()) == []  # ... nothing before the backoff ...
    harness.now += launch.FAILURE_BACKOFF_SECONDS
    (again,) = harness.sends(harness.dispatch())  # ... then init again, on the owner, same epoch
    assert (again.document, again.targets) == (contract.DOC_INIT, (owner,))
    harness.finish(harness.send(again), owner, "TimedOut", None)
    assert harness.view.cluster.init_owner == owner
    assert harness.view.nodes[owner].attempts == 2


def test_an_owner_that_cannot_init_is_abandoned_and_its_claim_freed_when_its_instance_leaves(harness):
    for iid in ("i-00000001", "i-00000002"):
        harness.launch(iid, "control-plane")
    owner = None
    for _ in range(harness.config.max_attempts):
        harness.now += 1_000
        (init,) = harness.sends(harness.dispatch())
        owner = owner or init.targets[0]
        assert init.targets == (owner,)
        actions = harness.finish(
            harness.send(init), owner, "Failed", {"ok": False, "error": "kubeadm-failed"}
        )
    # THEN the owner is abandoned (the ASG terminates it) and still holds the claim meanwhile
    assert [(a.instance_id, a.result) for a in actions if isinstance(a, CompleteLifecycle)] == [
        (owner, "ABANDON")
    ]
    assert harness.phase(owner) == "abandoned"
    assert harness.view.cluster.init_owner == owner
    assert harness.sends(harness.dispatch()) == []
    # WHEN its terminate lifecycle action arrives
    actions = harness.event(LifecycleTerminate(owner, CP_ASG, "control-plane", "kcluster-terminate", "t-1"))
    assert [(a.instance_id, a.result) for a in actions if isinstance(a, CompleteLifecycle)] == [
        (owner, "CONTINUE")
    ]
    # THEN the claim is free and the other control plane inits a new epoch
    (init,) = harness.sends(harness.dispatch())
    assert init.document == contract.DOC_INIT and init.targets != (owner,)
    assert harness.view.cluster.epoch == 2


def test_agent_not_registered_is_retried_later_without_waiting(harness):
    harness.launch("i-00000001", "control-plane")
    (init,) = harness.sends(harness.dispatch())
    # WHEN SendCommand is refused because the SSM agent has not registered yet
    harness.apply(
        workflow.on_send_failed(harness.view, init, "InvalidInstanceId", harness.config, harness.now)
    )
    # THEN the claim is released, the node waits with a backoff, and nothing is sent meanwhile
    node = harness.view.nodes["i-00000001"]
    assert (node.phase, node.attempts, node.last_error) == ("waiting", 0, "InvalidInstanceId")
    assert harness.view.cluster.phase == "uninitialized"
    assert harness.sends(harness.dispatch()) == []
    harness.now += launch.NOT_READY_BACKOFF_SECONDS
    (again,) = harness.sends(harness.dispatch())
    assert again.document == contract.DOC_INIT


def test_refresh_failure_puts_joiners_back_and_frees_the_lease(harness):
    start_cluster(harness)
    harness.launch("i-0000000b", "control-plane")
    (refresh,) = harness.sends(harness.dispatch())
    harness.finish(harness.send(refresh), "i-0000000a", "Failed", {"ok": False, "error": "kubeadm-failed"})
    assert harness.phase("i-0000000b") == "waiting"
    assert harness.view.cluster.lease_owner is None
    assert harness.view.nodes["i-0000000b"].attempts == 0


def test_parameters_come_from_config(harness):
    harness.launch("i-00000001", "control-plane")
    (init,) = harness.sends(harness.dispatch())
    cfg = harness.config
    assert init.parameters == {
        "ClusterName": "demo",
        "KubernetesVersion": cfg.kubernetes_version,
        "ControlPlaneEndpoint": cfg.control_plane_endpoint,
        "PodCidr": cfg.pod_cidr,
        "ServiceCidr": cfg.service_cidr,
        "CniManifestUrl": cfg.cni.manifest_url,
    }
    assert init.timeout_seconds == cfg.timeouts.init_seconds
