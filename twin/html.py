"""`kcluster simulate ... --html FILE`: one self-contained page of a twin run, for people who would rather
look than read: a swimlane per instance (launching, provisioning, joining, Ready, leaving, gone), the
commands, alarms, faults and operator actions on the same time axis, and the invariants.

Pure SVG and inline CSS, with a few lines of inline script for the legend's counts and hover details: no
network, no library. Everything is derived from the twin's own record of the run (its timeline and the
Kubernetes model's history), the same words `simulate` prints.

The phases of a lane: launching (EC2 launched it) until its SSM agent is online; provisioning (user data)
until the control loop sends it init or a join; joining until Auto Scaling puts it InService (its launch
hook completed); Ready while InService (the run's invariants check every InService instance is a Ready
Node); leaving from Terminating until terminated; gone after. A kubelet stopped by a fault shows as
NotReady over whatever phase the lane is in.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kcluster import contract

_INSTANCE = re.compile(r"\bi-[0-9a-f]{8,17}\b")
PHASES = ("launching", "provisioning", "joining", "Ready", "leaving", "gone")
_COLOURS = {
    "launching": "#c7d2fe",
    "provisioning": "#a5b4fc",
    "joining": "#fcd34d",
    "Ready": "#34d399",
    "leaving": "#fb923c",
    "gone": "#e5e7eb",
    "NotReady": "#ef4444",
}
_MARK_KINDS = ("command", "alarm", "fault", "operator")
_MARK_COLOURS = {"command": "#2563eb", "alarm": "#dc2626", "fault": "#7c3aed", "operator": "#111827"}
_JOIN_DOCUMENTS = (contract.DOC_INIT, contract.DOC_JOIN_CONTROL_PLANE, contract.DOC_JOIN_WORKER)


@dataclass
class Lane:
    instance_id: str
    group: str = ""
    role: str = ""
    marks: dict[str, float] = field(default_factory=dict)  # phase -> when it started (first time)
    not_ready: list[tuple[float, float]] = field(default_factory=list)

    def segments(self, end: float) -> list[tuple[str, float, float]]:
        starts = sorted((at, phase) for phase, at in self.marks.items())
        return [
            (phase, at, starts[index + 1][0] if index + 1 < len(starts) else end)
            for index, (at, phase) in enumerate(starts)
        ]


@dataclass(frozen=True)
class Mark:
    at: float
    kind: str  # command | alarm | fault | operator
    text: str


def lanes(entries: Iterable[Any], history: Iterable[Any], end: float) -> list[Lane]:
    """One lane per instance the run launched, from the timeline (asg and ssm notes)."""
    found: dict[str, Lane] = {}
    for entry in entries:
        _place(found, entry.kind, entry.text, entry.at)
    _not_ready(found, history, end)
    return sorted(found.values(), key=lambda lane: (lane.marks.get("launching", 0.0), lane.instance_id))


def _place(found: dict[str, Lane], kind: str, text: str, at: float) -> None:
    if kind == "asg":
        launched = re.match(r"(i-[0-9a-f]+) launched into (\S+)", text)
        if launched:
            found.setdefault(launched[1], Lane(launched[1], launched[2])).marks.setdefault("launching", at)
            return
        iid = text.split(" ", 1)[0]
        lane = found.get(iid)
        if lane is None:
            return
        if " InService in " in text:
            lane.marks.setdefault("Ready", at)
        elif " Terminating" in text:
            lane.marks.setdefault("leaving", at)
        elif " Terminated" in text or text.endswith(" crashed"):
            lane.marks.setdefault("gone", at)
    elif kind == "ssm":
        online = re.match(r"ssm agent online on (i-[0-9a-f]+)", text)
        if online and online[1] in found:
            found[online[1]].marks.setdefault("provisioning", at)
        elif text.startswith("SendCommand ") and _document_key(text) in _JOIN_DOCUMENTS:
            for iid in _INSTANCE.findall(text.split(" to ", 1)[1]):
                if iid in found:
                    found[iid].marks.setdefault("joining", at)


def _document_key(send_text: str) -> str:
    name = send_text.split(" ", 2)[1]
    return next((key for key in contract.DOCUMENT_KEYS if name.endswith(f"-{key}")), name)


def _not_ready(found: dict[str, Lane], history: Iterable[Any], end: float) -> None:
    stopped: dict[str, float] = {}
    for entry in history:
        if entry.instance_id not in found:
            continue
        if entry.operation == "kubelet-stopped":
            stopped.setdefault(entry.instance_id, entry.time)
        elif (
            entry.operation in ("kubelet-started", "kubelet-restart", "host-removed")
            and entry.instance_id in stopped
        ):
            found[entry.instance_id].not_ready.append((stopped.pop(entry.instance_id), entry.time))
    for iid, since in stopped.items():
        found[iid].not_ready.append((since, end))


def marks(entries: Iterable[Any]) -> list[Mark]:
    """The commands, alarms, faults and operator actions, as `simulate` shows them on its timeline."""
    shown = []
    for entry in entries:
        text = entry.text
        if (
            entry.kind == "ssm"
            and text.startswith("SendCommand ")
            and _document_key(text) != contract.DOC_HEALTH
        ):
            shown.append(Mark(entry.at, "command", text))
        elif entry.kind == "alarm" and "INSUFFICIENT_DATA -> OK" not in text and " -> " in text:
            shown.append(Mark(entry.at, "alarm", text.split(" (", 1)[0]))
        elif entry.kind in ("fault", "operator"):
            shown.append(Mark(entry.at, entry.kind, text))
    return shown


# ----------------------------------------------------------------------------------------- the page

_LEFT = 230
_WIDTH = 1000
_LANE = 20
_TOP = 30


def page(
    title: str, lanes_: list[Lane], marks_: list[Mark], report: dict[str, Any], start: float, end: float
) -> str:
    span = max(end - start, 1.0)

    def x(at: float) -> float:
        return round(_LEFT + (min(max(at, start), end) - start) / span * _WIDTH, 1)

    rows = [_lane_svg(index, lane, x, start, end) for index, lane in enumerate(lanes_)]
    mark_top = _TOP + len(lanes_) * _LANE + 20
    mark_rows = [
        _marks_svg(row, kind, [m for m in marks_ if m.kind == kind], x, mark_top)
        for row, kind in enumerate(_MARK_KINDS)
    ]
    height = mark_top + len(_MARK_KINDS) * _LANE + 30
    svg = (
        f'<svg id="swimlanes" xmlns="http://www.w3.org/2000/svg" '
        f'width="{_LEFT + _WIDTH + 20}" height="{height}" '
        f'font-family="sans-serif" font-size="11">'
        + _axis(x, start, end, height)
        + "".join(rows)
        + "".join(mark_rows)
        + "</svg>"
    )
    return _TEMPLATE.format(
        title=html.escape(title),
        legend=_legend(),
        svg=svg,
        invariants=_invariants(report),
        summary=html.escape(_summary(report)),
        data=json.dumps({"lanes": len(lanes_), "marks": len(marks_)}),
    )


def _lane_svg(index: int, lane: Lane, x: Any, start: float, end: float) -> str:
    y = _TOP + index * _LANE
    parts = [
        f'<g class="lane" data-instance="{lane.instance_id}" data-group="{html.escape(lane.group)}">',
        f'<text x="4" y="{y + 14}">{lane.instance_id} {html.escape(lane.role)}</text>',
    ]
    for phase, begin, until in lane.segments(end):
        title = f"{lane.instance_id} {phase} from {_mmss(begin - start)} to {_mmss(until - start)}"
        parts.append(_rect(phase, x(begin), y + 3, max(x(until) - x(begin), 1.0), _LANE - 6, title))
    for begin, until in lane.not_ready:
        title = f"{lane.instance_id} NotReady (kubelet stopped) from {_mmss(begin - start)}"
        parts.append(_rect("NotReady", x(begin), y + 7, max(x(until) - x(begin), 2.0), _LANE - 14, title))
    parts.append("</g>")
    return "".join(parts)


def _rect(phase: str, left: float, top: float, width: float, height: float, title: str) -> str:
    return (
        f'<rect class="phase {phase}" x="{left}" y="{top}" width="{width:.1f}" height="{height}" '
        f'fill="{_COLOURS[phase]}"><title>{html.escape(title)}</title></rect>'
    )


def _marks_svg(row: int, kind: str, shown: list[Mark], x: Any, top: float) -> str:
    y = top + row * _LANE
    parts = [
        f'<g class="marks" data-kind="{kind}"><text x="4" y="{y + 14}" font-weight="bold">{kind}s</text>'
    ]
    for mark in shown:
        at = x(mark.at)
        parts.append(
            f'<line class="mark {kind}" x1="{at}" x2="{at}" y1="{y + 2}" y2="{y + _LANE - 2}" '
            f'stroke="{_MARK_COLOURS[kind]}" stroke-width="3"><title>{html.escape(mark.text)}</title></line>'
        )
    parts.append("</g>")
    return "".join(parts)


def _axis(x: Any, start: float, end: float, height: float) -> str:
    span = end - start
    step = next((s for s in (30, 60, 120, 300, 600, 1800, 3600) if span / s <= 12), 7200)
    ticks = []
    at = 0.0
    while at <= span:
        left = x(start + at)
        ticks.append(
            f'<line x1="{left}" x2="{left}" y1="{_TOP - 8}" y2="{height - 20}" stroke="#e5e7eb"/>'
            f'<text class="tick" x="{left}" y="{_TOP - 12}" text-anchor="middle">{_mmss(at)}</text>'
        )
        at += step
    return "".join(ticks)


def _mmss(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes:02d}:{rest:02d}"


def _legend() -> str:
    items = [*PHASES, "NotReady"]
    return "".join(
        f'<span class="key"><i style="background:{_COLOURS[p]}"></i>{p} <b data-count="{p}"></b></span>'
        for p in items
    )


def _invariants(report: dict[str, Any]) -> str:
    rows = []
    for name, invariant in report.get("invariants", {}).items():
        verdict = "ok" if invariant["ok"] else "FAIL"
        rows.append(
            f'<tr class="invariant {verdict}" data-name="{html.escape(name)}"><td>{verdict}</td>'
            f"<td>{html.escape(name)}</td><td>{html.escape(str(invariant['detail']))}</td></tr>"
        )
    return "".join(rows)


def _summary(report: dict[str, Any]) -> str:
    counters = ", ".join(f"{k}={v}" for k, v in report.get("counters", {}).items())
    return (
        f"scenario {report.get('scenario')}, seed {report.get('seed')}: "
        f"{report.get('virtual_seconds', 0):.0f} virtual seconds; {counters}"
    )


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 16px; color: #111827; }}
h1 {{ font-size: 18px; }} h2 {{ font-size: 15px; margin-top: 20px; }}
#summary {{ font-size: 12px; color: #374151; max-width: 1200px; }}
.key {{ margin-right: 14px; font-size: 12px; }}
.key i {{ display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: middle; }}
table {{ border-collapse: collapse; font-size: 12px; }}
td {{ padding: 2px 8px; border-bottom: 1px solid #e5e7eb; }}
tr.ok td:first-child {{ color: #047857; font-weight: bold; }}
tr.FAIL td:first-child {{ color: #b91c1c; font-weight: bold; }}
#detail {{ font-size: 12px; min-height: 16px; color: #374151; }}
</style></head>
<body>
<h1>{title}</h1>
<p id="summary">{summary}</p>
<div id="legend">{legend}</div>
<p id="detail">hover a bar or a mark for what happened</p>
{svg}
<h2>Invariants <span id="verdict"></span></h2>
<table id="invariants">{invariants}</table>
<script>
(function () {{
  var data = {data};
  document.querySelectorAll("[data-count]").forEach(function (cell) {{
    var phase = cell.getAttribute("data-count");
    cell.textContent = "(" + document.querySelectorAll("rect.phase." + phase).length + ")";
  }});
  var failed = document.querySelectorAll("tr.invariant.FAIL").length;
  var verdict = document.getElementById("verdict");
  var all = document.querySelectorAll("tr.invariant").length;
  verdict.textContent = failed ? failed + " failed" : "all " + all + " held";
  verdict.setAttribute("data-lanes", data.lanes);
  var detail = document.getElementById("detail");
  document.querySelectorAll("svg title").forEach(function (title) {{
    title.parentNode.addEventListener("mouseover", function () {{ detail.textContent = title.textContent; }});
  }});
}})();
</script>
</body></html>
"""


def render(twin: Any, report: dict[str, Any]) -> str:
    """The page of a finished run of `twin` whose report is `report`."""
    timeline = list(twin.recorder.timeline)
    start = twin.start_time
    end = max([twin.clock.now(), *(entry.at for entry in timeline)])
    title = f"kcluster twin: {report.get('scenario')} (seed {report.get('seed')})"
    found = lanes(timeline, twin.model.history, end)
    for lane in found:
        lane.role = twin.deployment.config.role_of(lane.group) or ""
    return page(title, found, marks(timeline), report, start, end)
