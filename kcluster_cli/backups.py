"""`kcluster backups list`: the etcd backups in the cluster's backup bucket, newest first, with when the
control loop took each, the snapshot's size and whether it is whole and checked (kcluster.core.
backup_catalog). Read from the bucket's listing only: the bucket's policy keeps every object, the PKI
among them, for the control planes, so this command needs s3:ListBucket and nothing else."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import IO, Any

from kcluster.core import backup_catalog
from kcluster.core.backup_catalog import Backup
from kcluster_cli.aws import Cluster, aws_errors, paginate
from kcluster_cli.durations import age
from kcluster_cli.errors import OperatorError
from kcluster_cli.tables import table

EXAMPLES = (
    "examples:\n"
    "  kcluster backups list --cluster demo                  # newest first\n"
    "  kcluster backups list --cluster demo --tier daily -o json | jq '.[0].key'"
)


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """`backups` with its own sub-commands (list now; restore will join it)."""
    backups = commands.add_parser(
        "backups",
        help="the cluster's etcd backups (list)",
        description="The cluster's etcd backups in its backup bucket.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = backups.add_subparsers(dest="backups_command", required=True, metavar="ACTION")
    listed = actions.add_parser(
        "list",
        help="the backups, newest first: time, size, whether checked good",
        description="The backups in the cluster's backup bucket, newest first (read only).",
        parents=[common],
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    listed.add_argument("--tier", choices=backup_catalog.TIERS, help="only this retention tier")
    listed.add_argument("-o", "--output", choices=("table", "json"), default="table")
    listed.set_defaults(run=run_list)


def run_list(
    args: argparse.Namespace, cluster: Cluster, out: IO[str], *, clock: Callable[[], float] = time.time
) -> int:
    found = [backup for backup in read(cluster) if args.tier in (None, backup.tier)]
    now = clock()
    if args.output == "json":
        out.write(json.dumps([backup.as_dict(now) for backup in found], indent=2) + "\n")
    else:
        out.write(render(cluster, found, now))
    return 0


def read(cluster: Cluster) -> list[Backup]:
    bucket = cluster.config.backup_bucket
    if bucket is None:
        raise OperatorError(
            f"cluster {cluster.name!r} has no backup bucket in its configuration: apply the Terraform "
            "module's version with backups (backup.tf) first"
        )
    with aws_errors(f"listing s3://{bucket}"):
        return backup_catalog.catalog(
            paginate(cluster.client("s3"), "list_objects_v2", "Contents", Bucket=bucket)
        )


def render(cluster: Cluster, backups: list[Backup], now: float) -> str:
    if not backups:
        return f"no backups in s3://{cluster.config.backup_bucket}\n"
    rows = [
        (
            backup.key,
            backup.as_dict(now)["taken_at"],
            age(now - backup.taken_at),
            _size(backup.snapshot_size),
            "yes" if backup.checked else f"no (missing {', '.join(backup.missing)})",
        )
        for backup in backups
    ]
    return table(("BACKUP", "TAKEN", "AGE", "SIZE", "CHECKED"), rows) + "\n"


def _size(size: int | None) -> str | None:
    if size is None:
        return None
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB"):
        value /= 1024
        if value < 1024:
            return f"{value:.1f} {unit}"
    return f"{value / 1024:.1f} GiB"
