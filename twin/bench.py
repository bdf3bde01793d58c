"""`make bench`: what kcluster costs as the cluster grows, and whether it still keeps every invariant.

    python -m twin.bench [--sizes 100,300,1000] [--large-sizes 1000] [--json FILE]
    python -m twin.bench --one SCENARIO WORKERS   (one run's figures as a JSON line; the above runs it)

For each size N a scale-out of 3 control planes + N workers; at the large sizes also scale-in and chaos.
Each run is its own process, so its wall time, CPU and peak memory are its own. The table gives:

* virtual time to converge against the critical path's limit: the init owner's boot and provisioning, its
  `kubeadm init`, then the serial control-plane joins (each with its refresh-join), or the slowest worker
  join once the cluster is initialized, whichever ends later, all as this run's draws made them (what no
  controller could beat; the difference is what the product's reactions cost);
* AWS calls of the functions per node, by operation;
* DynamoDB bytes read per event (an SQS batch's reads shared among its records), p50 and max;
* function CPU per event outside AWS calls (twin/costs.py), p50 and max;
* the twin's wall time, user+sys CPU and peak RSS.

It exits non-zero when any run breaks an invariant (or fails to settle).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

CONTROL_PLANES = 3
SEED = 1
DEFAULT_SIZES = (100, 300, 1000)
# Scale-in and chaos run at these sizes too (scale-out runs at every size).
DEFAULT_LARGE_SIZES = (1000,)


_COLD_START_ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "POWERTOOLS_SERVICE_NAME": "kcluster",
    "POWERTOOLS_TRACE_DISABLED": "true",
}
_BOTO3_FLOOR = (
    "import boto3\nfrom aws_lambda_powertools import Logger\nLogger()\n"
    "for service in ('dynamodb', 'ssm', 'autoscaling'):\n    boto3.client(service)\n"
)
COLD_STARTS = {
    "boto3 floor": _BOTO3_FLOOR,
    "parser floor": _BOTO3_FLOOR
    + "import aws_lambda_powertools.utilities.parser, aws_lambda_powertools.utilities.batch\n",
    "reactor": "import app\nfor client in (app.clients.dynamodb, app.clients.ssm, app.clients.autoscaling):\n"
    "    client.meta\n",
}


def cold_start_figures(repeats: int = 5) -> dict[str, float]:
    """CPU seconds (user+sys) of each cold start in COLD_STARTS, each in a fresh interpreter, taken in
    turn `repeats` times (the least of each: the machine is shared)."""
    root = Path(__file__).resolve().parents[1]
    environment = {
        **os.environ,
        **_COLD_START_ENVIRONMENT,
        "PYTHONPATH": os.pathsep.join([str(root / "layers/kcluster"), str(root / "functions/reactor")]),
    }
    figures: dict[str, list[float]] = {name: [] for name in COLD_STARTS}
    for _ in range(repeats):
        for name, code in COLD_STARTS.items():
            process = subprocess.Popen([sys.executable, "-c", code], env=environment)
            _, status, usage = os.wait4(process.pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                raise RuntimeError(f"cold start {name!r} failed")
            figures[name].append(usage.ru_utime + usage.ru_stime)
    return {name: min(values) for name, values in figures.items()}


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "max": 0.0}
    return {"p50": statistics.median(values), "max": max(values)}


def _provisioned_at(twin: Any) -> dict[str, float]:
    suffix = " provisioned (user data done)"
    return {
        entry.text.removesuffix(suffix): entry.at
        for entry in twin.recorder.timeline
        if entry.text.endswith(suffix)
    }


def critical_path_seconds(twin: Any) -> float | None:
    """The earliest any controller could have converged, given this run's boot, provisioning and
    command durations: init, then the control-plane joins one at a time, and every worker's join once
    the cluster is initialized and the worker provisioned."""
    invocations = [
        (command.key, invocation)
        for command in twin.runcommand.commands.values()
        for invocation in command.invocations.values()
        if invocation.status == "Success" and invocation.started_at is not None
    ]

    def duration(invocation: Any) -> float:
        return float(invocation.ended_at - invocation.started_at)

    inits = [inv for key, inv in invocations if key == "init"]
    if not inits:
        return None
    provisioned = _provisioned_at(twin)
    init = inits[0]
    initialized = provisioned.get(init.instance_id, init.started_at) + duration(init)
    refreshes = sorted((inv for key, inv in invocations if key == "refresh-join"), key=lambda i: i.ended_at)
    control_plane_chain = initialized
    for join in (inv for key, inv in invocations if key == "join-control-plane"):
        # Each control-plane join waits for the refresh-join that published its certificate key.
        before = [r for r in refreshes if r.ended_at <= join.started_at]
        control_plane_chain += duration(join) + (duration(before[-1]) if before else 0.0)
    worker_ends = [
        max(provisioned.get(inv.instance_id, initialized), initialized) + duration(inv)
        for key, inv in invocations
        if key == "join-worker"
    ]
    return max([control_plane_chain, *worker_ends]) - twin.start_time


def _per_event_costs(twin: Any, probe: Any) -> tuple[list[float], list[float], dict[str, int]]:
    """(DynamoDB bytes read per event, function CPU seconds per event, filtered reads by function)."""
    bytes_read: list[float] = []
    cpu: list[float] = []
    filtered: Counter[str] = Counter()
    for record in twin.functions.invocations:
        cost = probe.cost(record.request_id)
        events = max(1, record.events)
        bytes_read.append(cost.dynamodb_bytes_read / events)
        cpu.append(max(0.0, record.cpu_seconds - cost.aws_call_cpu_seconds) / events)
        filtered[record.function] += cost.filtered_reads
    return bytes_read, cpu, {k: v for k, v in filtered.items() if v}


def run_one(scenario: str, workers: int) -> dict[str, Any]:
    """One scenario run in this process: its figures (the twin closed)."""
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    from twin import costs, scenarios

    probe = costs.CostProbe()

    def prepare(twin: Any) -> None:
        twin.on_close(costs.install(probe))

    started = time.perf_counter()
    result = scenarios.run(
        scenario, control_planes=CONTROL_PLANES, workers=workers, seed=SEED, prepare=prepare
    )
    try:
        twin, report = result.twin, result.report
        nodes = CONTROL_PLANES + workers
        bytes_read, cpu, filtered = _per_event_costs(twin, probe)
        limit = critical_path_seconds(twin)
        return {
            "scenario": scenario,
            "control_planes": CONTROL_PLANES,
            "workers": workers,
            "seed": SEED,
            "virtual_seconds": report["virtual_seconds"],
            "critical_path_seconds": None if limit is None else round(limit, 1),
            "api_calls_per_node": {k: round(v / nodes, 2) for k, v in sorted(report["api_calls"].items())},
            "invocations": len(twin.functions.invocations),
            "dynamodb_bytes_per_event": _percentiles(bytes_read),
            "dynamodb_filtered_reads": filtered,
            "function_cpu_ms_per_event": {k: v * 1000 for k, v in _percentiles(cpu).items()},
            "run_seconds": round(time.perf_counter() - started, 1),
            "violations": {n: inv["detail"] for n, inv in report["invariants"].items() if not inv["ok"]},
        }
    finally:
        result.twin.close()


def _measured_run(scenario: str, workers: int) -> dict[str, Any]:
    """Runs `--one` in a child process: its figures plus its wall time, CPU and peak RSS."""
    command = [sys.executable, "-m", "twin.bench", "--one", scenario, str(workers)]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    output = process.stdout.read() if process.stdout else ""
    if process.stdout:
        process.stdout.close()
    lines = output.strip().splitlines()
    figures: dict[str, Any]
    if os.waitstatus_to_exitcode(status) != 0 or not lines:
        figures = {"scenario": scenario, "workers": workers, "violations": {"run": "the run failed"}}
    else:
        figures = json.loads(lines[-1])
    figures.update(
        wall_seconds=round(wall, 1),
        cpu_seconds=round(usage.ru_utime + usage.ru_stime, 1),
        peak_rss_mb=round(usage.ru_maxrss / 1024),
    )
    return figures


def format_table(runs: list[dict[str, Any]]) -> str:
    header = (
        "scenario", "N", "converge s", "limit s", "calls/node", "ddb B/event p50", "max",
        "cpu ms/event p50", "max", "wall s", "cpu s", "peak MB", "invariants",
    )  # fmt: skip
    rows = [header]
    for run in runs:
        calls = run.get("api_calls_per_node", {})
        rows.append(
            (
                run["scenario"],
                str(run["workers"]),
                f"{run.get('virtual_seconds', 0):.0f}",
                f"{run.get('critical_path_seconds') or 0:.0f}",
                f"{sum(calls.values()):.1f}",
                f"{run.get('dynamodb_bytes_per_event', {}).get('p50', 0):.0f}",
                f"{run.get('dynamodb_bytes_per_event', {}).get('max', 0):.0f}",
                f"{run.get('function_cpu_ms_per_event', {}).get('p50', 0):.1f}",
                f"{run.get('function_cpu_ms_per_event', {}).get('max', 0):.1f}",
                f"{run['wall_seconds']:.0f}",
                f"{run['cpu_seconds']:.0f}",
                str(run["peak_rss_mb"]),
                "ok" if not run.get("violations") else "FAIL: " + ", ".join(run["violations"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)


def format_calls(runs: list[dict[str, Any]]) -> str:
    """AWS calls per node by operation, one column per scale-out size."""
    scale_outs = [run for run in runs if run["scenario"] == "scale-out" and "api_calls_per_node" in run]
    operations = sorted({op for run in scale_outs for op in run["api_calls_per_node"]})
    lines = [
        "AWS calls per node by operation (scale-out): " + ", ".join(f"N={r['workers']}" for r in scale_outs)
    ]
    for operation in operations:
        values = "  ".join(f"{run['api_calls_per_node'].get(operation, 0):>7.2f}" for run in scale_outs)
        lines.append(f"  {operation:<48}{values}")
    return "\n".join(lines)


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m twin.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=_sizes, default=list(DEFAULT_SIZES), help="workers, e.g. 100,300,1000"
    )
    parser.add_argument("--large-sizes", type=_sizes, default=list(DEFAULT_LARGE_SIZES))
    parser.add_argument("--json", help="also write every run's figures to this file")
    parser.add_argument("--one", nargs=2, metavar=("SCENARIO", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]))))
        return 0
    plan = [("scale-out", n) for n in args.sizes]
    plan += [(scenario, n) for n in args.large_sizes for scenario in ("scale-in", "chaos")]
    runs = []
    for scenario, workers in plan:
        print(f"bench: {scenario} with {CONTROL_PLANES} + {workers} ...", file=sys.stderr, flush=True)
        runs.append(_measured_run(scenario, workers))
    print(format_table(runs))
    print()
    print(format_calls(runs))
    print()
    cold = cold_start_figures()
    print(
        "reactor cold start (CPU, least of 5): "
        + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in cold.items())
        + f"; {cold['reactor'] / cold['boto3 floor']:.2f}x the boto3 floor, "
        + f"{cold['reactor'] / cold['parser floor']:.2f}x the parser floor"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(runs, handle, indent=2)
    failed = [f"{run['scenario']} N={run['workers']}" for run in runs if run.get("violations")]
    if failed:
        print(f"bench: invariants broken in: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
