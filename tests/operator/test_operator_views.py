"""`kcluster status` and `kcluster events` on their own: validation, exit codes, --wait, what they say
when the control loop is missing; durations, completion and --help (no twin needed)."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
from dataclasses import replace
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

from kcluster.core.models import ClusterState, ClusterView, HealthSnapshot, NodeHealth, NodeRecord
from kcluster_cli import events, operator_views, status
from kcluster_cli.durations import age, parse_duration
from kcluster_cli.fleet import GroupView, InstanceView
from tests.operator.test_operator_cli import CLUSTER, CONFIG, kcluster

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
LAUNCHED = datetime.fromtimestamp(NOW - 600, tz=UTC)


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield boto3.client("ssm", region_name="us-east-1")


def instance(instance_id: str, role: str, state: str = "InService") -> InstanceView:
    group = "kcluster-ops-test-" + ("control-plane" if role == "control-plane" else "workers")
    return InstanceView(instance_id, group, role, state, "Healthy", "running", launch_time=LAUNCHED)


def joined(instance_id: str, role: str) -> NodeRecord:
    return NodeRecord(instance_id, role, phase="joined", node_name=f"ip-{instance_id}", updated_at=NOW - 3600)


def observed(
    *, worker_state: str = "InService", not_ready: tuple[str, ...] = (), health_age: float = 30.0
) -> status.Observed:
    control_plane, worker = instance("i-cp", "control-plane"), instance("i-w1", "worker", worker_state)
    groups = (
        GroupView("kcluster-ops-test-control-plane", "control-plane", 1, 1, 3, (control_plane,)),
        GroupView("kcluster-ops-test-workers", "worker", 0, 1, 5, (worker,)),
    )
    health = HealthSnapshot(
        taken_at=NOW - health_age,
        taken_on="i-cp",
        api_ready=True,
        ready_nodes=2 - len(not_ready),
        not_ready_nodes=len(not_ready),
        not_ready=tuple(NodeHealth(i, f"ip-{i}", False, False) for i in not_ready),
        etcd_reachable=True,
        etcd_members=1,
        etcd_healthy=1,
    )
    view = ClusterView(
        ClusterState(CLUSTER, phase="ready", epoch=1, init_owner="i-cp"),
        nodes={"i-cp": joined("i-cp", "control-plane"), "i-w1": joined("i-w1", "worker")},
        health=health,
    )
    return status.Observed(CLUSTER, "us-east-1", "1.37.2", groups, view, NOW - 20, NOW)


def test_a_settled_cluster_is_valid_with_every_node_ready():
    shown = status.build(observed())
    assert shown["valid"] and shown["validation_errors"] == []
    assert [(n["instance_id"], n["ready"], n["phase"], n["age_seconds"]) for n in shown["nodes"]] == [
        ("i-cp", "Ready", "joined", 600),
        ("i-w1", "Ready", "joined", 600),
    ]
    loop = shown["control_loop"]
    assert (loop["phase"], loop["epoch"], loop["init_owner"], loop["joins_pending"]) == (
        "ready",
        1,
        "i-cp",
        0,
    )
    assert (loop["last_reconcile_seconds_ago"], loop["last_health_report"]["seconds_ago"]) == (20, 30)
    # Backups and rollouts keep no records yet: shown as nothing, never made up.
    assert (loop["last_backup"], loop["rollout"]) == (None, None)


def test_a_notready_node_a_pending_instance_and_a_stale_health_report_are_each_named():
    # GIVEN a worker the health probe saw NotReady, on a report ten minutes old
    shown = status.build(observed(not_ready=("i-w1",), health_age=600))
    # THEN the status is not valid and says why, as kops lists it
    assert not shown["valid"]
    assert {(e["kind"], e["name"]) for e in shown["validation_errors"]} == {
        ("Health", CLUSTER),
        ("Node", "ip-i-w1"),
    }
    # AND an instance still waiting for its launch hook is named with its lifecycle state
    pending = status.build(observed(worker_state="Pending:Wait"))
    messages = {e["name"]: e["message"] for e in pending["validation_errors"]}
    assert messages["kcluster-ops-test-workers"] == "0 of 1 instances InService"
    assert messages["i-w1"] == "Pending:Wait (control loop: joined)"


def test_a_node_that_joined_after_the_last_health_report_is_unknown_not_ready():
    record = replace(joined("i-w1", "worker"), updated_at=NOW)
    health = observed().view.health
    assert status.readiness(record, health) == "Unknown"
    assert status.readiness(None, health) == "Unknown"


def test_status_exits_2_when_not_valid_and_waits_until_valid(monkeypatch):
    # GIVEN a cluster that becomes valid on the third look
    looks = iter([observed(worker_state="Pending:Wait"), observed(worker_state="Pending:Wait"), observed()])
    monkeypatch.setattr(status, "observe", lambda cluster: next(looks))
    slept: list[float] = []
    clock = iter(range(0, 1000, 10))
    args = argparse.Namespace(output="json", wait=60.0)
    out = io.StringIO()
    # WHEN the operator waits up to a minute
    code = operator_views.run_status(
        args,
        None,
        out,
        sleep=slept.append,
        clock=lambda: float(next(clock)),  # type: ignore[arg-type]
    )
    # THEN it looked three times, ten seconds apart, and exits 0 with the valid status
    assert (code, slept) == (0, [10.0, 10.0])
    assert json.loads(out.getvalue())["valid"] is True
    # AND without --wait a cluster that is not valid exits 2 after one look
    monkeypatch.setattr(status, "observe", lambda cluster: observed(worker_state="Pending:Wait"))
    table = io.StringIO()
    code = operator_views.run_status(argparse.Namespace(output="table", wait=None), None, table)  # type: ignore[arg-type]
    assert code == operator_views.NOT_VALID == 2
    assert "VALIDATION ERRORS" in table.getvalue() and "Validation failed" in table.getvalue()


def test_status_without_the_control_loop_says_to_deploy_it(aws, capsys):
    aws.put_parameter(Name=f"/kcluster/{CLUSTER}/config", Value=json.dumps(CONFIG), Type="String")
    code, out, err = kcluster(["status", "--cluster", CLUSTER], capsys)
    assert (code, out) == (1, "")
    assert f"/kcluster/{CLUSTER}/control-loop" in err and "sam deploy" in err


def test_events_says_what_was_decided_in_the_timelines_words():
    sent = json.dumps(
        {
            "level": "INFO",
            "message": "sent join-worker",
            "command_id": "0f2f887f-aaaa",
            "targets": ["i-1", "i-2"],
        }
    )
    completed = json.dumps(
        {"level": "INFO", "message": "lifecycle action CONTINUE", "instance_id": "i-1", "hook_name": "launch"}
    )
    names = {"join-worker": "kcluster-demo-join-worker"}.__getitem__
    assert (
        events.parse("reactor", NOW, sent, names).text
        == "SendCommand kcluster-demo-join-worker to i-1, i-2 (0f2f887f)"
    )
    assert events.parse("reactor", NOW, completed).text == "i-1 launch completed: CONTINUE"
    # Metrics, the routine health probe and lines that are not JSON are not decisions.
    assert events.parse("reconciler", NOW, json.dumps({"_aws": {}, "JoinedNodes": 3})) is None
    assert events.parse("reconciler", NOW, json.dumps({"message": "sent health"})) is None
    assert events.parse("reconciler", NOW, "START RequestId: 1") is None


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("5m", 300), ("1h30m", 5400), ("2d", 172800)])
def test_durations_read_as_operators_write_them(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "m5", "5 m", "-5m", "1.5h"])
def test_a_duration_that_does_not_parse_says_how_to_write_one(text):
    with pytest.raises(argparse.ArgumentTypeError, match="30s, 5m, 1h30m or 2d"):
        parse_duration(text)


def test_ages_read_as_kubectl_prints_them():
    assert [age(s) for s in (5, 119, 300, 330, 3000, 7200, 30000, 200000)] == [
        "5s",
        "119s",
        "5m",
        "5m30s",
        "50m",
        "120m",
        "8h",
        "2d",
    ]


def test_completion_scripts_offer_every_command_and_option_and_parse(tmp_path, capsys):
    code, script, _ = kcluster(["completion", "bash"], capsys)
    assert code == 0
    for word in ("status", "events", "inventory", "kubeconfig", "--wait", "--since", "--output", "--cluster"):
        assert word in script
    (tmp_path / "kcluster.bash").write_text(script)
    subprocess.run(["bash", "-n", str(tmp_path / "kcluster.bash")], check=True)
    # Loaded into bash, it completes a command and its options.
    probe = (
        f"source {tmp_path / 'kcluster.bash'}; COMP_WORDS=(kcluster sta); COMP_CWORD=1; _kcluster_complete; "
        'echo "${COMPREPLY[@]}"; COMP_WORDS=(kcluster status --w); COMP_CWORD=2; _kcluster_complete; '
        'echo "${COMPREPLY[@]}"'
    )
    shown = subprocess.run(["bash", "-c", probe], check=True, capture_output=True, text=True).stdout
    assert shown.splitlines() == ["status", "--wait"]
    code, zsh, _ = kcluster(["completion", "zsh"], capsys)
    assert code == 0 and "bashcompinit" in zsh and "complete -o default -F _kcluster_complete kcluster" in zsh


@pytest.mark.parametrize("command", ["status", "events", "inventory", "kubeconfig", "completion"])
def test_every_command_shows_an_example_in_its_help(command, capsys):
    with pytest.raises(SystemExit) as stop:
        kcluster([command, "--help"], capsys)
    assert stop.value.code == 0
    shown = capsys.readouterr().out
    assert "examples:" in shown and f"kcluster {command}" in shown.split("examples:", 1)[1]
