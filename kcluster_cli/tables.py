"""kubectl-style tables: upper-case headers, columns padded and three spaces apart, `<none>` for nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kcluster_cli.durations import age


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [list(headers)] + [[_cell(value) for value in row] for row in rows]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    return "\n".join(
        "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "<none>"
    return str(value)


def status_text(status: dict[str, Any]) -> str:
    """The human view of `kcluster status -o json`."""
    loop = status["control_loop"]
    parts = [
        f"CLUSTER {status['cluster']} ({status['region']})",
        "",
        "NODE GROUPS",
        table(
            ("NAME", "ROLE", "MIN", "DESIRED", "MAX", "IN SERVICE", "PENDING", "LEAVING"),
            [
                (
                    g["name"],
                    g["role"],
                    g["min"],
                    g["desired"],
                    g["max"],
                    g["in_service"],
                    g["pending"],
                    g["leaving"],
                )
                for g in status["node_groups"]
            ],
        ),
        "",
        "NODES",
        table(
            ("INSTANCE", "NAME", "ROLE", "STATUS", "PHASE", "LIFECYCLE", "VERSION", "AGE"),
            [
                (
                    n["instance_id"],
                    n["node_name"],
                    n["role"],
                    n["ready"],
                    n["phase"],
                    n["lifecycle_state"],
                    n["kubernetes_version"],
                    age(n["age_seconds"]),
                )
                for n in status["nodes"]
            ],
        ),
        "",
        "CONTROL LOOP",
        table(("FIELD", "VALUE"), control_loop_rows(loop)),
        "",
    ]
    errors = status["validation_errors"]
    if errors:
        parts += [
            "VALIDATION ERRORS",
            table(("KIND", "NAME", "MESSAGE"), [(e["kind"], e["name"], e["message"]) for e in errors]),
            "",
        ]
        parts.append(f"Validation failed: cluster {status['cluster']} is not valid ({len(errors)} errors)")
    else:
        parts.append(f"Your cluster {status['cluster']} is ready")
    return "\n".join(parts) + "\n"


def control_loop_rows(loop: dict[str, Any]) -> list[tuple[str, str]]:
    health = loop["last_health_report"]
    lease = loop["lease_holder"]
    if lease:
        lease = f"{lease} (expires in {age(loop['lease_expires_in_seconds'])})"
    health_text = None
    if health:
        health_text = (
            f"{age(health['seconds_ago'])} ago on {health['taken_on']}: {health['ready_nodes']} Ready, "
            f"{health['not_ready_nodes']} NotReady, "
            f"etcd {health['etcd_healthy']}/{health['etcd_members']} healthy"
        )
    return [
        ("phase", loop["phase"]),
        ("epoch", loop["epoch"]),
        ("init owner", loop["init_owner"]),
        ("lease holder", lease),
        ("joins pending", loop["joins_pending"]),
        ("oldest pending action", _ago(loop["oldest_pending_action_seconds"], suffix="")),
        ("last reconcile", _ago(loop["last_reconcile_seconds_ago"])),
        ("last health report", health_text),
        ("alarms in ALARM", ", ".join(loop["alarms_in_alarm"]) or "none"),
        ("remediating", loop["remediating"] or "none"),
        ("last backup", loop["last_backup"] or "none"),
        ("rollout", loop["rollout"] or "none"),
    ]


def _ago(seconds: float | None, suffix: str = " ago") -> str | None:
    return None if seconds is None else f"{age(seconds)}{suffix}"
