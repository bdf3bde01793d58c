"""The `backups_fresh` invariant: while the cluster is healthy, the newest good etcd backup is never older
than two backup intervals (what BackupTooOldAlarm tells people about).

Computed from the world, never from the product's BackupState: health is sampled after every step of the
world (etcd keeps quorum with at least one live member); good backups are the `backup` invocations Run
Command finished with Success and an ok result line. Each healthy stretch counts from its own start (a
new cluster, or one that just recovered, has had no chance to back up yet).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kcluster import contract

if TYPE_CHECKING:
    from twin.world import Twin

# Samples follow every step of the world (the reconciler ticks every minute); a longer silence is not a
# healthy stretch.
_SAMPLE_GAP_SECONDS = 120.0


@dataclass
class BackupWatch:
    # [start, end] of each stretch of virtual time the cluster was healthy
    healthy: list[list[float]] = field(default_factory=list)

    def sample(self, twin: Twin) -> None:
        members = twin.model.etcd_members()
        alive = [m for m in members if twin.model.host(m.instance_id).alive]
        if alive and sum(1 for m in members if m.healthy) >= len(members) // 2 + 1:
            self.saw_healthy(twin.clock.now())

    def saw_healthy(self, now: float) -> None:
        if self.healthy and self.healthy[-1][1] >= now - _SAMPLE_GAP_SECONDS:
            self.healthy[-1][1] = now
        else:
            self.healthy.append([now, now])

    def verdict(self, twin: Twin) -> tuple[bool, str]:
        config = twin.deployment.config
        if config.documents.backup is None or config.backup_bucket is None:
            return True, "backups are not configured"
        limit = 2 * config.backup.interval_seconds
        good = good_backup_times(twin)
        worst, worst_at = oldest_while_healthy(self.healthy, good)
        where = f" (at virtual t={worst_at - twin.start_time:.0f}s)" if worst_at is not None else ""
        return worst <= limit, (
            f"{len(good)} good backups; the newest was at most {worst:.0f}s old while healthy{where}, "
            f"limit {limit:.0f}s"
        )


def oldest_while_healthy(healthy: list[list[float]], good: list[float]) -> tuple[float, float | None]:
    """The greatest age the newest good backup reached while healthy, and when: looked at just before
    each good backup of a stretch and at the stretch's end; a stretch's start counts as a backup."""
    worst, worst_at = 0.0, None
    for start, end in healthy:
        for moment in [*(t for t in good if start < t <= end), end]:
            newest = max((t for t in good if t < moment), default=start)
            age = moment - max(newest, start)
            if age > worst:
                worst, worst_at = age, moment
    return worst, worst_at


def good_backup_times(twin: Twin) -> list[float]:
    """When each good backup ended: Run Command's own record of the `backup` document's invocations."""
    found = []
    for command in twin.runcommand.commands.values():
        if command.key != contract.DOC_BACKUP:
            continue
        for invocation in command.invocations.values():
            if invocation.status == "Success" and invocation.ended_at is not None and _ok(invocation.stdout):
                found.append(invocation.ended_at)
    return sorted(found)


def _ok(stdout: str) -> bool:
    lines = stdout.strip().splitlines()
    try:
        return bool(lines) and bool(json.loads(lines[-1]).get("ok"))
    except (ValueError, AttributeError):
        return False
