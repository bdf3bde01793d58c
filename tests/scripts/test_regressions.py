"""Regressions found by running the twin at scale: each named for what broke."""

from __future__ import annotations

from pathlib import Path

from twin.node.fleet import FAKE_BIN_DIR

from .conftest import CLUSTER, Nodes


def test_fake_aws_cli_follows_pagination_like_the_real_one(nodes: Nodes):
    # Found by `kcluster simulate --workers 200 --seed 1`: the fake `aws ec2 describe-instances` returned
    # only moto's first page, so the stray cleanup before a control-plane join saw half the fleet as gone
    # and deleted 99 live Nodes. The real CLI merges every page.
    first = nodes.add("control-plane")
    nodes.ec2.run_instances(
        ImageId="ami-12c6146b",
        MinCount=130,
        MaxCount=130,
        SubnetId=nodes.subnet_id,
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [
                    {"Key": "kcluster:cluster", "Value": CLUSTER},
                    {"Key": "kcluster:role", "Value": "worker"},
                ],
            }
        ],
    )
    script = (
        "aws ec2 describe-instances --filters Name=tag:kcluster:cluster,Values=demo "
        "--query 'Reservations[].Instances[].InstanceId' --output text | wc -w\n"
    )
    result = nodes.fleet.run_script(first, script, {"AWS_REGION": "us-east-1"})
    assert result.exit_code == 0, result.stderr
    assert int(result.stdout.strip()) == 131


def test_stray_cleanup_refuses_a_mass_deletion(nodes: Nodes):
    # Defense in depth for the same bug: whatever EC2 seems to say, refresh-join never deletes more than
    # a tenth of the Nodes (at least 3) as strays in one go.
    cp = nodes.add("control-plane")
    assert nodes.run(cp, "init").output["ok"]
    workers = [nodes.add("worker") for _ in range(5)]
    for worker in workers:
        assert nodes.run(cp, "refresh-join", UploadCertificates="false").output["ok"]
        assert nodes.run(worker, "join-worker").output["ok"]
    # one instance gone: its Node is a stray and goes
    nodes.terminate(workers[0])
    run = nodes.run(cp, "refresh-join", UploadCertificates="true")
    assert run.output["ok"] and run.output["stray_nodes_deleted"] == 1
    # four more "gone" at once (more than max(3, 5 // 10)): nothing is deleted
    for worker in workers[1:]:
        nodes.terminate(worker)
    run = nodes.run(cp, "refresh-join", UploadCertificates="true")
    assert run.output["ok"] and run.output["stray_nodes_deleted"] == 0
    assert len(nodes.model.nodes()) == 5


def _long_ec2_answer(directory: Path, extra_instances: int) -> Path:
    """An `aws` first on PATH that answers the live-instance listing as a large cluster's EC2 would:
    the cluster's real instances first, then `extra_instances` more lines of the same shape (instances
    with no Node yet). Everything else goes to the twin's `aws` unchanged."""
    directory.mkdir()
    extra = "".join(
        f"i-{index:017x}\t10.1.{index // 250}.{index % 250 + 1}\tip-10-1-{index // 250}-{index % 250 + 1}.ec2.internal\n"
        for index in range(1, extra_instances + 1)
    )
    (directory / "extra-instances.tsv").write_text(extra)
    wrapper = directory / "aws"
    wrapper.write_text(
        "#!/usr/bin/env bash\n"
        "set -euo pipefail\n"
        f'"{FAKE_BIN_DIR}/aws" "$@"\n'
        'if [[ " $* " == *" Name=instance-state-name,Values=pending,running "* && " $* " != *kcluster:role* ]]; then\n'
        f'  cat "{directory}/extra-instances.tsv"\n'
        "fi\n"
    )
    wrapper.chmod(0o755)
    return directory


def test_stray_cleanup_keeps_every_live_node_when_ec2_lists_thousands_of_instances(
    nodes: Nodes, tmp_path: Path
):
    # Found at 400+ workers: `cut -f1 <<<"$live" | grep -qxF "$label"` under pipefail. grep -q exits at
    # the first match, cut (still writing thousands of lines) dies of SIGPIPE, the pipeline fails, and a
    # live instance was taken for gone: its Node was deleted.
    # GIVEN a cluster of 1 control plane and 12 workers, listed by EC2 before 3,000 more instances
    cp = nodes.add("control-plane")
    assert nodes.run(cp, "init").output["ok"]
    workers = [nodes.add("worker") for _ in range(12)]
    for worker in workers:
        assert nodes.run(worker, "join-worker").output["ok"]
    long_answer = _long_ec2_answer(tmp_path / "long-answer", 3000)
    # AND one worker really gone
    nodes.terminate(workers[0])
    # WHEN refresh-join cleans up strays before a control-plane join (several times: the bug was a race)
    runs = [nodes.run(cp, "refresh-join", path_first=long_answer) for _ in range(5)]
    # THEN exactly the gone worker's Node was deleted, once, and every live Node is still there
    assert [run.output["stray_nodes_deleted"] for run in runs] == [1, 0, 0, 0, 0], runs[0].result.stderr
    assert sorted(view.instance_id for view in nodes.model.nodes()) == sorted([cp, *workers[1:]])


def test_a_ready_node_is_never_deleted_as_a_stray(nodes: Nodes):
    # GIVEN a worker whose instance EC2 calls terminated while its Node still reports Ready
    cp = nodes.add("control-plane")
    assert nodes.run(cp, "init").output["ok"]
    worker = nodes.add("worker")
    assert nodes.run(worker, "join-worker").output["ok"]
    nodes.ec2.terminate_instances(InstanceIds=[worker])
    # WHEN refresh-join runs
    run = nodes.run(cp, "refresh-join")
    # THEN the Node stays: a Ready Node has a kubelet that is alive, whatever the list said
    assert run.output["ok"] and run.output["stray_nodes_deleted"] == 0
    assert worker in {view.instance_id for view in nodes.model.nodes()}
    assert "the Node is Ready: kept" in run.result.stderr


def test_a_node_is_deleted_as_a_stray_only_when_ec2_asked_by_its_id_says_it_is_gone(nodes: Nodes):
    # GIVEN a NotReady worker missing from the cluster's list (its cluster tag was removed) that EC2,
    # asked by its id, still reports running
    cp = nodes.add("control-plane")
    assert nodes.run(cp, "init").output["ok"]
    worker = nodes.add("worker")
    assert nodes.run(worker, "join-worker").output["ok"]
    nodes.ec2.delete_tags(Resources=[worker], Tags=[{"Key": "kcluster:cluster"}])
    nodes.model.stop_kubelet(worker)
    # WHEN refresh-join runs
    run = nodes.run(cp, "refresh-join")
    # THEN the Node stays
    assert run.output["ok"] and run.output["stray_nodes_deleted"] == 0
    assert worker in {view.instance_id for view in nodes.model.nodes()}
    # AND once EC2 says it is terminated, it goes
    nodes.ec2.terminate_instances(InstanceIds=[worker])
    assert nodes.run(cp, "refresh-join").output["stray_nodes_deleted"] == 1
