"""The Kubernetes contract: every behaviour the node scripts and the twin depend on, written once and run
twice, against the real components (`real`) and against the twin's KubeModel (`model`).

Covered: drain outcomes and the messages the scripts match (a normal drain; an eviction a
PodDisruptionBudget refuses; an evicted pod that never terminates), Node deletion (and a second delete),
bootstrap tokens (shape, TTL, expiry), the certificate key (upload-certs, its 2 h expiry, kubeadm's refusal
of --certificate-key with --config), etcd membership (member list, move-leader, member remove and its
quorum refusal, a member added but never started), Ready transitions (a kubelet that stops posting).
What the contract only assumes is listed in docs/twin-design.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kubernetes.cluster import ControlPlane, kubernetes_version
from tests.kubernetes.contract import ModelSide, RealSide

pytestmark = pytest.mark.kubernetes

DRAIN = ("--ignore-daemonsets", "--delete-emptydir-data", "--force")
TOKEN_SHAPE = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")
PDB_REFUSAL = "Cannot evict pod as it would violate the pod's disruption budget"
CP = "kc-model-control-plane"  # the model's first control plane; the real side's Nodes are hand-made


@pytest.fixture(params=["real", "model"])
def side(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RealSide | ModelSide]:
    if request.param == "real":
        plane: ControlPlane = request.getfixturevalue("kube")
        chosen: RealSide | ModelSide = RealSide(plane, tmp_path)
        chosen.add_node(CP, control_plane=True)
    else:
        chosen = ModelSide(kubernetes_version(), tmp_path)
    try:
        yield chosen
    finally:
        chosen.close()


# ----- drain -----


def test_a_drain_evicts_the_pods_and_says_drained(side) -> None:
    side.add_node("w1")
    side.add_pod("w1", "web-1")

    answer = side.kubectl("drain", "w1", *DRAIN, "--timeout=5s")

    assert answer.exit_code == 0, answer.stderr
    assert "evicting pod default/web-1" in answer.stdout
    assert "node/w1 drained" in answer.stdout
    assert not side.pod_exists("web-1") or side.name == "model"  # the model's controller recreates it
    assert side.node("w1")["spec"].get("unschedulable") is True


def test_an_eviction_a_pdb_refuses_ends_the_drain_at_its_timeout(side) -> None:
    side.add_node("w1")
    side.add_node("w2")
    side.add_pod("w1", "web-1", pdb="web")
    side.add_pod("w2", "web-2", pdb="web")
    side.set_pdb("web", 2)

    answer = side.kubectl("drain", "w1", *DRAIN, "--timeout=3s")

    assert answer.exit_code == 1
    assert "evicting pod default/web-1" in answer.stdout  # before every attempt
    assert PDB_REFUSAL in answer.stderr
    assert 'error when evicting pods/"web-1" -n "default": global timeout reached: 3s' in answer.stderr
    assert side.pod_exists("web-1")
    assert side.node("w1")["spec"].get("unschedulable") is True


def test_an_evicted_pod_that_never_terminates_ends_the_drain_with_the_context_deadline(side) -> None:
    # no kubelet finishes a pod with a grace period (the leaving node's kubelet is dead)
    side.add_node("w1")
    side.add_pod("w1", "slow-1", grace_seconds=300)
    side.kubelet_stops("w1")

    answer = side.kubectl("drain", "w1", *DRAIN, "--timeout=3s")

    assert answer.exit_code == 1
    assert "evicting pod default/slow-1" in answer.stdout
    minor = int(side.version.split(".")[1])
    wording = "context deadline exceeded" if minor >= 32 else "global timeout reached: 3s"
    assert (
        f'error when waiting for pod "slow-1" in namespace "default" to terminate: {wording}' in answer.stderr
    )
    assert PDB_REFUSAL not in answer.stderr


# ----- Node deletion -----


def test_deleting_a_node_then_deleting_it_again(side) -> None:
    side.add_node("w1")

    first = side.kubectl("delete", "node", "w1", "--ignore-not-found")
    second = side.kubectl("delete", "node", "w1", "--ignore-not-found")
    strict = side.kubectl("delete", "node", "w1")

    assert (first.exit_code, first.stdout) == (0, 'node "w1" deleted\n')
    assert (second.exit_code, second.stdout, second.stderr) == (0, "", "")
    assert strict.exit_code == 1
    assert 'Error from server (NotFound): nodes "w1" not found' in strict.stderr
    assert side.node("w1") is None


# ----- bootstrap tokens and the certificate key -----


def test_a_token_is_accepted_until_its_ttl_and_refused_after(side) -> None:
    answer = side.kubeadm("token", "create", "--ttl", "3s")

    assert answer.exit_code == 0, answer.stderr
    token = answer.stdout.strip().splitlines()[-1]
    assert TOKEN_SHAPE.match(token)
    assert side.token_accepted(token)
    # the API server caches a successful authentication for 10 s: past that and the TTL, refused
    side.pass_time(13)
    assert not side.token_accepted(token)


def test_upload_certs_prints_a_key_that_expires_after_two_hours(side) -> None:
    answer = side.kubeadm("init", "phase", "upload-certs", "--upload-certs")

    assert answer.exit_code == 0, answer.stderr
    key = answer.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"[a-f0-9]{64}", key)
    assert side.certificate_key_accepted_after(key, 7200 - 120)
    assert not side.certificate_key_accepted_after(key, 7200 + 120)


def test_a_certificate_key_cannot_be_mixed_with_a_config(side, tmp_path: Path) -> None:
    config = tmp_path / "kubeadm.yaml"
    config.write_text("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n")

    answer = side.kubeadm(
        "init",
        "phase",
        "upload-certs",
        "--upload-certs",
        "--config",
        str(config),
        "--certificate-key",
        "0" * 64,
    )

    assert answer.exit_code != 0


# ----- Ready transitions -----


def test_a_node_whose_kubelet_stops_posting_turns_unknown(side) -> None:
    side.add_node("w1")
    assert side.ready_status("w1") == "True"
    before = side.node("w1")["status"]["conditions"]

    side.kubelet_stops("w1")

    assert side.ready_status("w1") == "Unknown"
    ready = next(c for c in side.node("w1")["status"]["conditions"] if c["type"] == "Ready")
    old = next(c for c in before if c["type"] == "Ready")
    assert ready["lastTransitionTime"] >= old["lastTransitionTime"]


# ----- etcd membership -----

MEMBERS = [CP, "cp-2", "cp-3"]


def _members(side, via: str) -> dict[str, dict]:
    answer = side.etcdctl(via, "member", "list", "-w", "json")
    assert answer.exit_code == 0, answer.stderr
    return {member.get("name", ""): member for member in json.loads(answer.stdout)["members"]}


def test_etcd_member_list_move_leader_and_remove(side) -> None:
    side.etcd_cluster(MEMBERS)
    members = _members(side, CP)
    assert sorted(members) == sorted(MEMBERS)
    leader = side.etcd_leader()
    follower = next(name for name in MEMBERS if name != leader)
    other = next(name for name in MEMBERS if name not in (leader, follower))

    # move-leader must reach the leader
    refused = side.etcdctl(follower, "move-leader", f"{members[other]['ID']:x}")
    assert refused.exit_code != 0
    assert "no leader endpoint given" in refused.stderr
    moved = side.etcdctl(leader, "move-leader", f"{members[follower]['ID']:x}")
    assert moved.exit_code == 0, moved.stderr
    assert (
        f"Leadership transferred from {members[leader]['ID']:x} to {members[follower]['ID']:x}"
        in moved.stdout
    )
    assert side.etcd_leader() == follower

    removed = side.etcdctl(follower, "member", "remove", f"{members[other]['ID']:x}")
    assert removed.exit_code == 0, removed.stderr
    # etcdctl prints both IDs with %16x: an ID below 2**60 is padded with a space, not a zero
    assert f"Member {members[other]['ID']:16x} removed from cluster " in removed.stdout
    assert sorted(_members(side, follower)) == sorted([leader, follower])
    again = side.etcdctl(follower, "member", "remove", f"{members[other]['ID']:x}")
    assert again.exit_code == 1
    assert "member not found" in again.stderr


def test_etcd_refuses_a_removal_that_would_lose_quorum(side) -> None:
    side.etcd_cluster(MEMBERS)
    members = _members(side, CP)
    side.etcd_stop("cp-3")

    refused = side.etcdctl(CP, "member", "remove", f"{members['cp-2']['ID']:x}")

    assert refused.exit_code == 1
    assert "etcdserver: unhealthy cluster" in refused.stderr
    assert sorted(_members(side, CP)) == sorted(MEMBERS)
