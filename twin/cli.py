"""`kcluster`: run kcluster on the local twin.

    kcluster simulate [--scenario NAME] [--control-planes N] [--workers N] [--seed S] [--json | --summary]

Without --json it prints a readable timeline and a `kubectl get nodes`-style table; with --json one
JSON document (nodes, counters, API calls, invariants). The exit status is 1 when an invariant fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

from twin import scenarios

# Timeline kinds worth showing a person; the full record stays in --json's counters and the logs.
_SHOWN_KINDS = ("operator", "asg", "ssm")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kcluster", description="kcluster on the local twin")
    commands = parser.add_subparsers(dest="command", required=True)
    simulate = commands.add_parser("simulate", help="run a scenario on the local twin")
    simulate.add_argument("--scenario", default="scale-out", choices=sorted(scenarios.SCENARIOS))
    simulate.add_argument("--control-planes", type=_count(1, 9), default=3)
    simulate.add_argument("--workers", type=_count(0, 2000), default=5)
    simulate.add_argument("--seed", type=int, default=7)
    output = simulate.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one JSON document")
    output.add_argument("--summary", action="store_true", help="print only counters, invariants and timings")
    args = parser.parse_args(argv)

    # Powertools warns on every invocation that adds no metric; that is noise here.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    started = time.perf_counter()
    result = scenarios.run(
        args.scenario, control_planes=args.control_planes, workers=args.workers, seed=args.seed
    )
    wall = time.perf_counter() - started
    try:
        report = result.report
        if args.json:
            sys.stdout.write(json.dumps(report, indent=2) + "\n")
        else:
            if not args.summary:
                _print_timeline(result.twin)
                _print_nodes(report)
            _print_summary(report, wall)
    finally:
        result.twin.close()
    return 0 if all(inv["ok"] for inv in report["invariants"].values()) else 1


def _count(low: int, high: int):
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    return parse


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes:02d}:{rest:02d}"


def _print_timeline(twin) -> None:
    print("TIMELINE (virtual time since the first action)")
    for entry in twin.recorder.timeline:
        if entry.kind in _SHOWN_KINDS:
            print(f"  [{_clock(entry.at - twin.start_time)}] {entry.kind:<8} {entry.text}")
    print()


def _print_nodes(report: dict) -> None:
    rows = [("NAME", "STATUS", "ROLES", "INSTANCE", "LIFECYCLE")]
    for node in report["nodes"]:
        rows.append(
            (
                node["node_name"] or "<none>",
                "Ready" if node["ready"] else "NotReady",
                node["role"],
                node["instance_id"],
                node["lifecycle_state"],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print()


def _print_summary(report: dict, wall: float) -> None:
    counters = ", ".join(f"{k}={v}" for k, v in report["counters"].items())
    print(
        f"scenario {report['scenario']}, seed {report['seed']}: "
        f"{report['virtual_seconds']:.0f} virtual seconds, {wall:.1f} s wall clock"
    )
    print(f"counters: {counters}")
    print(f"API calls by the functions: {sum(report['api_calls'].values())}")
    for name, invariant in report["invariants"].items():
        print(f"  {'ok  ' if invariant['ok'] else 'FAIL'} {name}: {invariant['detail']}")


if __name__ == "__main__":
    raise SystemExit(main())
