"""Fixtures for the pure core: a config and a harness that applies plans to an in-memory view."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from kcluster.config import ClusterConfig
from kcluster.core import workflow
from kcluster.core.models import (
    Action,
    BackupState,
    ClusterState,
    ClusterView,
    CommandFinished,
    HealthSnapshot,
    LifecycleLaunch,
    NodeProvisioned,
    NodeRecord,
    Plan,
    RemediationState,
    SendCommand,
)
from kcluster.core.phases import NODE_INITIAL_PHASES, check_backup_move, check_cluster_move, check_node_move

CP_ASG = "kcluster-demo-control-plane"
WORKER_ASG = "kcluster-demo-workers"


def make_config(**overrides) -> ClusterConfig:
    values = {
        "cluster_name": "demo",
        "control_plane_endpoint": "kcluster-demo-nlb.elb.us-east-1.amazonaws.com:6443",
        "node_groups": [
            {"asg_name": CP_ASG, "role": "control-plane"},
            {"asg_name": WORKER_ASG, "role": "worker"},
        ],
        "documents": {
            key: f"kcluster-demo-{key.replace('_', '-')}"
            for key in ("init", "join_control_plane", "join_worker", "refresh_join", "drain_remove", "health")
        },
    }
    values.update(overrides)
    return ClusterConfig.model_validate(values)


@pytest.fixture
def config() -> ClusterConfig:
    return make_config()


@dataclass
class Harness:
    """Applies the core's plans to a view the way the shell would, minus AWS."""

    config: ClusterConfig
    view: ClusterView = field(default_factory=lambda: ClusterView(ClusterState("demo")))
    now: float = 1_000.0
    actions: list[Action] = field(default_factory=list)
    sent: dict[str, SendCommand] = field(default_factory=dict)

    def apply(self, plan: Plan) -> list[Action]:
        new_actions: list[Action] = []
        for batch in plan.batches:
            for record in batch.writes:
                # The store's conditional write: each record exactly one version past the stored one.
                stored = _stored(self.view, record)
                assert record.version == (stored.version if stored else 0) + 1, (record, stored)
                # Every phase change is one the transition table allows (core/phases.py).
                check_written_phase(stored, record)
            self.view = self.view.with_records(list(batch.writes))
            new_actions += batch.actions
        self.actions += new_actions
        return new_actions

    def event(self, event) -> list[Action]:
        return self.apply(workflow.on_event(self.view, event, self.config, self.now))

    def dispatch(self) -> list[Action]:
        return self.apply(workflow.dispatch(self.view, self.config, self.now))

    def launch(self, instance_id: str, role: str = "worker", provisioned: bool = True) -> None:
        asg = CP_ASG if role == "control-plane" else WORKER_ASG
        self.event(LifecycleLaunch(instance_id, asg, role, "kcluster-launch", f"token-{instance_id}"))
        if provisioned:
            self.event(NodeProvisioned(instance_id, role))

    def send(self, action: SendCommand) -> str:
        """Record that SendCommand succeeded; returns the command id."""
        command_id = f"{len(self.sent) + 1:08d}-0000-0000-0000-000000000000"
        self.sent[command_id] = action
        self.apply(workflow.on_command_sent(self.view, action, command_id, self.now))
        return command_id

    def finish(self, command_id: str, instance_id: str, status: str = "Success", result: dict | None = None):
        if result is None:
            result = {"ok": status == "Success", "node_name": f"ip-{instance_id}"}
        return self.event(CommandFinished(command_id, instance_id, status, result))

    def sends(self, actions: list[Action]) -> list[SendCommand]:
        return [a for a in actions if isinstance(a, SendCommand)]

    def phase(self, instance_id: str) -> str:
        return self.view.nodes[instance_id].phase


@pytest.fixture
def harness(config) -> Harness:
    return Harness(config)


def check_written_phase(stored, record) -> None:
    """The phase a written record moves to must follow the stored one's (a new node starts launching,
    or comes back from "gone" through a fresh record)."""
    if isinstance(record, NodeRecord):
        if stored is None:
            assert record.phase in NODE_INITIAL_PHASES | {"waiting", "gone"}, record
        else:
            before = (
                "launching"
                if stored.phase == "gone" and record.phase in ("launching", "waiting")
                else stored.phase
            )
            check_node_move(record.instance_id, before, record.phase)
    elif isinstance(record, ClusterState) and stored is not None:
        check_cluster_move(record.name, stored.phase, record.phase)
    elif isinstance(record, BackupState) and stored is not None:
        check_backup_move(record.name, stored.phase, record.phase)


def _stored(view: ClusterView, record):
    if isinstance(record, ClusterState):
        return view.cluster
    if isinstance(record, RemediationState):
        return view.remediation
    if isinstance(record, NodeRecord):
        return view.nodes.get(record.instance_id)
    if isinstance(record, HealthSnapshot):
        return view.health
    if isinstance(record, BackupState):
        return view.backup
    return view.commands.get(record.command_id)
