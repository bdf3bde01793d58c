"""`kcluster simulate --html`: the swimlanes derived from a run's timeline (pure), and the page as headless
Chromium shows it once its script has run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from twin import html

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

T0 = 1_767_225_600.0


def entry(at: float, kind: str, text: str) -> SimpleNamespace:
    return SimpleNamespace(at=T0 + at, kind=kind, text=text)


def test_a_lane_goes_through_every_phase_in_order_and_a_stopped_kubelet_shows_notready():
    # GIVEN a worker's whole life as the twin's timeline records it
    timeline = [
        entry(0, "asg", "i-0000000000000000a launched into kcluster-demo-workers (us-east-1a)"),
        entry(60, "ssm", "ssm agent online on i-0000000000000000a"),
        entry(90, "ssm", "SendCommand kcluster-demo-health to i-0000000000000000c (11111111)"),
        entry(120, "ssm", "SendCommand kcluster-demo-join-worker to i-0000000000000000a (22222222)"),
        entry(150, "asg", "i-0000000000000000a InService in kcluster-demo-workers"),
        entry(300, "asg", "i-0000000000000000a Terminating (operator)"),
        entry(360, "asg", "i-0000000000000000a Terminated, left kcluster-demo-workers"),
        entry(200, "operator", "fault: kubelet stops on worker i-0000000000000000a"),
        entry(210, "alarm", "alarm kcluster-demo-remediate-nodes-not-ready: OK -> ALARM (3 datapoints)"),
        entry(20, "alarm", "alarm kcluster-demo-remediate-nodes-not-ready: INSUFFICIENT_DATA -> OK (first)"),
    ]
    history = [
        SimpleNamespace(time=T0 + 200, operation="kubelet-stopped", instance_id="i-0000000000000000a"),
        SimpleNamespace(time=T0 + 250, operation="kubelet-started", instance_id="i-0000000000000000a"),
    ]
    # WHEN its lanes and marks are derived
    (lane,) = html.lanes(timeline, history, T0 + 400)
    # THEN the lane has each phase once, in order, each until the next begins
    assert [(phase, begin - T0, end - T0) for phase, begin, end in lane.segments(T0 + 400)] == [
        ("launching", 0, 60),
        ("provisioning", 60, 120),
        ("joining", 120, 150),
        ("Ready", 150, 300),
        ("leaving", 300, 360),
        ("gone", 360, 400),
    ]
    assert lane.not_ready == [(T0 + 200, T0 + 250)]
    # AND the marks are the join command, the alarm's real change and the operator's action (not the
    # health probe, not an alarm's first evaluation)
    assert [(m.kind, m.text) for m in html.marks(timeline)] == [
        ("command", "SendCommand kcluster-demo-join-worker to i-0000000000000000a (22222222)"),
        ("operator", "fault: kubelet stops on worker i-0000000000000000a"),
        ("alarm", "alarm kcluster-demo-remediate-nodes-not-ready: OK -> ALARM"),
    ]


def chromium() -> str:
    found = shutil.which("chromium")
    assert found, "Debian's chromium is missing: run `make sysdeps`"
    return found


def headless(page: Path, tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",  # root in a container has no user namespace for the sandbox
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            *arguments,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_the_page_of_a_run_shows_a_lane_per_node_and_the_invariants_in_chromium(settled, tmp_path):
    # GIVEN the page of a settled scale-out (one control plane, two workers)
    twin, report = settled.twin, settled.report
    page = tmp_path / "run.html"
    page.write_text(html.render(twin, report), encoding="utf-8")
    text = page.read_text()
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")  # nothing fetched
    assert "https://" not in text
    # WHEN headless Chromium loads it and runs its script
    dom = headless(page, tmp_path, "--dump-dom").stdout
    # THEN every node has a lane that ends Ready, the counts the script fills in are there
    for node in report["nodes"]:
        lane = dom.split(f'data-instance="{node["instance_id"]}"', 1)[1].split("</g>", 1)[0]
        assert 'class="phase Ready"' in lane and node["role"] in lane
    assert dom.count('class="lane"') == len(report["nodes"])
    assert '<b data-count="Ready">(3)</b>' in dom
    # AND the invariants, all held, with the verdict the script wrote
    assert f"all {len(report['invariants'])} held" in dom
    for name in report["invariants"]:
        assert f'data-name="{name}"' in dom
    # AND it renders to a picture
    shot = tmp_path / "run.png"
    headless(page, tmp_path, "--window-size=1300,700", f"--screenshot={shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
