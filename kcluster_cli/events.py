"""`kcluster events`: what the control loop decided and did, oldest first.

Read from where the functions already write: their structured Powertools logs, one JSON object per log
event in /aws/lambda/<function>, through FilterLogEvents. Chosen over a history in the state table because
every decision is already logged there with its fields (nothing new on the hot path: another write per
decision would cost a DynamoDB write and contend with the decisions themselves), CloudWatch Logs keeps it
as long as the log group's retention says, and FilterLogEvents bounds the read by time. The price: an
event shows once Lambda has delivered its log line (seconds), and lines without JSON are skipped.

Each decision is said in the twin's timeline's words where there is one (SendCommand ... to ...,
lifecycle action completed, SetInstanceHealth), else as the function logged it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kcluster import contract
from kcluster_cli.aws import Cluster, aws_errors, paginate
from kcluster_cli.control_loop import FUNCTION_ROLES, ControlLoop

# The health probe goes out every minute, for ever: its findings show as alarms and in `kcluster status`.
_ROUTINE = {f"sent {contract.DOC_HEALTH}"}
_DETAIL_FIELDS = ("role", "phase", "state", "error", "reason", "last_error", "subject")


@dataclass(frozen=True)
class ControlLoopEvent:
    at: float
    function: str  # reactor, reconciler, remediator
    level: str
    text: str
    fields: dict[str, Any]

    @property
    def instances(self) -> list[str]:
        """The instances the decision is about: its subject, a command's targets and the nodes it is for."""
        found = {str(self.fields["instance_id"])} if self.fields.get("instance_id") else set()
        for key in ("targets", "for_instances"):
            found.update(str(value) for value in self.fields.get(key) or ())
        return sorted(found)

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": _iso(self.at),
            "function": self.function,
            "level": self.level,
            "text": self.text,
            "instances": self.instances,
        }


def read(cluster: Cluster, loop: ControlLoop, since_seconds: float, now: float) -> list[ControlLoopEvent]:
    logs = cluster.client("logs")
    names = _document_names(cluster)
    found: list[ControlLoopEvent] = []
    for role in FUNCTION_ROLES:
        group = loop.log_group(role)
        with aws_errors(f"reading {group}"):
            try:
                for event in paginate(
                    logs,
                    "filter_log_events",
                    "events",
                    logGroupName=group,
                    startTime=int((now - since_seconds) * 1000),
                    endTime=int(now * 1000) + 1,
                ):
                    parsed = parse(role, event["timestamp"] / 1000, event["message"], names)
                    if parsed is not None:
                        found.append(parsed)
            except logs.exceptions.ResourceNotFoundException:
                continue  # never invoked yet: Lambda makes the group with the first line
    return sorted(found, key=lambda event: event.at)


def _document_names(cluster: Cluster) -> Callable[[str], str]:
    """The document's name as SSM shows it (the functions log the document's key)."""

    def name(key: str) -> str:
        try:
            return cluster.config.documents.by_key(key)
        except (KeyError, AttributeError):
            return key

    return name


def parse(
    function: str, at: float, message: str, document_name: Callable[[str], str] = str
) -> ControlLoopEvent | None:
    """One log line as a decision, or None for what is not one (metrics, platform lines, routine)."""
    try:
        line = json.loads(message)
    except ValueError:
        return None
    if not isinstance(line, dict) or "_aws" in line:
        return None
    if "errorMessage" in line:  # the Lambda runtime's line for an unhandled error
        return ControlLoopEvent(
            at, function, "ERROR", f"failed: {line.get('errorType')}: {line['errorMessage']}", {}
        )
    text = str(line.get("message", ""))
    if not text or text in _ROUTINE:
        return None
    fields = {k: v for k, v in line.items() if k not in _POWERTOOLS_KEYS}
    said = phrase(text, fields, document_name)
    return ControlLoopEvent(at, function, str(line.get("level", "INFO")), said, fields)


_POWERTOOLS_KEYS = {
    "level",
    "location",
    "message",
    "timestamp",
    "service",
    "cold_start",
    "function_name",
    "function_memory_size",
    "function_arn",
    "function_request_id",
    "correlation_id",
    "xray_trace_id",
    "exception",
    "exception_name",
    "stack_trace",
}


def phrase(message: str, fields: dict[str, Any], document_name: Callable[[str], str] = str) -> str:
    if message.startswith("sent "):
        targets = ", ".join(fields.get("targets") or [])
        command = str(fields.get("command_id", ""))[:8]
        return f"SendCommand {document_name(message.removeprefix('sent '))} to {targets} ({command})"
    for prefix, say in _PHRASES:
        if message.startswith(prefix):
            return say(message, fields)
    subject = fields.get("instance_id") or fields.get("alarm")
    details = ", ".join(f"{key} {fields[key]}" for key in _DETAIL_FIELDS if fields.get(key) not in (None, ""))
    text = f"{subject}: {message}" if subject else message
    return f"{text} ({details})" if details else text


def _sent(message: str, fields: dict[str, Any]) -> str:
    targets = ", ".join(fields.get("targets") or [])
    return (
        f"SendCommand {message.removeprefix('sent ')} to {targets} ({str(fields.get('command_id', ''))[:8]})"
    )


def _lifecycle(message: str, fields: dict[str, Any]) -> str:
    result = message.removeprefix("lifecycle action ")
    if ": " in result:  # "... : none was pending"
        result, why = result.split(": ", 1)
        return f"{fields.get('instance_id')} lifecycle action {result}: {why}"
    hook = fields.get("hook_name") or "lifecycle action"
    return f"{fields.get('instance_id')} {hook} completed: {result}"


def _unhealthy(message: str, fields: dict[str, Any]) -> str:
    return f"SetInstanceHealth Unhealthy {fields.get('instance_id')} ({fields.get('reason')})"


def _alarm(message: str, fields: dict[str, Any]) -> str:
    return f"alarm {fields.get('alarm')}: {fields.get('state')}"


def _notified(message: str, fields: dict[str, Any]) -> str:
    return f"{message}: {fields.get('subject')}"


_PHRASES: tuple[tuple[str, Callable[[str, dict[str, Any]], str]], ...] = (
    ("lifecycle action ", _lifecycle),
    ("instance marked unhealthy", _unhealthy),
    ("alarm state change", _alarm),
    ("people notified", _notified),
)


def select(events: list[ControlLoopEvent], node: str | None) -> Iterator[ControlLoopEvent]:
    return (event for event in events if node is None or node in event.instances)


def render(events: list[ControlLoopEvent]) -> str:
    return "".join(f"{_iso(e.at)}  {e.function:<10}  {e.level:<7}  {e.text}\n" for e in events)


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
