"""The backups a bucket holds, from its object listing alone (keys, sizes): pure, for the operator's
`kcluster backups list` and for the decision of which backup a new first control plane restores.

The backup document (terraform/documents/backup.sh) writes <tier>/<backup id>/etcd.db and pki.tar,
then manifest.json, and only after the snapshot passed its checks (SHA-256 trailer, `etcdutl snapshot
status`): a backup is *checked* when all three objects are there. The listing is all a reader needs and
all most may have: the bucket's policy lets only control planes read an object, anyone allowed list it.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

FREQUENT, DAILY = "frequent", "daily"
TIERS = (FREQUENT, DAILY)
SNAPSHOT, PKI, MANIFEST = "etcd.db", "pki.tar", "manifest.json"
PARTS = (SNAPSHOT, PKI, MANIFEST)
ID_FORMAT = "%Y%m%dT%H%M%SZ"
_KEY = re.compile(rf"^(?P<tier>{'|'.join(TIERS)})/(?P<id>[0-9]{{8}}T[0-9]{{6}}Z)/(?P<part>[A-Za-z0-9._-]+)$")


@dataclass(frozen=True)
class Backup:
    """One <tier>/<backup id>/ prefix: when the control loop asked for it, what it holds."""

    tier: str
    backup_id: str
    taken_at: float
    # part name -> size in bytes, for the objects of this backup that exist
    parts: Mapping[str, int] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.tier}/{self.backup_id}/"

    @property
    def snapshot_size(self) -> int | None:
        return self.parts.get(SNAPSHOT)

    @property
    def checked(self) -> bool:
        """Whole and checked: the manifest is written last, only after the snapshot passed its checks."""
        return all(part in self.parts for part in PARTS)

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(part for part in PARTS if part not in self.parts)

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "key": self.key,
            "tier": self.tier,
            "backup_id": self.backup_id,
            "taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.taken_at)),
            "age_seconds": round(now - self.taken_at),
            "size_bytes": self.snapshot_size,
            "checked": self.checked,
            "missing": list(self.missing),
        }


def taken_at(backup_id: str) -> float:
    """The UTC time a backup id names (the control loop's request time); ValueError when it names none."""
    return float(calendar.timegm(time.strptime(backup_id, ID_FORMAT)))


def catalog(objects: Iterable[Mapping[str, Any]]) -> list[Backup]:
    """The backups among ListObjectsV2 `Contents` entries (Key, Size), newest first; for the same
    moment, the daily copy before the frequent one. Keys of any other shape are not backups: skipped."""
    found: dict[tuple[str, str], dict[str, int]] = {}
    for item in objects:
        match = _KEY.match(str(item.get("Key", "")))
        if match is None:
            continue
        try:
            taken_at(match["id"])
        except ValueError:
            continue  # digits in the right places, but no real date (month 13)
        found.setdefault((match["tier"], match["id"]), {})[match["part"]] = int(item.get("Size", 0))
    backups = [
        Backup(tier, backup_id, taken_at(backup_id), parts) for (tier, backup_id), parts in found.items()
    ]
    return sorted(backups, key=lambda b: (b.taken_at, TIERS.index(b.tier)), reverse=True)


def newest_checked(backups: Iterable[Backup]) -> Backup | None:
    """The newest whole, checked backup of a catalog (newest first), None when there is none."""
    return next((backup for backup in backups if backup.checked), None)
