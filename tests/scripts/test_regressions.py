"""Regressions found by running the twin at scale: each named for what broke."""

from __future__ import annotations

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
    nodes.ec2.terminate_instances(InstanceIds=[workers[0]])
    run = nodes.run(cp, "refresh-join", UploadCertificates="true")
    assert run.output["ok"] and run.output["stray_nodes_deleted"] == 1
    # four more "gone" at once (more than max(3, 5 // 10)): nothing is deleted
    nodes.ec2.terminate_instances(InstanceIds=workers[1:])
    run = nodes.run(cp, "refresh-join", UploadCertificates="true")
    assert run.output["ok"] and run.output["stray_nodes_deleted"] == 0
    assert len(nodes.model.nodes()) == 5
