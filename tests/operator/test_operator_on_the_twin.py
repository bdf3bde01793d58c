"""The operator's commands against a settled twin, run exactly as against AWS: the operator's own
credentials (an administrator, authorized like every other principal), the same boto3 calls."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from twin.cli import run_operator_command

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

# The real ansible-inventory from ansible-core; a worktree without its own .tools points elsewhere.
ANSIBLE_INVENTORY = Path(
    os.environ.get(
        "ANSIBLE_INVENTORY",
        Path(__file__).resolve().parents[2] / ".tools" / "ansible" / "bin" / "ansible-inventory",
    )
)


def operator(settled, command: str) -> dict:
    return run_operator_command(settled.twin, command)


def test_inventory_lists_the_seeds_groups_and_every_running_node_by_its_node_name(settled):
    # GIVEN a cluster of one control plane and two workers, settled
    # WHEN the operator asks for the inventory
    run = operator(settled, "inventory --list")
    # THEN it lists the seed's groups, hosts named as their Nodes are, reachable through SSM
    assert run["exit_code"] == 0, run["stderr"]
    inventory = json.loads(run["output"])
    # On EC2 a node's hostname, and so its Node name, is the short private DNS name (cloud-init's
    # v1.local_hostname); the twin still names Nodes by the full one (ip-10-0-0-4.ec2.internal).
    nodes = {node["node_name"].split(".")[0]: node for node in settled.report["nodes"]}
    control_planes = sorted(name for name, node in nodes.items() if node["role"] == "control-plane")
    workers = sorted(name for name, node in nodes.items() if node["role"] == "worker")
    assert sorted(inventory["masters"]["hosts"]) == control_planes
    assert sorted(inventory["control_plane"]["hosts"]) == control_planes
    assert sorted(inventory["workers"]["hosts"]) == workers
    assert sorted(inventory["in_service"]["hosts"]) == sorted(nodes)
    endpoint = settled.twin.deployment.config.control_plane_endpoint
    assert inventory["masters"]["vars"]["elb"] == endpoint.rsplit(":", 1)[0]
    assert inventory["all"]["vars"]["api_endpoint"] == endpoint
    for name, variables in inventory["_meta"]["hostvars"].items():
        assert variables["instance_id"] == nodes[name]["instance_id"]
        assert variables["ansible_aws_ssm_instance_id"] == nodes[name]["instance_id"]
        assert variables["ansible_connection"] == "amazon.aws.aws_ssm"
        assert variables["ansible_aws_ssm_region"] == settled.twin.stack.region
        assert variables["ansible_aws_ssm_bucket_name"] == settled.twin.deployment.ssm_transfer_bucket
        assert variables["private_ip"].startswith("10.0.")


def test_the_transfer_bucket_is_private_tls_only_and_empties_itself(settled):
    import boto3

    s3 = boto3.client("s3", region_name=settled.twin.stack.region)
    bucket = settled.twin.deployment.ssm_transfer_bucket
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    (deny,) = policy["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rule["Expiration"] == {"Days": 1}


def test_inventory_host_gives_one_hosts_variables_and_refuses_an_unknown_one(settled):
    listed = json.loads(operator(settled, "inventory --list")["output"])
    name = listed["masters"]["hosts"][0]
    one = operator(settled, f"inventory --host {name}")
    assert one["exit_code"] == 0
    assert json.loads(one["output"]) == listed["_meta"]["hostvars"][name]
    unknown = operator(settled, "inventory --host ip-192-0-2-1")
    assert unknown["exit_code"] == 1
    assert "no host 'ip-192-0-2-1' in cluster 'demo'" in unknown["stderr"]
    assert unknown["output"] == ""


def test_real_ansible_inventory_reads_it(settled, tmp_path):
    """ansible-core's own inventory script plugin parses what `kcluster inventory` printed."""
    assert ANSIBLE_INVENTORY.exists(), f"{ANSIBLE_INVENTORY} missing: run `make tools`"
    listed = operator(settled, "inventory --list")["output"]
    host = json.loads(listed)["workers"]["hosts"][0]
    hostvars = operator(settled, f"inventory --host {host}")["output"]
    (tmp_path / "list.json").write_text(listed)
    (tmp_path / "host.json").write_text(hostvars)
    # Ansible runs an inventory script with --list, then maybe --host NAME: replay the command's output.
    script = tmp_path / "kcluster-inventory"
    script.write_text(
        f'#!/bin/sh\nif [ "$1" = --list ]; then cat {tmp_path}/list.json; else cat {tmp_path}/host.json; fi\n'
    )
    script.chmod(0o755)
    environment = {**os.environ, "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible"), "HOME": str(tmp_path)}
    graph = subprocess.run(
        [str(ANSIBLE_INVENTORY), "-i", str(script), "--graph"],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
        timeout=120,
    ).stdout
    assert "@masters:" in graph and "@workers:" in graph and f"|--{host}" in graph
    shown = json.loads(
        subprocess.run(
            [str(ANSIBLE_INVENTORY), "-i", str(script), "--host", host],
            capture_output=True,
            text=True,
            check=True,
            env=environment,
            timeout=120,
        ).stdout
    )
    assert shown["ansible_connection"] == "amazon.aws.aws_ssm"
    assert shown["ansible_aws_ssm_instance_id"] == shown["instance_id"]


def test_kubeconfig_is_merged_0600_beside_other_contexts(settled, tmp_path, monkeypatch):
    # GIVEN an operator's kubeconfig with a context of their own
    path = tmp_path / "kube" / "config"
    path.parent.mkdir()
    other = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "prod", "cluster": {"server": "https://prod.example:6443"}}],
        "users": [{"name": "prod", "user": {"token": "x"}}],
        "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "prod"}}],
        "current-context": "prod",
    }
    path.write_text(yaml.safe_dump(other))
    monkeypatch.setenv("KUBECONFIG", f"{path}{os.pathsep}{tmp_path / 'second'}")
    # WHEN they ask for this cluster's kubeconfig
    run = operator(settled, "kubeconfig")
    # THEN it sits beside theirs under the cluster's name, becomes current, and only they can read the file
    assert run["exit_code"] == 0, run["stderr"]
    merged = yaml.safe_load(path.read_text())
    assert [c["name"] for c in merged["contexts"]] == ["prod", "demo"]
    assert merged["current-context"] == "demo"
    endpoint = settled.twin.deployment.config.control_plane_endpoint
    assert {c["name"]: c["cluster"]["server"] for c in merged["clusters"]}["demo"] == f"https://{endpoint}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert run["output"] == ""  # nothing reached the terminal
    # AND asked again without switching, nothing is duplicated and the current context stays
    merged["current-context"] = "prod"
    path.write_text(yaml.safe_dump(merged))
    assert operator(settled, "kubeconfig --no-switch")["exit_code"] == 0
    again = yaml.safe_load(path.read_text())
    assert [c["name"] for c in again["contexts"]] == ["prod", "demo"]
    assert again["current-context"] == "prod"


def test_kubeconfig_to_a_file_or_stdout_only_when_asked(settled, tmp_path):
    target = tmp_path / "demo.conf"
    assert operator(settled, f"kubeconfig --file {target}")["exit_code"] == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    written = yaml.safe_load(target.read_text())
    printed = operator(settled, "kubeconfig --stdout")
    assert yaml.safe_load(printed["output"]) == written
    assert written["contexts"] == [{"name": "demo", "context": {"cluster": "demo", "user": "demo-admin"}}]


def test_operator_commands_run_from_simulate_then(tmp_path):
    """`kcluster simulate ... --then` prints each command under "operator" with --json."""
    completed = subprocess.run(
        [
            str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "kcluster"),
            "simulate",
            "--control-planes",
            "1",
            "--workers",
            "1",
            "--seed",
            "2",
            "--json",
            "--then",
            "inventory --list",
            "--then",
            "inventory --host nowhere",
            "--then",
            "status -o json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout)
    listed, refused, shown = report["operator"]
    assert (listed["command"], listed["exit_code"]) == ("inventory --list", 0)
    assert len(json.loads(listed["output"])["_meta"]["hostvars"]) == 2
    assert (refused["exit_code"], refused["output"]) == (1, "")
    assert "no host 'nowhere'" in refused["stderr"]
    assert (shown["command"], shown["exit_code"]) == ("status -o json", 0)
    assert json.loads(shown["output"])["valid"] is True


def test_status_of_a_settled_cluster_is_valid_and_matches_the_world(settled):
    # GIVEN the settled cluster WHEN the operator asks for its status as JSON
    run = operator(settled, "status -o json")
    # THEN it is valid (exit 0) and shows every node as the twin's own report does
    assert run["exit_code"] == 0, run["stderr"] + run["output"]
    shown = json.loads(run["output"])
    assert shown["valid"] and shown["validation_errors"] == []
    world = {node["instance_id"]: node for node in settled.report["nodes"]}
    assert {n["instance_id"]: (n["node_name"], n["role"]) for n in shown["nodes"]} == {
        iid: (node["node_name"], node["role"]) for iid, node in world.items()
    }
    assert all(n["ready"] == "Ready" and n["phase"] == "joined" for n in shown["nodes"])
    groups = {g["role"]: g for g in shown["node_groups"]}
    assert (groups["control-plane"]["desired"], groups["control-plane"]["in_service"]) == (1, 1)
    assert (groups["worker"]["desired"], groups["worker"]["in_service"], groups["worker"]["pending"]) == (
        2,
        2,
        0,
    )
    loop = shown["control_loop"]
    control_plane = next(iid for iid, node in world.items() if node["role"] == "control-plane")
    assert (loop["phase"], loop["epoch"], loop["init_owner"]) == ("ready", 1, control_plane)
    assert loop["lease_holder"] is None and loop["joins_pending"] == 0
    assert loop["last_reconcile_seconds_ago"] <= 60 and loop["last_health_report"]["seconds_ago"] <= 120
    # AND the table says the same, kops style
    table = operator(settled, "status")
    assert table["exit_code"] == 0
    assert "NODE GROUPS" in table["output"] and "Your cluster demo is ready" in table["output"]


def test_status_of_a_cluster_being_scaled_out_is_not_valid_until_it_settles(settled):
    # GIVEN the operator raises the workers' desired capacity and asks at once
    twin = settled.twin
    workers = twin.deployment.config.node_groups[1].asg_name
    with twin.operator():
        twin.operator_client("autoscaling").set_desired_capacity(
            AutoScalingGroupName=workers, DesiredCapacity=3
        )
    try:
        run = operator(settled, "status -o json")
        # THEN status exits 2 and names the group and the instance still on its way
        assert run["exit_code"] == 2
        errors = json.loads(run["output"])["validation_errors"]
        assert {"kind": "NodeGroup", "name": workers, "message": "2 of 3 instances InService"} in errors
        assert any(e["kind"] == "Instance" and e["message"].startswith("Pending") for e in errors)
    finally:
        # AND once the world has run, it is valid again (the fixture is shared)
        assert twin.run_until_settled()
    assert operator(settled, "status")["exit_code"] == 0


def test_events_tell_what_the_control_loop_did_in_the_timelines_words(settled):
    run = operator(settled, "events --since 1d -o json")
    assert run["exit_code"] == 0, run["stderr"]
    shown = json.loads(run["output"])
    texts = [event["text"] for event in shown]
    stamps = [event["time"] for event in shown]
    assert stamps == sorted(stamps)  # oldest first (ISO times sort as text)
    lines = operator(settled, "events --since 1d")["output"].splitlines()
    assert len(lines) == len(shown) and all(t in line for t, line in zip(texts, lines, strict=True))
    # Every command the control loop sent and every lifecycle action it completed reads as the twin's
    # own timeline wrote it (the health probe aside, as there).
    timeline = {entry.text for entry in settled.twin.recorder.timeline}
    sent = [text for text in texts if text.startswith("SendCommand")]
    completed = [text for text in texts if " completed: " in text]
    assert sent and completed
    assert set(sent) <= timeline and set(completed) <= timeline
    assert not [text for text in texts if "-health " in text]
    # AND --node keeps what concerns one instance
    worker = next(node["instance_id"] for node in settled.report["nodes"] if node["role"] == "worker")
    mine = json.loads(operator(settled, f"events --since 1d --node {worker} -o json")["output"])
    assert mine and all(worker in event["instances"] for event in mine)
    assert f"{worker} kcluster-launch completed: CONTINUE" in [event["text"] for event in mine]
    assert len(mine) < len(shown)


def test_every_line_a_function_printed_is_one_event_in_its_log_group(settled):
    """The twin's Lambda log pipeline: /aws/lambda/<function name>, one event per printed line, in order."""
    twin = settled.twin
    logs = twin.operator_client("logs")
    for logical_id, spec in twin.functions.functions.items():
        printed = [
            line.text for line in twin.functions.logs if line.function == logical_id and line.text.strip()
        ]
        with twin.operator():
            pages = logs.get_paginator("filter_log_events").paginate(logGroupName=f"/aws/lambda/{spec.name}")
            delivered = [event for page in pages for event in page["events"]]
        assert [event["message"] for event in delivered] == printed, logical_id
        stamps = [event["timestamp"] for event in delivered]
        assert stamps == sorted(stamps)


def test_backups_list_shows_what_the_bucket_holds_newest_first(settled):
    import boto3

    from kcluster.core.backup_catalog import catalog

    run = operator(settled, "backups list -o json")

    assert run["exit_code"] == 0, run["stderr"]
    listed = json.loads(run["output"])
    # the settled cluster took its first backup once it was ready
    assert listed and listed[0]["checked"], listed
    # the operator lists; only control planes may read the objects (the bucket's policy)
    s3 = boto3.client("s3", region_name=settled.twin.stack.region)
    contents = s3.list_objects_v2(Bucket=settled.twin.deployment.config.backup_bucket)
    expected = catalog(contents.get("Contents", []))
    assert [(b["key"], b["size_bytes"], b["checked"]) for b in listed] == [
        (b.key, b.snapshot_size, b.checked) for b in expected
    ]
    table = operator(settled, "backups list")
    assert table["exit_code"] == 0, table["stderr"]
    assert len(table["output"].splitlines()) == (len(listed) + 1 if listed else 1)
