"""The read-only views of a running cluster: `kcluster status` and `kcluster events`."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import IO, Any

import yaml

from kcluster_cli import events, status, tables
from kcluster_cli.aws import Cluster
from kcluster_cli.control_loop import find_control_loop
from kcluster_cli.durations import parse_duration

NOT_VALID = 2  # kops validate cluster's exit status for a cluster that does not validate
# kops validates every 10 s while it waits.
WAIT_INTERVAL_SECONDS = 10.0


def add_commands(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    shown = add("status", "node groups, nodes, the control loop's state and validation errors (read only)")
    shown.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    shown.add_argument(
        "--wait", type=parse_duration, metavar="DURATION", help="check again until valid, at most this long"
    )
    shown.set_defaults(run=run_status)
    happened = add("events", "what the control loop decided and did, oldest first (from its logs)")
    happened.add_argument(
        "--since", type=parse_duration, default=3600.0, metavar="DURATION", help="how far back (default 1h)"
    )
    happened.add_argument("--node", metavar="INSTANCE_ID", help="only what concerns this instance")
    happened.add_argument("-o", "--output", choices=("text", "json"), default="text")
    happened.set_defaults(run=run_events)


def run_status(
    args: argparse.Namespace,
    cluster: Cluster,
    out: IO[str],
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    deadline = clock() + (args.wait or 0.0)
    shown = status.build(status.observe(cluster))
    while not shown["valid"] and clock() + WAIT_INTERVAL_SECONDS <= deadline:
        sleep(WAIT_INTERVAL_SECONDS)
        shown = status.build(status.observe(cluster))
    out.write(render(shown, args.output, tables.status_text))
    return 0 if shown["valid"] else NOT_VALID


def run_events(args: argparse.Namespace, cluster: Cluster, out: IO[str]) -> int:
    found = events.read(cluster, find_control_loop(cluster), args.since, time.time())
    chosen = list(events.select(found, args.node))
    if args.output == "json":
        out.write(json.dumps([event.as_dict() for event in chosen], indent=2) + "\n")
    else:
        out.write(events.render(chosen))
    return 0


def render(document: dict[str, Any], output: str, as_text: Callable[[dict[str, Any]], str]) -> str:
    if output == "json":
        return json.dumps(document, indent=2) + "\n"
    if output == "yaml":
        return str(yaml.safe_dump(document, default_flow_style=False, sort_keys=False))
    return as_text(document)
