"""checkov on terraform/: no failed check, and every skipped one says why, inline."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from twin.terraform.hcl import REPO_ROOT, TERRAFORM_DIR

# The Makefile's tool environment; CHECKOV overrides it (e.g. a checkov installed elsewhere).
CHECKOV = Path(os.environ.get("CHECKOV", REPO_ROOT / ".tools" / "checkov" / "bin" / "checkov"))
INLINE_SKIP = re.compile(r"#\s*checkov:skip=(CKV2?_[A-Z0-9_]+)(?::(.*))?")


@pytest.fixture(scope="module")
def checkov_reports() -> list[dict]:
    # A missing checkov is a broken check, not a passed one: fail, do not skip.
    assert CHECKOV.exists(), f"checkov not found at {CHECKOV}: run `make tools` or set CHECKOV"
    completed = subprocess.run(
        [
            str(CHECKOV),
            "--directory",
            str(TERRAFORM_DIR),
            "--framework",
            "terraform",
            "--quiet",
            "--compact",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    # Exit status 1 means failed checks; anything above is checkov itself failing.
    assert completed.returncode in (0, 1), completed.stderr[-2000:]
    reports = json.loads(completed.stdout)
    return reports if isinstance(reports, list) else [reports]


def test_checkov_scanned_the_module(checkov_reports: list[dict]):
    summary = checkov_reports[0]["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] >= 20
    assert summary["passed"] > 50


def test_checkov_reports_no_failed_check(checkov_reports: list[dict]):
    failed = [
        f"{check['check_id']} {check['resource']} ({check['file_path']}): {check['check_name']}"
        for report in checkov_reports
        for check in report["results"].get("failed_checks", [])
    ]
    assert failed == []


def test_every_skipped_check_is_skipped_inline_with_a_reason(checkov_reports: list[dict]):
    skips = [
        (path.name, match.group(1), (match.group(2) or "").strip())
        for path in TERRAFORM_DIR.rglob("*.tf")
        for match in INLINE_SKIP.finditer(path.read_text())
    ]
    assert [skip for skip in skips if len(skip[2]) < 20] == [], "an inline skip must say why"
    # --quiet leaves skipped checks out of the results but counts them; each skip covers one resource.
    assert checkov_reports[0]["summary"]["skipped"] == len(skips)
    # No configuration file may skip checks behind the inline comments' back.
    for directory in (REPO_ROOT, TERRAFORM_DIR):
        assert not list(directory.glob(".checkov.y*ml")), f"checkov config file in {directory}"
