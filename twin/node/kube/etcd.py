"""etcd's membership as etcdctl and kubeadm see it.

Members carry etcd's 64-bit ids, a leader (the first member until moved or removed; re-elected among
healthy members while there is quorum); a control-plane join needs quorum of started members (etcd's
IsReadyToAddVotingMember) and is refused with "etcdserver: unhealthy cluster" right after another
membership change. Answers member list / endpoint health / endpoint status / move-leader / member remove
with the real etcdctl 3.4 JSON shapes and refusals. A script's `sleep` counts as time etcd had to settle
(the virtual clock does not move during one script run). Through etcdctl, the calling instance's local
member serves 127.0.0.1.
"""

from __future__ import annotations

import hashlib

from twin.node.kube.state import (
    ETCD_CLIENT_PORT,
    ETCD_PEER_PORT,
    ETCD_VERSION,
    ETCDCTL_EXIT_BAD_ARGS,
    ETCDCTL_EXIT_ERROR,
    MEMBERSHIP_SETTLE_SECONDS,
    ClusterState,
    EtcdMember,
    Host,
    KubeError,
    _Epoch,
    _Member,
)


def etcd_id(seed: str) -> int:
    """A 64-bit member/cluster id as etcd makes them (a hash), stable for a seed."""
    return int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big") or 1


def _parse_member_id(text: str) -> int:
    try:
        return int(text, 16)
    except ValueError:
        raise KubeError(
            f'Error: bad member ID arg (strconv.ParseUint: parsing "{text}": invalid syntax), '
            "expecting ID in Hex",
            ETCDCTL_EXIT_BAD_ARGS,
        ) from None


def _member_json(member: _Member) -> dict:
    answer: dict = {"ID": member.member_id}
    if member.client_url:
        answer["name"] = member.name
    answer["peerURLs"] = [member.peer_url]
    if member.client_url:
        answer["clientURLs"] = [member.client_url]
    return answer


class Etcd(ClusterState):
    """etcd membership, health, leader, and the etcdctl answers."""

    def etcd_members(self) -> list[EtcdMember]:
        with self._lock:
            if self._current is None:
                return []
            return [
                EtcdMember(m.name, m.peer_url, m.instance_id, self._member_healthy(m), m.member_id)
                for m in self._current.members.values()
            ]

    def etcd_leader(self) -> EtcdMember | None:
        """The member etcd would name leader now (None without quorum)."""
        with self._lock:
            if self._current is None:
                return None
            leader = self._elect(self._current)
            return next((m for m in self.etcd_members() if m.instance_id == leader), None)

    def stop_etcd(self, instance_id: str) -> None:
        """The control plane's etcd member stops answering (its client URL refuses: it is unhealthy)."""
        with self._lock:
            self._control_plane_host(instance_id).etcd_running = False
            self._record("etcd-stopped", instance_id)

    def crash_etcd(self, instance_id: str) -> None:
        """The etcd static pod's container crashed and exited (a corrupt data dir, a bad manifest, OOM):
        the member does not answer and `crictl ps` lists no etcd container, so `crictl exec` has nothing
        to run etcdctl in."""
        with self._lock:
            host = self._control_plane_host(instance_id)
            host.etcd_running = False
            host.etcd_container_running = False
            self._record("etcd-crashed", instance_id)

    def start_etcd(self, instance_id: str) -> None:
        with self._lock:
            host = self._control_plane_host(instance_id)
            host.etcd_running = True
            host.etcd_container_running = True
            self._record("etcd-started", instance_id)

    def etcd_member_list(self, instance_id: str, endpoints: list[str]) -> dict:
        with self._lock:
            epoch, serving = self._etcd_serving(instance_id, endpoints)
            return {
                "header": self._etcd_header(epoch, serving),
                "members": [_member_json(m) for m in epoch.members.values()],
            }

    def etcd_endpoint_health(self, instance_id: str, endpoints: list[str]) -> list[dict]:
        """`endpoint health --cluster`: one answer per member with client URLs (unstarted ones have none)."""
        with self._lock:
            epoch, _ = self._etcd_serving(instance_id, endpoints)
            quorum = self._has_quorum(epoch)
            answers = []
            for member in epoch.members.values():
                if not member.client_url:
                    continue
                if self._member_healthy(member) and quorum:
                    answers.append({"endpoint": member.client_url, "health": True, "took": "2.315ms"})
                else:
                    answers.append(
                        {
                            "endpoint": member.client_url,
                            "health": False,
                            "took": "5.000914377s",
                            "error": "context deadline exceeded",
                        }
                    )
            return answers

    def etcd_endpoint_status(self, instance_id: str, endpoints: list[str]) -> tuple[list[dict], list[str]]:
        """`endpoint status --cluster`: statuses of reachable members, and the client URLs that failed."""
        with self._lock:
            epoch, _ = self._etcd_serving(instance_id, endpoints)
            leader = self._elect(epoch)
            leader_id = epoch.members[leader].member_id if leader else 0
            statuses, failed = [], []
            for member in epoch.members.values():
                if not member.client_url:
                    continue
                if not self._member_healthy(member):
                    failed.append(member.client_url)
                    continue
                index = 8 + 3 * len(epoch.members) + epoch.raft_term
                statuses.append(
                    {
                        "Endpoint": member.client_url,
                        "Status": {
                            "header": {
                                "cluster_id": epoch.cluster_id,
                                "member_id": member.member_id,
                                "revision": 1,
                                "raft_term": epoch.raft_term,
                            },
                            "version": ETCD_VERSION,
                            "dbSize": 20480,
                            "leader": leader_id,
                            "raftIndex": index,
                            "raftTerm": epoch.raft_term,
                            "raftAppliedIndex": index,
                            "dbSizeInUse": 16384,
                        },
                    }
                )
            return statuses, failed

    def etcd_move_leader(self, instance_id: str, endpoints: list[str], target_hex: str) -> str:
        with self._lock:
            epoch = self._etcd_epoch(instance_id)
            target_id = _parse_member_id(target_hex)
            leader = self._elect(epoch)
            reachable = [self._member_at(epoch, instance_id, url) for url in endpoints]
            if leader is None or leader not in [m.instance_id for m in reachable if m is not None]:
                raise KubeError(
                    f"Error: no leader endpoint given at [{' '.join(endpoints)}]", ETCDCTL_EXIT_BAD_ARGS
                )
            target = next((m for m in epoch.members.values() if m.member_id == target_id), None)
            if target is None or not self._member_healthy(target) or target.instance_id == leader:
                raise KubeError("Error: etcdserver: bad leader transferee", ETCDCTL_EXIT_ERROR)
            previous = epoch.members[leader]
            epoch.leader = target.instance_id
            epoch.raft_term += 1
            self._record("etcd-leader-moved", target.instance_id, previous=previous.name, leader=target.name)
            return f"Leadership transferred from {previous.member_id:x} to {target.member_id:x}\n"

    def etcd_member_remove(self, instance_id: str, endpoints: list[str], member_hex: str) -> str:
        """etcd's mayRemoveMember with --strict-reconfig-check (the default), then the removal."""
        with self._lock:
            epoch, _ = self._etcd_serving(instance_id, endpoints)
            member_id = _parse_member_id(member_hex)
            if not self._has_quorum(epoch):
                raise KubeError("Error: context deadline exceeded", ETCDCTL_EXIT_ERROR)
            member = next((m for m in epoch.members.values() if m.member_id == member_id), None)
            if member is None:
                raise KubeError("Error: etcdserver: member not found", ETCDCTL_EXIT_ERROR)
            if self._member_healthy(member):
                others = [m for m in epoch.members.values() if m is not member]
                started_after = sum(bool(m.client_url) for m in others)
                if started_after < len(others) // 2 + 1:
                    raise KubeError(
                        "Error: etcdserver: re-configuration failed due to not enough started members",
                        ETCDCTL_EXIT_ERROR,
                    )
                active = sum(self._member_healthy(m) for m in epoch.members.values())
                if active - 1 < 1 + (len(epoch.members) - 1) // 2:
                    raise KubeError("Error: etcdserver: unhealthy cluster", ETCDCTL_EXIT_ERROR)
            if self._now() - epoch.last_membership_change < MEMBERSHIP_SETTLE_SECONDS:
                # peers connected less than etcd's HealthInterval ago do not count as active yet
                raise KubeError("Error: etcdserver: unhealthy cluster", ETCDCTL_EXIT_ERROR)
            self._drop_member(epoch, member.instance_id)
            self._record("etcd-member-removed", member.instance_id, name=member.name)
            return f"Member {member_id:16x} removed from cluster {epoch.cluster_id:16x}\n"

    def add_unstarted_etcd_member(self, peer_url: str) -> int:
        """`etcdctl member add` whose etcd never started (a join that died half-way).

        Such a member has no name and no client URLs, and counts towards the quorum size.
        """
        with self._lock:
            epoch = self._current
            if epoch is None:
                raise KubeError("no cluster")
            key = f"unstarted:{peer_url}"
            epoch.members[key] = _Member(
                name="",
                peer_url=peer_url,
                instance_id=key,
                added_at=self._now(),
                member_id=etcd_id(f"{epoch.number}/{peer_url}/{self._now()}"),
            )
            epoch.last_membership_change = self._now()
            self._record("etcd-member-added-unstarted", None, peer_url=peer_url)
            return epoch.members[key].member_id

    def script_slept(self, instance_id: str, seconds: float) -> None:
        """A script's `sleep`: time etcd had to settle after a membership change."""
        with self._lock:
            if self._current is not None:
                self._current.last_membership_change -= seconds
            self._record("script-slept", instance_id, seconds=seconds)

    def _etcd_epoch(self, instance_id: str) -> _Epoch:
        host = self._live_host(instance_id)
        epoch = self._epochs.get(host.epoch) if host.epoch else None
        if epoch is None or epoch is not self._current:
            raise KubeError("Error: dial tcp 127.0.0.1:2379: connect: connection refused", ETCDCTL_EXIT_ERROR)
        return epoch

    def _member_at(self, epoch: _Epoch, instance_id: str, url: str) -> _Member | None:
        """The member a client URL reaches, if it answers (127.0.0.1 is the calling instance)."""
        host = url.split("://", 1)[-1].rsplit(":", 1)[0]
        for member in epoch.members.values():
            member_host = self._hosts.get(member.instance_id)
            if member_host is None or not member.client_url:
                continue
            local = host in ("127.0.0.1", "localhost") and member.instance_id == instance_id
            if (local or member_host.private_ip == host) and self._member_healthy(member):
                return member
        return None

    def _etcd_serving(self, instance_id: str, endpoints: list[str]) -> tuple[_Epoch, _Member]:
        epoch = self._etcd_epoch(instance_id)
        for url in endpoints:
            member = self._member_at(epoch, instance_id, url)
            if member is not None:
                return epoch, member
        raise KubeError("Error: context deadline exceeded", ETCDCTL_EXIT_ERROR)

    def _etcd_header(self, epoch: _Epoch, serving: _Member) -> dict:
        return {"cluster_id": epoch.cluster_id, "member_id": serving.member_id, "raft_term": epoch.raft_term}

    def _elect(self, epoch: _Epoch) -> str | None:
        """The leader's instance id: kept while healthy; else the first healthy member, with quorum."""
        if not self._has_quorum(epoch):
            return None
        current = epoch.members.get(epoch.leader) if epoch.leader else None
        if current is None or not self._member_healthy(current):
            elected = next((m for m in epoch.members.values() if self._member_healthy(m)), None)
            epoch.leader = elected.instance_id if elected else None
            epoch.raft_term += 1
        return epoch.leader

    def _drop_member(self, epoch: _Epoch, instance_id: str) -> None:
        del epoch.members[instance_id]
        epoch.last_membership_change = self._now()
        if epoch.leader == instance_id:
            epoch.leader = None
            self._elect(epoch)

    def _member_healthy(self, member: _Member) -> bool:
        host = self._hosts.get(member.instance_id)
        return host is not None and host.alive and host.etcd_running and bool(member.client_url)

    def _has_quorum(self, epoch: _Epoch) -> bool:
        healthy = sum(self._member_healthy(m) for m in epoch.members.values())
        return healthy > len(epoch.members) // 2

    def _check_can_add_member(self, epoch: _Epoch) -> None:
        """kubeadm's etcd member add (cmd/kubeadm/app/util/etcd/etcd.go, addMember) retries MemberAdd
        every EtcdAPICallRetryInterval (0.5 s) for the EtcdAPICall timeout (2 min) on any error etcd
        returns. etcd's refusal right after a membership change ("unhealthy cluster" until its peers have
        been connected for HealthInterval, 5 s) clears within those retries: the join waits it out. A
        refusal that lasts (too few started members) fails the join after them with etcd's answer."""
        started = sum(self._member_healthy(m) for m in epoch.members.values())
        voting_after = len(epoch.members) + 1
        ready = (started == 1 and voting_after == 2) or started >= voting_after // 2 + 1
        if not ready:
            raise KubeError(
                "error execution phase control-plane-join/etcd: error creating local etcd static pod "
                "manifest file: etcdserver: unhealthy cluster"
            )
        settling_left = MEMBERSHIP_SETTLE_SECONDS - (self._now() - epoch.last_membership_change)
        if settling_left > 0:
            self._record("kubeadm-etcd-member-add-retried", None, waited=round(settling_left, 3))

    def _add_member(self, epoch: _Epoch, host: Host, node_name: str) -> None:
        peer_url = f"https://{host.private_ip}:{ETCD_PEER_PORT}"
        epoch.members[host.instance_id] = _Member(
            name=node_name,
            peer_url=peer_url,
            instance_id=host.instance_id,
            added_at=self._now(),
            member_id=etcd_id(f"{epoch.number}/{peer_url}/{self._now()}"),
            client_url=f"https://{host.private_ip}:{ETCD_CLIENT_PORT}",
        )
        epoch.last_membership_change = self._now()
        if epoch.leader is None:
            epoch.leader = host.instance_id
