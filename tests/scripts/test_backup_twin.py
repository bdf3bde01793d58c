"""The backup document on the twin's node model (fake etcdctl/etcdutl, moto's S3): what every scenario's
control planes run. The real etcd behind the same script is tests/scripts/test_backup.py."""

from __future__ import annotations

import json

import boto3
import pytest

from tests.scripts.conftest import CLUSTER, Nodes
from twin.account import REGION

BUCKET = f"kc-{CLUSTER}-backup-20261202000000000000000002"


@pytest.fixture
def bucket(nodes: Nodes) -> str:
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    ssm = boto3.client("ssm", region_name=REGION)
    name = f"/kcluster/{CLUSTER}/config"
    config = json.loads(ssm.get_parameter(Name=name)["Parameter"]["Value"])
    ssm.put_parameter(
        Name=name, Type="String", Overwrite=True, Value=json.dumps(config | {"backup_bucket": BUCKET})
    )
    return BUCKET


def _keys(bucket: str) -> list[str]:
    listed = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(item["Key"] for item in listed)


def test_a_control_plane_of_the_model_takes_a_backup_and_a_worker_cannot(nodes: Nodes, bucket: str):
    control_planes, workers = nodes.cluster(3, 1)

    run = nodes.run(control_planes[1], "backup")

    assert run.exit_code == 0, run.result.stderr
    assert (run.output["ok"], run.output["changed"], run.output["key"]) == (
        True,
        True,
        "frequent/20260101T000000Z/",
    )
    assert run.output["size"] > 0 and run.output["revision"] > 0 and run.output["total_keys"] > 0
    prefix = "frequent/20260101T000000Z/"
    assert _keys(bucket) == [prefix + name for name in ("etcd.db", "manifest.json", "pki.tar")]
    assert list((nodes.fleet.sandbox(control_planes[1]) / "var/lib/etcd").iterdir()) == []
    again = nodes.run(control_planes[1], "backup")
    assert (again.exit_code, again.output["changed"], again.output["size"]) == (0, False, run.output["size"])

    worker = nodes.run(workers[0], "backup", BackupId="20260101T001500Z")
    assert (worker.exit_code, worker.output["error"]) == (3, "not-a-control-plane")


def test_no_backup_from_a_control_plane_whose_etcd_is_down(nodes: Nodes, bucket: str):
    control_planes, _ = nodes.cluster(1, 0)
    nodes.model.stop_etcd(control_planes[0])

    run = nodes.run(control_planes[0], "backup")

    assert (run.exit_code, run.output["error"]) == (1, "etcd-unhealthy")
    assert _keys(bucket) == []
