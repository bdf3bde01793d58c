"""`kcluster backups list` against moto's S3: the bucket's backups newest first, as a table and as JSON,
and clear errors when there is nothing to list from."""

from __future__ import annotations

import json
import time

import boto3
import pytest

from tests.operator.test_operator_cli import CLUSTER, CONFIG, aws, kcluster  # noqa: F401 - the fixture

BUCKET = "kc-ops-test-backup-20260101000000000000000001"


@pytest.fixture
def bucket(aws):  # noqa: F811
    """GIVEN a cluster whose configuration names its backup bucket, with three backups in it: two whole
    ones and a newer one whose upload stopped before the manifest."""
    aws.put_parameter(
        Name=f"/kcluster/{CLUSTER}/config",
        Value=json.dumps({**CONFIG, "backup_bucket": BUCKET}),
        Type="String",
    )
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    for prefix, size in (
        ("daily/20260101T000000Z/", 3 * 1024 * 1024 + 32),
        ("frequent/20260101T001500Z/", 5152),
    ):
        s3.put_object(Bucket=BUCKET, Key=prefix + "etcd.db", Body=b"x" * size)
        s3.put_object(Bucket=BUCKET, Key=prefix + "pki.tar", Body=b"p")
        s3.put_object(Bucket=BUCKET, Key=prefix + "manifest.json", Body=b"{}")
    s3.put_object(Bucket=BUCKET, Key="frequent/20260101T003000Z/etcd.db", Body=b"x" * 100)
    return s3


def test_the_table_lists_newest_first_with_time_size_and_whether_checked(bucket, capsys):
    code, out, err = kcluster(["backups", "list", "--cluster", CLUSTER], capsys)

    assert (code, err) == (0, "")
    header, *rows = out.splitlines()
    assert header.split() == ["BACKUP", "TAKEN", "AGE", "SIZE", "CHECKED"]
    assert [row.split()[0] for row in rows] == [
        "frequent/20260101T003000Z/",
        "frequent/20260101T001500Z/",
        "daily/20260101T000000Z/",
    ]
    assert "2026-01-01T00:30:00Z" in rows[0] and "100 B" in rows[0]
    assert rows[0].endswith("no (missing pki.tar, manifest.json)")
    assert "5.0 KiB" in rows[1] and rows[1].endswith("yes")
    assert "3.0 MiB" in rows[2] and rows[2].endswith("yes")


def test_json_output_and_the_tier_filter(bucket, capsys):
    code, out, _ = kcluster(
        ["backups", "list", "--cluster", CLUSTER, "--tier", "frequent", "-o", "json"], capsys
    )

    assert code == 0
    listed = json.loads(out)
    assert [(b["key"], b["size_bytes"], b["checked"]) for b in listed] == [
        ("frequent/20260101T003000Z/", 100, False),
        ("frequent/20260101T001500Z/", 5152, True),
    ]
    assert listed[1]["taken_at"] == "2026-01-01T00:15:00Z"
    assert abs(listed[1]["age_seconds"] - (time.time() - 1_767_226_500)) < 60


def test_an_empty_bucket_says_so(aws, capsys):  # noqa: F811
    aws.put_parameter(
        Name=f"/kcluster/{CLUSTER}/config",
        Value=json.dumps({**CONFIG, "backup_bucket": BUCKET}),
        Type="String",
    )
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
    assert kcluster(["backups", "list", "--cluster", CLUSTER], capsys) == (
        0,
        f"no backups in s3://{BUCKET}\n",
        "",
    )
    assert kcluster(["backups", "list", "--cluster", CLUSTER, "-o", "json"], capsys) == (0, "[]\n", "")


def test_a_cluster_without_a_backup_bucket_is_told_what_to_do(aws, capsys):  # noqa: F811
    aws.put_parameter(Name=f"/kcluster/{CLUSTER}/config", Value=json.dumps(CONFIG), Type="String")
    code, out, err = kcluster(["backups", "list", "--cluster", CLUSTER], capsys)
    assert (code, out) == (1, "")
    assert err.startswith(f"kcluster: cluster '{CLUSTER}' has no backup bucket") and "backup.tf" in err


def test_a_bucket_that_is_gone_is_named(aws, capsys):  # noqa: F811
    aws.put_parameter(
        Name=f"/kcluster/{CLUSTER}/config",
        Value=json.dumps({**CONFIG, "backup_bucket": BUCKET}),
        Type="String",
    )
    code, out, err = kcluster(["backups", "list", "--cluster", CLUSTER], capsys)
    assert (code, out) == (1, "")
    assert f"listing s3://{BUCKET}: NoSuchBucket" in err and "Traceback" not in err


def test_bad_input_is_refused_by_the_parser(aws, capsys):  # noqa: F811
    for argv in (["backups"], ["backups", "list", "--tier", "hourly"], ["backups", "list", "-o", "yaml"]):
        with pytest.raises(SystemExit) as exited:
            kcluster(argv, capsys)
        assert exited.value.code == 2, argv
        assert "error:" in capsys.readouterr().err
