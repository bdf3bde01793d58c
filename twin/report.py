"""What a twin run produced: the node table, counters, API calls and the DESIGN.md section 6 invariants.

Every invariant is computed from the world itself (the kube model, the ASG emulation, Run Command's
invocations, everything recorded), never from what the product code believes.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from moto.sns.models import sns_backends

from kcluster import contract
from twin.account import ACCOUNT_ID
from twin.version_watch import SkewWatch, skew_problems
from twin.world import Twin

# Membership-changing documents: at most one of these may run at a time.
_CONTROL_PLANE_OPS = ("join-control-plane",)


@dataclass
class Invariant:
    ok: bool
    detail: str


@dataclass
class QuorumWatch:
    """Samples etcd health after every step of the world; records the worst moment."""

    lost_at: list[float] = field(default_factory=list)

    def sample(self, twin: Twin) -> None:
        members = twin.model.etcd_members()
        # A cluster whose every member's instance is gone (the operator removed its last control
        # plane) has not lost quorum: it is gone, and the next control plane starts a new epoch.
        if not members or not any(twin.model.host(m.instance_id).alive for m in members):
            return
        healthy = sum(1 for m in members if m.healthy)
        if healthy < len(members) // 2 + 1 and not self._caused_by_crash(twin):
            self.lost_at.append(twin.clock.now())

    @staticmethod
    def _caused_by_crash(twin: Twin) -> bool:
        # Instances killed by fault injection take their member down with them; that is the fault,
        # not an action of ours. Removals and joins we drive are what this invariant watches.
        return bool(twin.recorder.counters.get("faults_instance_killed"))


def build_report(
    twin: Twin, quorum: QuorumWatch | None = None, extra: dict | None = None, skew: SkewWatch | None = None
) -> dict[str, Any]:
    nodes = _node_table(twin)
    report: dict[str, Any] = {
        "seed": twin.seed,
        # Until the world settled (the quiet period that confirms it is not counted).
        "virtual_seconds": round((twin.settled_at or twin.clock.now()) - twin.start_time, 3),
        "nodes": nodes,
        "etcd_members": sorted(m.name for m in twin.model.etcd_members()),
        "counters": _counters(twin),
        "api_calls": dict(sorted(twin.recorder.api_calls.items())),
        "invariants": {
            name: vars(inv)
            for name, inv in {
                **_invariants(twin, quorum),
                "version_skew_ok": _version_skew_ok(twin, skew),
            }.items()
        },
        "iam": twin.iam.report(),
    }
    if extra:
        report.update(extra)
    return report


def _node_table(twin: Twin) -> list[dict[str, Any]]:
    by_instance = {node.instance_id: node for node in twin.model.nodes()}
    rows = []
    for instance in twin.instances():
        node = by_instance.get(instance["instance_id"])
        rows.append(
            {
                "instance_id": instance["instance_id"],
                "role": instance["role"],
                "node_name": node.name if node else None,
                "ready": bool(node and node.ready),
                "lifecycle_state": instance["lifecycle_state"],
            }
        )
    return rows


def _counters(twin: Twin) -> dict[str, int]:
    history = Counter()
    for entry in twin.model.history:
        if entry.operation == "kubeadm-join":
            history[
                "control_plane_joins" if entry.detail.get("role") == "control-plane" else "worker_joins"
            ] += 1
        else:
            history[entry.operation] += 1
    outcomes = Counter(o.result for o in twin.lifecycle.outcomes if o.how == "completed")
    counters = {
        "kubeadm_init": history["kubeadm-init"],
        "control_plane_joins": history["control_plane_joins"],
        "worker_joins": history["worker_joins"],
        "lifecycle_continue": outcomes["CONTINUE"],
        "lifecycle_abandon": outcomes["ABANDON"],
        "drains": history["node-drained"] + history["node-drain-timed-out"],
        "nodes_deleted": history["node-deleted"],
        "etcd_members_removed": history["etcd-member-removed"],
    }
    counters.update(_remediation_counters(twin))
    counters.update({k: v for k, v in sorted(twin.recorder.counters.items()) if not k.startswith("faults_")})
    return counters


def _remediation_counters(twin: Twin) -> dict[str, int]:
    """What the product decided (its own EMF metrics) and what reached people (the alerts topic)."""
    decided: Counter[str] = Counter()
    for document in twin.functions.metrics:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                if metric["Name"] in ("Remediations", "RemediationsSuppressed"):
                    values = document[metric["Name"]]
                    decided[metric["Name"]] += int(sum(values) if isinstance(values, list) else values)
    topic = twin.stack.physical_id("AlertsTopic")
    sent = sns_backends[ACCOUNT_ID][twin.stack.region].topics[topic].sent_notifications
    return {
        "remediations": decided["Remediations"],
        "remediations_suppressed": decided["RemediationsSuppressed"],
        "notifications": len(sent),
    }


def _invariants(twin: Twin, quorum: QuorumWatch | None) -> dict[str, Invariant]:
    return {
        "single_init": _single_init(twin),
        "all_inservice_ready": _all_inservice_ready(twin),
        "one_control_plane_op_at_a_time": _one_control_plane_op(twin),
        "no_secret_leaked": _no_secret_leaked(twin),
        "no_orphan_nodes": _no_orphan_nodes(twin),
        "no_orphan_etcd_members": _no_orphan_members(twin),
        "quorum_never_lost": Invariant(
            not (quorum and quorum.lost_at),
            "etcd kept quorum"
            if not (quorum and quorum.lost_at)
            else f"quorum lost at virtual t={quorum.lost_at[0] - twin.start_time:.0f}s",
        ),
        "no_lifecycle_timeout": _no_lifecycle_timeout(twin),
        "converged": _converged(twin),
        "no_duplicate_effect": _no_duplicate_effect(twin),
        "no_access_denied": _no_access_denied(twin),
    }


def _no_access_denied(twin: Twin) -> Invariant:
    denials = twin.iam.authorizer.denials
    if not denials:
        return Invariant(
            True, f"{twin.iam.authorizer.calls} calls checked against the callers' policies, none denied"
        )
    first = denials[0]
    return Invariant(
        False, f"{len(denials)} calls denied; first: {first.label} {first.action} on {first.resource}"
    )


def _single_init(twin: Twin) -> Invariant:
    counts = twin.model.init_count_by_epoch()
    split = [e for e in twin.model.history if e.operation == "kubeadm-init" and e.detail.get("split_brain")]
    ok = all(count == 1 for count in counts.values()) and not split
    return Invariant(
        ok, f"kubeadm init per epoch: {counts}" + (f"; {len(split)} split-brain inits" if split else "")
    )


def _all_inservice_ready(twin: Twin) -> Invariant:
    ready = {node.instance_id for node in twin.model.nodes() if node.ready}
    in_service = [i["instance_id"] for i in twin.instances() if i["lifecycle_state"] == "InService"]
    missing = [iid for iid in in_service if iid not in ready]
    not_in_service = [i["instance_id"] for i in twin.instances() if i["lifecycle_state"] != "InService"]
    ok = not missing and not not_in_service
    detail = (
        f"{len(in_service)} InService instances, all Ready nodes"
        if ok
        else (f"not a Ready node: {missing}; not InService: {not_in_service}")
    )
    return Invariant(ok, detail)


def _one_control_plane_op(twin: Twin) -> Invariant:
    spans = []
    for command in twin.runcommand.commands.values():
        removes_member = command.key == contract.DOC_DRAIN_REMOVE and command.parameters.get(
            "RemoveEtcdMember"
        ) == ["true"]
        if command.key not in _CONTROL_PLANE_OPS and not removes_member:
            continue
        for invocation in command.invocations.values():
            if invocation.started_at is not None:
                spans.append(
                    (
                        invocation.started_at,
                        invocation.ended_at or twin.clock.now(),
                        command.key,
                        invocation.instance_id,
                    )
                )
    spans.sort()
    overlaps = [(a, b) for a, b in itertools.pairwise(spans) if b[0] < a[1]]
    detail = (
        f"{len(spans)} control-plane membership operations, none overlapping"
        if not overlaps
        else ("overlapping: {} on {} and {} on {}".format(*overlaps[0][0][2:], *overlaps[0][1][2:]))
    )
    return Invariant(not overlaps, detail)


def _no_secret_leaked(twin: Twin) -> Invariant:
    secrets = {s for s in twin.model.issued_secrets() if len(s) >= 8}
    places = {
        "logs": twin.recorder.log_lines,
        "events": [json.dumps(e) for e in twin.recorder.events],
        "command parameters": [json.dumps(p) for p in twin.recorder.command_parameters],
        "command output": [out + err for _, _, out, err in twin.recorder.command_outputs],
        "state table": [json.dumps(item) for item in twin.state_items()],
        "timeline": [entry.text for entry in twin.recorder.timeline],
    }
    leaks = [
        place
        for place, texts in places.items()
        if any(secret in text for text in texts for secret in secrets)
    ]
    scanned = sum(len(texts) for texts in places.values())
    detail = (
        f"{len(secrets)} secrets checked against {scanned} log lines, events, parameters, outputs and items"
        if not leaks
        else f"secret found in: {', '.join(leaks)}"
    )
    return Invariant(not leaks and bool(secrets), detail if secrets else "no secret was issued: nothing ran")


def _live_instances(twin: Twin) -> set[str]:
    return {i["instance_id"] for i in twin.instances()}


def _no_orphan_nodes(twin: Twin) -> Invariant:
    live = _live_instances(twin)
    orphans = sorted(node.name for node in twin.model.nodes() if node.instance_id not in live)
    return Invariant(
        not orphans, "every Node has a live instance" if not orphans else f"orphan Nodes: {orphans}"
    )


def _no_orphan_members(twin: Twin) -> Invariant:
    live = _live_instances(twin)
    orphans = sorted(m.name for m in twin.model.etcd_members() if m.instance_id not in live)
    return Invariant(
        not orphans,
        "every etcd member has a live instance" if not orphans else f"orphan etcd members: {orphans}",
    )


def _no_lifecycle_timeout(twin: Twin) -> Invariant:
    timed_out = [o for o in twin.lifecycle.outcomes if o.how not in ("completed", "superseded")]
    pending = twin.lifecycle.pending_actions()
    ok = not timed_out and not pending
    detail = (
        f"{len(twin.lifecycle.outcomes)} lifecycle actions, all completed"
        if ok
        else (
            f"timed out: {[(o.instance_id, o.transition, o.how) for o in timed_out]}; "
            f"still pending: {len(pending)}"
        )
    )
    return Invariant(ok, detail)


def _converged(twin: Twin) -> Invariant:
    """The world settled (and stayed settled for the quiet period) before the run's limit."""
    ok = twin.settled_at is not None and twin.settled()
    detail = (
        f"settled at virtual t={twin.settled_at - twin.start_time:.0f}s"
        if ok
        else f"not settled at virtual t={twin.clock.now() - twin.start_time:.0f}s: "
        f"{len(twin.lifecycle.pending_actions())} lifecycle actions pending, "
        f"{sum(1 for i in twin.instances() if i['lifecycle_state'] != 'InService')} instances not InService"
    )
    return Invariant(ok, detail)


def _no_duplicate_effect(twin: Twin) -> Invariant:
    """Each effect at most once: an instance inits or joins a cluster epoch once, one init per epoch, a
    Node deleted, an etcd member removed and a lifecycle action completed once. (An instance joined to
    a cluster that was re-initialized since joins the new epoch: another cluster, not a repeat.)"""
    effects: Counter[str] = Counter()
    for entry in twin.model.history:
        if entry.operation in ("kubeadm-init", "kubeadm-join"):
            effects[f"{entry.instance_id} joined epoch {entry.detail.get('epoch')}"] += 1
            if entry.operation == "kubeadm-init":
                effects[f"kubeadm init in epoch {entry.detail.get('epoch')}"] += 1
        elif entry.operation == "node-deleted":
            effects[f"Node {entry.detail.get('node')} of {entry.instance_id} deleted"] += 1
        elif entry.operation == "etcd-member-removed":
            effects[f"etcd member {entry.detail.get('name')} of {entry.instance_id} removed"] += 1
    for outcome in twin.lifecycle.outcomes:
        if outcome.how == "completed":
            effects[f"{outcome.instance_id} {outcome.hook_name} completed"] += 1
    duplicated = sorted(f"{effect} x{count}" for effect, count in effects.items() if count > 1)
    return Invariant(
        not duplicated,
        f"{sum(effects.values())} effects, none twice" if not duplicated else f"twice: {duplicated}",
    )


def _version_skew_ok(twin: Twin, skew: SkewWatch | None) -> Invariant:
    """Kubernetes' version-skew policy after every step (twin/version_watch.py), and at the end."""
    broken = list(skew.broken) if skew else []
    at_end = skew_problems(twin.model.component_versions())
    if at_end:
        broken.append((twin.clock.now() - twin.start_time, "; ".join(at_end)))
    if broken:
        return Invariant(False, f"skew policy broken at virtual t={broken[0][0]:.0f}s: {broken[0][1]}")
    checked = f"after each of {skew.samples} steps and at the end" if skew else "at the end"
    return Invariant(True, f"kube-apiservers within one minor, kubelets within the policy, {checked}")
