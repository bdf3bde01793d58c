"""`kcluster backups list` against a settled twin, with the operator's own credentials (an administrator,
authorized as AWS would, and refused the backups' objects by the bucket's policy): the listing is all
it needs, and what it shows is the bucket's content."""

from __future__ import annotations

import json

import boto3
import pytest

from kcluster.core.backup_catalog import catalog
from twin.cli import run_operator_command

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def test_backups_list_shows_what_the_bucket_holds_newest_first(settled):
    run = run_operator_command(settled.twin, "backups list -o json")

    assert run["exit_code"] == 0, run["stderr"]
    listed = json.loads(run["output"])
    # the settled cluster took its first backup once it was ready
    assert listed and listed[0]["checked"], listed
    s3 = boto3.client("s3", region_name=settled.twin.stack.region)
    contents = s3.list_objects_v2(Bucket=settled.twin.deployment.config.backup_bucket)
    expected = catalog(contents.get("Contents", []))
    assert [(b["key"], b["size_bytes"], b["checked"]) for b in listed] == [
        (b.key, b.snapshot_size, b.checked) for b in expected
    ]
    table = run_operator_command(settled.twin, "backups list")
    assert table["exit_code"] == 0, table["stderr"]
    assert len(table["output"].splitlines()) == (len(listed) + 1 if listed else 1)
