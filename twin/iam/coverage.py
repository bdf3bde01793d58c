"""Which exercise needs each Allow statement of kcluster's own policies.

tests/e2e/test_iam_coverage.py measures it (every allowed call re-evaluated without each statement that
allowed it) over the scenarios and the rare paths they do not reach, and fails unless needed_by.json
says exactly what it measured. A run's report can then tell a statement nothing needs (there must be
none) from one this run merely did not exercise (say, the dead-letter queue in a run where nothing
failed): the latter are listed with the exercises that need them.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

NEEDED_BY_PATH = Path(__file__).with_name("needed_by.json")


@cache
def needed_by() -> dict[str, tuple[str, ...]]:
    """statement ("<principal> <policy> <sid>") -> the exercises whose runs need it."""
    if not NEEDED_BY_PATH.exists():
        return {}
    return {statement: tuple(runs) for statement, runs in json.loads(NEEDED_BY_PATH.read_text()).items()}


def write(measured: dict[str, list[str]]) -> None:
    NEEDED_BY_PATH.write_text(json.dumps(dict(sorted(measured.items())), indent=1) + "\n")
    needed_by.cache_clear()
