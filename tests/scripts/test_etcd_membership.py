"""etcd membership against a REAL etcd cluster: the etcd and etcdctl that kubeadm at kubernetes_version
deploys, built from source by tools/kubernetes/build.sh (tests/kubernetes/cluster.py finds them).

Each test starts 3 or 4 etcd processes on 127.0.0.1 (ports from the kernel's free range, data dirs
under tmp_path) with TLS on client and peer URLs, certificates generated with `cryptography` and laid
out as kubeadm does (/etc/kubernetes/pki/etcd/{ca.crt,healthcheck-client.crt,healthcheck-client.key}
in the running control plane's sandbox, so the scripts use their defaults). The REAL rendered scripts
(common.sh + drain-remove.sh / refresh-join.sh) run in bash with PATH = a crictl stand-in that execs the
real etcdctl (tests/scripts/crictl_standin.py) and the real sleep first, then the twin's fake kubectl/kubeadm/aws/cloud-init backed by a KubeModel and moto. Only
ETCDCTL_ENDPOINTS (the local member's URL; all members share 127.0.0.1) and short timeouts come
from the environment. etcd members are named after the model's Nodes, so the scripts find them by name.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kubernetes.cluster import binaries
from tests.scripts.conftest import Nodes, Run, default_parameters
from tests.scripts.crictl_standin import write_crictl
from tests.scripts.etcd_cluster import EtcdCluster
from tests.scripts.test_drain_remove import _cluster, _node_name

pytestmark = pytest.mark.etcd


@pytest.fixture(scope="module")
def etcd_bin() -> Path:
    """The built etcd and etcdctl (`make kubernetes`; Debian's etcd 3.4 is older than any kubeadm deploys)."""
    return binaries()


class RealEtcd:
    """A model cluster of control planes, and a real etcd cluster whose members carry their Node names."""

    def __init__(self, nodes: Nodes, tmp_path: Path, size: int, etcd_bin: Path) -> None:
        self.nodes = nodes
        self.control_planes, _ = _cluster(nodes, control_planes=size, workers=0)
        self.names = {cp: _node_name(nodes, cp) for cp in self.control_planes}
        self.etcd = EtcdCluster.start(
            tmp_path / "etcd",
            list(self.names.values()),
            etcd=str(etcd_bin / "etcd"),
            etcdctl=str(etcd_bin / "etcdctl"),
        )
        self.real_bin = tmp_path / "real-bin"
        self.real_bin.mkdir()
        write_crictl(self.real_bin, etcd_bin / "etcdctl")  # etcdctl runs "in the etcd container"
        (self.real_bin / "sleep").symlink_to("/usr/bin/sleep")
        for cp in self.control_planes:
            pki = nodes.fleet.sandbox(cp) / "etc/kubernetes/pki/etcd"
            for name in ("ca.crt", "healthcheck-client.crt", "healthcheck-client.key"):
                (pki / name).write_bytes(self.etcd.pki[name].read_bytes())

    def run(self, on: str, key: str, **overrides: str) -> Run:
        params = default_parameters(key) | overrides
        env = {f"SSM_{name}": value for name, value in params.items()}
        env |= {
            "ETCDCTL_ENDPOINTS": self.etcd.members[self.names[on]].client_url,
            "ETCDCTL_DIAL_TIMEOUT": "1s",
            "ETCDCTL_COMMAND_TIMEOUT": "2s",
        }
        result = self.nodes.run_env(on, key, env, path_first=self.real_bin)
        lines = result.stdout.splitlines()
        assert len(lines) == 1, f"expected one result line, got {result.stdout!r}; stderr {result.stderr}"
        return Run(result, json.loads(lines[0]))

    def drain_remove(self, on: str, leaving: str) -> Run:
        return self.run(on, "drain-remove", InstanceId=leaving, RemoveEtcdMember="true", DrainTimeout="30s")

    def instance_of(self, name: str) -> str:
        return next(cp for cp, node in self.names.items() if node == name)


@pytest.fixture
def real_etcd(nodes: Nodes, tmp_path: Path, etcd_bin: Path) -> Iterator[callable]:
    started: list[RealEtcd] = []

    def start(size: int) -> RealEtcd:
        started.append(RealEtcd(nodes, tmp_path, size, etcd_bin))
        return started[-1]

    yield start
    for cluster in started:
        cluster.etcd.close()


def test_removing_a_follower(real_etcd) -> None:
    cluster = real_etcd(3)
    leader = cluster.instance_of(cluster.etcd.leader())
    local = next(cp for cp in cluster.control_planes if cp != leader)
    follower = next(cp for cp in cluster.control_planes if cp not in (leader, local))

    run = cluster.drain_remove(local, follower)

    assert run.exit_code == 0, run.result.stderr
    assert (run.output["etcd_member_removed"], run.output["node_deleted"]) == (True, True)
    assert cluster.etcd.member_names() == sorted(cluster.names[cp] for cp in (leader, local))
    assert cluster.etcd.leader() == cluster.names[leader]
    # a second run is a no-op success
    again = cluster.drain_remove(local, follower)
    assert (again.exit_code, again.output["changed"], again.output["etcd_member_removed"]) == (
        0,
        False,
        False,
    )


def test_removing_the_leader_moves_leadership_first(real_etcd) -> None:
    cluster = real_etcd(3)
    leader = cluster.instance_of(cluster.etcd.leader())
    local = next(cp for cp in cluster.control_planes if cp != leader)

    run = cluster.drain_remove(local, leader)

    assert run.exit_code == 0, run.result.stderr
    assert run.output["etcd_member_removed"] is True
    assert "Leadership transferred" in run.result.stderr
    remaining = sorted(cluster.names[cp] for cp in cluster.control_planes if cp != leader)
    assert cluster.etcd.member_names() == remaining
    assert cluster.etcd.leader() in remaining


def test_removal_while_another_member_is_down_is_refused(real_etcd) -> None:
    cluster = real_etcd(3)
    local, leaving, down = cluster.control_planes
    cluster.etcd.stop(cluster.names[down])
    before = cluster.etcd.member_names()

    run = cluster.drain_remove(local, leaving)

    assert (run.exit_code, run.output["ok"], run.output["error"]) == (4, False, "quorum-risk")
    assert "2 of 3 members are healthy" in run.output["message"]
    assert cluster.etcd.member_names() == before == sorted(cluster.names.values())
    # the Node stays for the control loop to retry once etcd is healthy again
    assert leaving in {view.instance_id for view in cluster.nodes.model.nodes()}


def test_two_removals_right_after_each_other_succeed(real_etcd) -> None:
    cluster = real_etcd(4)
    leader = cluster.instance_of(cluster.etcd.leader())
    local = next(cp for cp in cluster.control_planes if cp != leader)
    first, second = (cp for cp in cluster.control_planes if cp not in (leader, local))

    assert cluster.drain_remove(local, first).output["etcd_member_removed"] is True
    run = cluster.drain_remove(local, second)

    assert run.exit_code == 0, run.result.stderr
    assert run.output["etcd_member_removed"] is True
    assert cluster.etcd.member_names() == sorted(cluster.names[cp] for cp in (leader, local))


def test_refresh_join_removes_a_dead_stray_member_and_keeps_healthy_ones(real_etcd) -> None:
    cluster = real_etcd(4)
    leader = cluster.instance_of(cluster.etcd.leader())
    local = next(cp for cp in cluster.control_planes if cp != leader)
    dead = next(cp for cp in cluster.control_planes if cp not in (leader, local))
    # a member a failed join left behind: added, never started, at an address no instance has
    # (etcd refuses membership changes until its peers have been connected for 5 s: retry like the scripts)
    for _ in range(40):
        added = cluster.etcd.etcdctl("member", "add", "ghost", "--peer-urls=https://10.0.9.9:2380")
        if "unhealthy cluster" not in added.stderr:
            break
        time.sleep(0.25)
    assert added.returncode == 0, added.stderr
    # the dead control plane's instance is gone and its etcd with it
    cluster.etcd.stop(cluster.names[dead])
    cluster.nodes.terminate(dead)

    run = cluster.run(local, "refresh-join")

    assert run.exit_code == 0, run.result.stderr
    assert (run.output["stray_members_removed"], run.output["stray_nodes_deleted"]) == (2, 1)
    alive = sorted(cluster.names[cp] for cp in cluster.control_planes if cp != dead)
    assert cluster.etcd.member_names() == alive
