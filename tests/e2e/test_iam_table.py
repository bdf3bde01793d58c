"""README's who-can-do-what table is generated from the policies the twin enforces: it must be current."""

from __future__ import annotations

from pathlib import Path

from twin.cli import iam_table
from twin.iam import table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_iam_table_is_what_the_deployed_policies_say():
    text = README.read_text()
    start, end = text.index(table.BEGIN), text.index(table.END) + len(table.END)
    assert text[start:end] == iam_table(), "run `.venv/bin/kcluster iam-table` and paste it into README.md"
