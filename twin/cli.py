"""The twin's sub-commands of `kcluster`: run kcluster on the local twin.

    kcluster simulate [--scenario NAME] [--control-planes N] [--workers N] [--seed S] [--json | --summary]
    kcluster chaos --seeds N [--first-seed S] [--control-planes N] [--workers N] [--json]

Without --json `simulate` prints a readable timeline and a `kubectl get nodes`-style table; with --json
one JSON document (nodes, counters, API calls, invariants; "faults" for the chaos scenario). `chaos`
runs the chaos scenario over N seeds and prints a summary table (faults injected by kind, invariant
violations by name) and the command replaying each failing seed. The exit status is 1 when an
invariant fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
import time
import warnings
from typing import Any

from kcluster import contract
from twin import chaos, scenarios

# Timeline kinds worth showing a person; the full record stays in --json's counters and the logs.
_SHOWN_KINDS = ("operator", "asg", "ssm", "fault", "alarm", "elb")


def iam_table() -> str:
    """The table of every policy a freshly deployed twin enforces (no scenario needs to run)."""
    from twin.iam import table
    from twin.world import Twin

    twin = Twin(seed=1)
    try:
        return table.markdown(twin.iam, twin.stack.account_id, twin.stack.region, twin.cluster)
    finally:
        twin.close()


def add_commands(commands: Any) -> None:
    """The twin's sub-commands of `kcluster` (kcluster_cli/main.py adds them on a development tree)."""
    simulate = commands.add_parser(
        "simulate",
        help="run a scenario on the local twin",
        description="Run a scenario on the local twin and print its timeline, nodes and invariants.",
        epilog=(
            "examples:\n"
            "  kcluster simulate --scenario demo --control-planes 3 --workers 5 --seed 7\n"
            "  kcluster simulate --workers 20 --then 'inventory --list' --then 'kubeconfig --stdout' --json\n"
            "  kcluster simulate --scenario demo --then 'status' --then 'events' --html demo.html"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    simulate.add_argument("--scenario", default="scale-out", choices=sorted(scenarios.SCENARIOS))
    simulate.add_argument("--control-planes", type=_count(1, 9), default=3)
    simulate.add_argument("--workers", type=_count(0, 2000), default=5)
    simulate.add_argument("--seed", type=int, default=7)
    simulate.add_argument(
        "--then",
        action="append",
        default=[],
        metavar="COMMAND",
        help="an operator command run against the settled world as against AWS (repeatable)",
    )
    simulate.add_argument(
        "--html", metavar="FILE", help="also write the run as one self-contained page (swimlanes, invariants)"
    )
    output = simulate.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one JSON document")
    output.add_argument("--summary", action="store_true", help="print only counters, invariants and timings")
    simulate.set_defaults(run=_simulate, twin_command=True)
    many = commands.add_parser("chaos", help="run the chaos scenario over many seeds and sum up")
    many.add_argument("--seeds", type=_count(1, 100_000), required=True, help="how many seeds to run")
    many.add_argument("--first-seed", type=int, default=1)
    many.add_argument("--control-planes", type=_count(1, 9), default=chaos.CHAOS_CONTROL_PLANES)
    many.add_argument("--workers", type=_count(0, 2000), default=chaos.CHAOS_WORKERS)
    many.add_argument(
        "--processes", type=_count(1, 64), default=os.cpu_count() or 1, help="seeds run in parallel"
    )
    many.add_argument("--json", action="store_true", help="print the summary as one JSON document")
    many.set_defaults(run=_chaos, twin_command=True)
    table = commands.add_parser(
        "iam-table", help="print README's who-can-do-what table from the deployed policies"
    )
    table.set_defaults(run=_iam_table, twin_command=True)


def main(argv: list[str] | None = None) -> int:
    from kcluster_cli.main import run

    return run(argv)


def _iam_table(_args: argparse.Namespace) -> int:
    sys.stdout.write(iam_table() + "\n")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    # Powertools warns on every invocation that adds no metric; that is noise here.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    started = time.perf_counter()
    result = scenarios.run(
        args.scenario, control_planes=args.control_planes, workers=args.workers, seed=args.seed
    )
    wall = time.perf_counter() - started
    try:
        report = result.report
        if args.scenario == "chaos":
            chaos.with_faults(report, result.twin)
        operator_runs = [run_operator_command(result.twin, command) for command in args.then]
        if args.html:
            _write_html(args.html, result.twin, report)
        if args.json:
            if args.then:
                report["operator"] = operator_runs
            sys.stdout.write(json.dumps(report, indent=2) + "\n")
        else:
            if not args.summary:
                _print_timeline(result.twin)
                _print_nodes(report)
            _print_summary(report, wall)
            if args.summary:
                _print_reconciler_tick(result.twin)
            _print_operator_runs(operator_runs)
    finally:
        result.twin.close()
    return 0 if all(inv["ok"] for inv in report["invariants"].values()) else 1


def run_operator_command(twin: Any, command: str) -> dict[str, Any]:
    """`kcluster <command> --cluster <the twin's cluster>` with the operator's credentials, in this
    process, against the settled world: the same code and calls as against AWS."""
    import io

    from kcluster_cli.main import run

    session = twin.operator_session()
    argv = [*shlex.split(command), "--cluster", twin.cluster]
    output, errors = io.StringIO(), io.StringIO()
    twin.recorder.note("operator", f"kcluster {command}")
    with twin.operator(), contextlib.redirect_stderr(errors):
        try:
            exit_code = run(argv, session=session, stdout=output)
        except SystemExit as stop:  # argparse refusing the command line
            exit_code = int(stop.code or 0)
    return {
        "command": command,
        "exit_code": exit_code,
        "output": output.getvalue(),
        "stderr": errors.getvalue(),
    }


def _write_html(path: str, twin: Any, report: dict[str, Any]) -> None:
    from pathlib import Path

    from twin import html

    Path(path).write_text(html.render(twin, report), encoding="utf-8")
    print(f"wrote {path}", file=sys.stderr)


def _print_operator_runs(runs: list[dict[str, Any]]) -> None:
    for run in runs:
        print(f"\n$ kcluster {run['command']}   # exit {run['exit_code']}")
        sys.stdout.write(run["output"])
        sys.stderr.write(run["stderr"])


def _chaos(args: argparse.Namespace) -> int:
    seeds = range(args.first_seed, args.first_seed + args.seeds)

    def progress(outcome: chaos.SeedOutcome) -> None:
        if not args.json:
            verdict = "ok" if not outcome.violations else "FAIL " + ", ".join(outcome.violations)
            print(f"  seed {outcome.seed:>6}: {verdict} ({outcome.wall_seconds:.1f} s)", flush=True)

    summary = chaos.run_many(
        seeds,
        control_planes=args.control_planes,
        workers=args.workers,
        processes=min(args.processes, args.seeds),
        progress=progress,
    )
    if args.json:
        sys.stdout.write(json.dumps(summary.as_dict(), indent=2) + "\n")
    else:
        print(format_chaos_summary(summary))
    return 1 if summary.failed_seeds else 0


def format_chaos_summary(summary: chaos.ChaosSummary) -> str:
    seeds = summary.seeds
    lines = [
        f"chaos: {len(seeds)} seeds ({min(seeds)}..{max(seeds)}), {summary.control_planes} control planes "
        f"+ {summary.workers} workers, {summary.wall_seconds:.0f} s wall clock",
        "",
        f"  {'FAULT INJECTED':<34}{'COUNT':>8}",
    ]
    lines += [f"  {kind:<34}{count:>8}" for kind, count in summary.faults.items()]
    lines += ["", f"  {'INVARIANT VIOLATED':<34}{'SEEDS':>8}"]
    violations = summary.violations
    names = summary.checked + sorted(name for name in violations if name not in summary.checked)
    lines += [f"  {name:<34}{len(violations.get(name, [])):>8}" for name in names]
    lines.append("")
    if not summary.failed_seeds:
        lines.append(f"every invariant held for all {len(seeds)} seeds")
    else:
        lines.append(f"FAILED: {len(summary.failed_seeds)} of {len(seeds)} seeds; replay with:")
        for outcome in summary.outcomes:
            if outcome.violations:
                lines.append(
                    f"  kcluster simulate --scenario chaos --seed {outcome.seed} "
                    f"--control-planes {summary.control_planes} --workers {summary.workers}"
                    f"   # {', '.join(outcome.violations)}"
                )
    return "\n".join(lines)


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
        if entry.kind not in _SHOWN_KINDS:
            continue
        text = entry.text
        if entry.kind == "ssm" and f"-{contract.DOC_HEALTH} " in text + " ":
            continue  # the minute-by-minute health probe: its findings show as alarms
        if entry.kind == "alarm":
            if "INSUFFICIENT_DATA -> OK" in text:
                continue  # every alarm's first evaluation: nothing happened
            text = text.split(" (", 1)[0]  # the state change; its full reason is in the report's events
        print(f"  [{_clock(entry.at - twin.start_time)}] {entry.kind:<8} {text}")
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
    iam = report["iam"]
    unused = ", ".join(iam["unused_statements"]) or "none"
    print(
        f"IAM: {iam['calls']} calls authorized against the callers' policies, {iam['denied']} denied; "
        f"statements nothing needs: {unused} ({len(iam['exercised_elsewhere'])} not needed by this run, "
        "each needed by another run of tests/e2e/test_iam_coverage.py)"
    )
    for name, invariant in report["invariants"].items():
        print(f"  {'ok  ' if invariant['ok'] else 'FAIL'} {name}: {invariant['detail']}")


def _print_reconciler_tick(twin) -> None:
    """One more reconciler tick on the settled world: the AWS calls it makes and its wall-clock time
    here (moto in-process, so the time is an upper bound on the decision work, not AWS's latency)."""
    before = dict(twin.recorder.api_calls)
    event = {"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}
    started = time.perf_counter()
    twin.functions.invoke("ReconcilerFunction", event)
    wall = time.perf_counter() - started
    calls = {k: v - before.get(k, 0) for k, v in twin.recorder.api_calls.items() if v != before.get(k, 0)}
    nodes = len(twin.instances())
    print(
        f"one reconciler tick on {nodes} instances: {sum(calls.values())} AWS calls "
        f"({', '.join(f'{k} {v}' for k, v in sorted(calls.items()))}), {wall:.2f} s wall clock"
    )


if __name__ == "__main__":
    raise SystemExit(main())
