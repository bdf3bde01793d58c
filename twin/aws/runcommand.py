"""SSM Run Command, emulated on top of moto 5.2.1 (which marks every invocation Success at once).

What AWS does and the twin therefore does (../../docs/twin-design.md, DESIGN.md section 8):

* SendCommand: at most 50 instance ids (ValidationException), the document must exist
  (InvalidDocument), parameters are checked against the stored document (InvalidParameters: unknown,
  missing required, outside allowedValues, not matching allowedPattern), every instance's SSM
  agent must have registered (InvalidInstanceId, the whole call fails).
* One invocation per instance: Pending -> InProgress -> Success | Failed | TimedOut | Cancelled.
  It is not visible to GetCommandInvocation for about a second (InvocationDoesNotExist).
  The document's script really runs, through the node fleet's `run_script`, at the invocation's
  completion time (start + the latency model's run time for the document), with every parameter
  exported as SSM_<Name> (interpolationType ENV_VAR); its exit code decides Success/Failed and is
  the ResponseCode; a run longer than the execution timeout (the step's timeoutSeconds, else
  SendCommand's TimeoutSeconds) is TimedOut. Output is cut to 24,000 characters per stream, as
  GetCommandInvocation returns it (2,500 in ListCommandInvocations' plugin output).
* An instance that dies: running invocations Failed, never-started ones Failed/Undeliverable,
  its agent ConnectionLost.
* `EC2 Command Invocation Status-change Notification` (InProgress and the final status) and
  `EC2 Command Status-change Notification` events (source `aws.ssm`) go onto the event bus.
* DescribeInstanceInformation, ListCommands, ListCommandInvocations, GetCommandInvocation and
  CancelCommand are served from this emulation.

`install(emulation)` replaces those operations on moto's SSM response class and returns the undo; they
find the emulation through the module-level `_current`.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends
from moto.ssm import responses as ssm_responses
from moto.ssm.exceptions import SSMException
from moto.ssm.models import ssm_backends

from kcluster import contract
from twin.account import ACCOUNT_ID, REGION, instance_arn
from twin.aws.patching import MethodPatches

if TYPE_CHECKING:
    from moto.ec2.models import EC2Backend
    from moto.ssm.responses import SimpleSystemManagerResponse

    from twin.clock import ScheduledCall, Scheduler, VirtualClock
    from twin.latency import LatencyModel
    from twin.ports import EventPublisher, Late, ScriptRunner
    from twin.recorder import Recorder

OUTPUT_LIMIT = 24_000
LIST_OUTPUT_LIMIT = 2_500
DEFAULT_TIMEOUT_SECONDS = 3600
COMMAND_DETAIL_TYPE = "EC2 Command Status-change Notification"
TERMINAL = ("Success", "Failed", "TimedOut", "Cancelled")
DOCUMENT_KEYS = (
    contract.DOC_INIT,
    contract.DOC_JOIN_CONTROL_PLANE,
    contract.DOC_JOIN_WORKER,
    contract.DOC_REFRESH_JOIN,
    contract.DOC_DRAIN_REMOVE,
    contract.DOC_HEALTH,
    contract.DOC_BACKUP,
)


def _error(code: str, message: str) -> SSMException:
    return SSMException(code, message)


def iso_ms(timestamp: float) -> str:
    """AWS's event time format: ISO 8601, milliseconds, Z."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def document_key(document_name: str) -> str:
    """kcluster-<cluster>-<key> -> <key>; other documents keep their name (default latency)."""
    for key in sorted(DOCUMENT_KEYS, key=len, reverse=True):
        if document_name.startswith("kcluster-") and document_name.endswith(f"-{key}"):
            return key
    return document_name


@dataclass
class Agent:
    instance_id: str
    registered_at: float
    ip_address: str | None
    computer_name: str
    ping_status: str = "Online"
    last_ping: float = 0.0


@dataclass
class Invocation:
    command: Command
    instance_id: str
    visible_at: float
    status: str = "Pending"
    status_details: str = "Pending"
    response_code: int = -1
    started_at: float | None = None
    ended_at: float | None = None
    stdout: str = ""
    stderr: str = ""
    timer: ScheduledCall | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass
class Command:
    command_id: str
    document_name: str
    document_version: str
    parameters: dict[str, list[str]]
    comment: str
    requested_at: float
    execution_timeout: int
    delivery_timeout: int
    plugin_name: str
    script: str
    env: dict[str, str]
    instance_ids: list[str]
    invocations: dict[str, Invocation] = field(default_factory=dict)
    status: str = "Pending"

    @property
    def key(self) -> str:
        return document_key(self.document_name)


@dataclass(frozen=True)
class RunCommandContext:
    """What Run Command's emulation uses."""

    clock: VirtualClock
    scheduler: Scheduler
    rng: random.Random  # command ids
    latency: LatencyModel  # delivery, visibility and run time of each invocation
    recorder: Recorder  # commands, their outputs (secrets must never show), timeline notes
    fleet: ScriptRunner  # where a document's script runs
    events: Late[EventPublisher]  # the status-change events


class RunCommandEmulation:
    def __init__(self, context: RunCommandContext) -> None:
        self.context = context
        self.agents: dict[str, Agent] = {}
        self.commands: dict[str, Command] = {}
        # The invocation whose script the fleet is running right now (the fault injector reads it to
        # say which invocation it failed; two commands may carry the same script to one instance).
        self.running: Invocation | None = None

    # ---- agents ----------------------------------------------------------------------------

    def register_agent(self, instance_id: str) -> None:
        instance = _ec2().get_instance(instance_id)
        now = self.context.clock.now()
        self.agents[instance_id] = Agent(
            instance_id=instance_id,
            registered_at=now,
            ip_address=instance.private_ip,
            computer_name=instance.private_dns_name,
            last_ping=now,
        )
        self._note(f"ssm agent online on {instance_id}")

    def instance_gone(self, instance_id: str) -> None:
        agent = self.agents.get(instance_id)
        if agent is not None and agent.ping_status == "Online":
            agent.ping_status = "ConnectionLost"
        for command in self.commands.values():
            invocation = command.invocations.get(instance_id)
            if invocation is None or invocation.terminal:
                continue
            details = "Failed" if invocation.status == "InProgress" else "Undeliverable"
            self._finish(invocation, "Failed", details, -1)

    # ---- SendCommand -----------------------------------------------------------------------

    def send(
        self,
        *,
        document_name: str,
        instance_ids: list[str],
        targets: list[dict[str, Any]],
        parameters: dict[str, list[str]],
        timeout_seconds: int | None,
        comment: str,
        document_version: str | None = None,
    ) -> Command:
        ids = list(dict.fromkeys(instance_ids or _resolve_targets(targets)))
        if len(ids) > contract.MAX_INSTANCES_PER_COMMAND:
            raise _error(
                "ValidationException",
                f"1 validation error detected: Value at 'instanceIds' failed to satisfy constraint: "
                f"Member must have length less than or equal to {contract.MAX_INSTANCES_PER_COMMAND}",
            )
        if not ids:
            raise _error("InvalidInstanceId", "No instances to run the command on")
        document = _document(document_name, document_version)
        content = document.content_json
        full_parameters = _validate_parameters(content.get("parameters") or {}, parameters)
        for instance_id in ids:
            agent = self.agents.get(instance_id)
            if agent is None or agent.ping_status != "Online":
                raise _error("InvalidInstanceId", "Instances not in a valid state for account")
        step = _shell_step(content)
        now = self.context.clock.now()
        command = Command(
            command_id=str(uuid.UUID(int=self.context.rng.getrandbits(128), version=4)),
            document_name=document_name,
            document_version=str(document.document_version),
            parameters=parameters,
            comment=comment,
            requested_at=now,
            execution_timeout=int(
                step["inputs"].get("timeoutSeconds") or timeout_seconds or DEFAULT_TIMEOUT_SECONDS
            ),
            delivery_timeout=int(timeout_seconds or DEFAULT_TIMEOUT_SECONDS),
            plugin_name=step.get("name", "aws:runShellScript"),
            script=_interpolate(_script(step), content.get("parameters") or {}, full_parameters),
            env={f"SSM_{name}": ",".join(values) for name, values in full_parameters.items()},
            instance_ids=ids,
        )
        self.commands[command.command_id] = command
        self.context.recorder.record_command(command.command_id, document_name, parameters)
        self._note(f"SendCommand {document_name} to {', '.join(ids)} ({command.command_id[:8]})")
        latency = self.context.latency
        for instance_id in ids:
            start_delay = latency.command_delivery_seconds()
            invocation = Invocation(
                command=command,
                instance_id=instance_id,
                visible_at=now + min(latency.invocation_visible_seconds(), start_delay),
            )
            command.invocations[instance_id] = invocation
            invocation.timer = self.context.scheduler.after(
                start_delay,
                f"{document_name} starts on {instance_id}",
                lambda invocation=invocation: self._start(invocation),
            )
        return command

    def _start(self, invocation: Invocation) -> None:
        if invocation.terminal:
            return
        command = invocation.command
        now = self.context.clock.now()
        invocation.status = invocation.status_details = "InProgress"
        invocation.started_at = now
        self._invocation_event(invocation)
        self._update_command(command)
        run_seconds = self.context.latency.command_seconds(command.key)
        if run_seconds > command.execution_timeout:
            invocation.timer = self.context.scheduler.after(
                command.execution_timeout,
                f"{command.document_name} times out on {invocation.instance_id}",
                lambda: self._finish(invocation, "TimedOut", "ExecutionTimedOut", -1),
            )
        else:
            invocation.timer = self.context.scheduler.after(
                run_seconds,
                f"{command.document_name} ends on {invocation.instance_id}",
                lambda: self._run(invocation),
            )

    def _run(self, invocation: Invocation) -> None:
        if invocation.terminal:
            return
        command = invocation.command
        self.running = invocation
        try:
            result = self.context.fleet.run_script(invocation.instance_id, command.script, dict(command.env))
        except ValueError:
            # The fleet runs nothing on an instance that died under the script: its agent never
            # reports back, and SSM times the invocation out at its execution timeout.
            now = self.context.clock.now()
            ends = (invocation.started_at or now) + command.execution_timeout
            invocation.timer = self.context.scheduler.after(
                max(0.0, ends - now),
                f"{command.document_name} times out on {invocation.instance_id} (instance gone)",
                lambda: self._finish(invocation, "TimedOut", "ExecutionTimedOut", -1),
            )
            return
        finally:
            self.running = None
        self.context.recorder.record_command_output(
            command.command_id, invocation.instance_id, result.stdout, result.stderr
        )
        invocation.stdout = result.stdout[:OUTPUT_LIMIT]
        invocation.stderr = result.stderr[:OUTPUT_LIMIT]
        status = "Success" if result.exit_code == 0 else "Failed"
        self._finish(invocation, status, status, result.exit_code)

    def _finish(self, invocation: Invocation, status: str, details: str, response_code: int) -> None:
        self.context.scheduler.cancel(invocation.timer)
        invocation.timer = None
        invocation.status, invocation.status_details = status, details
        invocation.response_code = response_code
        invocation.ended_at = self.context.clock.now()
        self._note(f"{invocation.command.document_name} on {invocation.instance_id}: {status} ({details})")
        self._invocation_event(invocation)
        self._update_command(invocation.command)

    def _update_command(self, command: Command) -> None:
        statuses = [invocation.status for invocation in command.invocations.values()]
        if all(status in TERMINAL for status in statuses):
            if all(status == "Success" for status in statuses):
                new = "Success"
            elif "Cancelled" in statuses:
                new = "Cancelled"
            elif "TimedOut" in statuses:
                new = "TimedOut"
            else:
                new = "Failed"
        elif any(status != "Pending" for status in statuses):
            new = "InProgress"
        else:
            new = "Pending"
        if new != command.status:
            command.status = new
            self._command_event(command)

    def cancel(self, command_id: str, instance_ids: list[str]) -> None:
        command = self.commands.get(command_id)
        if command is None:
            raise _error("InvalidCommandId", f"Invalid command id {command_id}")
        for instance_id, invocation in command.invocations.items():
            if (not instance_ids or instance_id in instance_ids) and not invocation.terminal:
                self._finish(invocation, "Cancelled", "Cancelled", -1)

    # ---- reads -----------------------------------------------------------------------------

    def invocation(self, command_id: str, instance_id: str) -> Invocation:
        command = self.commands.get(command_id)
        invocation = command.invocations.get(instance_id) if command else None
        if invocation is None or not self._visible(invocation):
            raise _error("InvocationDoesNotExist", "An error occurred (InvocationDoesNotExist)")
        return invocation

    def _visible(self, invocation: Invocation) -> bool:
        return invocation.status != "Pending" or self.context.clock.now() >= invocation.visible_at

    def visible_invocations(self, command_id: str | None, instance_id: str | None) -> list[Invocation]:
        found = []
        for command in self._commands_newest_first():
            if command_id and command.command_id != command_id:
                continue
            for invocation in command.invocations.values():
                if instance_id and invocation.instance_id != instance_id:
                    continue
                if self._visible(invocation):
                    found.append(invocation)
        return found

    def _commands_newest_first(self) -> list[Command]:
        return sorted(self.commands.values(), key=lambda c: c.requested_at, reverse=True)

    def list_commands(
        self, command_id: str | None, instance_id: str | None, filters: list[dict[str, str]] | None = None
    ) -> list[Command]:
        """ListCommands, with its CommandFilter keys DocumentName, InvokedAfter, InvokedBefore, Status
        (several filters must all hold)."""
        if command_id and command_id not in self.commands:
            raise _error("InvalidCommandId", f"Invalid command id {command_id}")
        checks = [_command_filter(entry) for entry in filters or []]
        return [
            command
            for command in self._commands_newest_first()
            if (not command_id or command.command_id == command_id)
            and (not instance_id or instance_id in command.instance_ids)
            and all(check(command) for check in checks)
        ]

    # ---- events ----------------------------------------------------------------------------

    def _invocation_event(self, invocation: Invocation) -> None:
        command = invocation.command
        detail = {
            "command-id": command.command_id,
            "document-name": command.document_name,
            "instance-id": invocation.instance_id,
            "requested-date-time": iso_ms(command.requested_at),
            "status": invocation.status,
        }
        self._put(contract.COMMAND_STATUS_DETAIL_TYPE, detail, [instance_arn(invocation.instance_id)])

    def _command_event(self, command: Command) -> None:
        detail = {
            "command-id": command.command_id,
            "document-name": command.document_name,
            "expire-after": iso_ms(command.requested_at + command.delivery_timeout),
            "parameters": command.parameters,
            "requested-date-time": iso_ms(command.requested_at),
            "status": command.status,
        }
        self._put(COMMAND_DETAIL_TYPE, detail, [instance_arn(i) for i in command.instance_ids])

    def _put(self, detail_type: str, detail: dict[str, Any], resources: list[str]) -> None:
        self.context.events.get().put_events(
            [
                {
                    "Source": "aws.ssm",
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail),
                    "Resources": resources,
                    "Time": self.context.clock.now_datetime(),
                }
            ]
        )

    def _note(self, text: str) -> None:
        self.context.recorder.note("ssm", text)


# ---- documents and parameters ---------------------------------------------------------------


def _document(name: str, version: str | None) -> Any:
    documents = ssm_backends[ACCOUNT_ID][REGION]._get_documents(name)  # raises InvalidDocument
    if version and version not in ("$DEFAULT", "$LATEST"):
        found = documents.find_by_version(version)
        if found is None:
            raise _error("InvalidDocumentVersion", f"Document {name} has no version {version}")
        return found
    return documents.get_latest_version() if version == "$LATEST" else documents.get_default_version()


def _validate_parameters(declared: dict[str, Any], given: dict[str, list[str]]) -> dict[str, list[str]]:
    """SendCommand's checks; returns the parameters with the document's defaults filled in."""
    for name in given:
        if name not in declared:
            raise _error("InvalidParameters", f"Parameter {name!r} is not defined in the document")
    full: dict[str, list[str]] = {}
    for name, spec in declared.items():
        if name in given:
            values = given[name]
        elif "default" in spec:
            default = spec["default"]
            values = default if isinstance(default, list) else [str(default)]
        else:
            raise _error("InvalidParameters", f"Parameter {name!r} is required but was not given")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise _error("InvalidParameters", f"Parameter {name!r} must be a list of strings")
        pattern = spec.get("allowedPattern")
        allowed = spec.get("allowedValues")
        for value in values:
            if pattern and re.fullmatch(pattern.removesuffix("$"), value) is None:
                raise _error(
                    "InvalidParameters",
                    f"Parameter {name!r} value does not match the allowed pattern {pattern}",
                )
            if allowed and value not in allowed:
                raise _error("InvalidParameters", f"Parameter {name!r} value is not one of {allowed}")
        full[name] = values
    return full


def _shell_step(content: dict[str, Any]) -> dict[str, Any]:
    for step in content.get("mainSteps") or []:
        if step.get("action") == "aws:runShellScript":
            return step
    raise _error("InvalidDocument", "The document has no aws:runShellScript step")


def _script(step: dict[str, Any]) -> str:
    commands = step["inputs"].get("runCommand") or []
    return commands if isinstance(commands, str) else "\n".join(commands)


def _interpolate(script: str, declared: dict[str, Any], values: dict[str, list[str]]) -> str:
    """{{ Name }} becomes ${SSM_Name} for ENV_VAR parameters (never shell text), else the literal value."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)
        if (declared.get(name) or {}).get("interpolationType") == "ENV_VAR":
            return "${SSM_" + name + "}"
        return ",".join(values[name])

    return re.sub(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}", replace, script)


def _ec2() -> EC2Backend:
    return ec2_backends[ACCOUNT_ID][REGION]


def _resolve_targets(targets: list[dict[str, Any]]) -> list[str]:
    if not targets:
        return []
    ids: list[str] | None = None
    for target in targets:
        key, values = target["Key"], target.get("Values", [])
        if key == "InstanceIds":
            matched = list(values)
        elif key.startswith("tag:"):
            reservations = _ec2().all_reservations(filters={key: values, "instance-state-name": ["running"]})
            matched = [instance.id for reservation in reservations for instance in reservation.instances]
        else:
            raise _error("InvalidTarget", f"Target key {key} is not supported by the twin")
        ids = matched if ids is None else [i for i in ids if i in matched]
    return ids or []


def _elapsed(invocation: Invocation) -> str:
    if invocation.started_at is None or invocation.ended_at is None:
        return ""
    return f"PT{invocation.ended_at - invocation.started_at:.3f}S"


def _when(timestamp: float | None) -> str:
    return "" if timestamp is None else iso_ms(timestamp)


# ---- response shapes ------------------------------------------------------------------------


def command_response(command: Command) -> dict[str, Any]:
    invocations = list(command.invocations.values())
    return {
        "CommandId": command.command_id,
        "DocumentName": command.document_name,
        "DocumentVersion": command.document_version,
        "Comment": command.comment,
        "ExpiresAfter": datetime.fromtimestamp(command.requested_at, tz=UTC)
        + timedelta(seconds=command.delivery_timeout),
        "Parameters": command.parameters,
        "InstanceIds": command.instance_ids,
        "Targets": [],
        "RequestedDateTime": datetime.fromtimestamp(command.requested_at, tz=UTC),
        "Status": command.status,
        "StatusDetails": command.status,
        "MaxConcurrency": "50",
        "MaxErrors": "0",
        "TargetCount": len(invocations),
        "CompletedCount": sum(1 for i in invocations if i.terminal),
        "ErrorCount": sum(1 for i in invocations if i.status in ("Failed", "TimedOut")),
        "DeliveryTimedOutCount": 0,
        "TimeoutSeconds": command.delivery_timeout,
    }


def get_invocation_response(invocation: Invocation) -> dict[str, Any]:
    command = invocation.command
    return {
        "CommandId": command.command_id,
        "InstanceId": invocation.instance_id,
        "Comment": command.comment,
        "DocumentName": command.document_name,
        "DocumentVersion": command.document_version,
        "PluginName": command.plugin_name,
        "ResponseCode": invocation.response_code,
        "ExecutionStartDateTime": _when(invocation.started_at),
        "ExecutionElapsedTime": _elapsed(invocation),
        "ExecutionEndDateTime": _when(invocation.ended_at),
        "Status": invocation.status,
        "StatusDetails": invocation.status_details,
        "StandardOutputContent": invocation.stdout,
        "StandardOutputUrl": "",
        "StandardErrorContent": invocation.stderr,
        "StandardErrorUrl": "",
        "CloudWatchOutputConfig": {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False},
    }


def list_invocation_response(invocation: Invocation, details: bool) -> dict[str, Any]:
    command = invocation.command
    response: dict[str, Any] = {
        "CommandId": command.command_id,
        "InstanceId": invocation.instance_id,
        "InstanceName": "",
        "Comment": command.comment,
        "DocumentName": command.document_name,
        "DocumentVersion": command.document_version,
        "RequestedDateTime": datetime.fromtimestamp(command.requested_at, tz=UTC),
        "Status": invocation.status,
        "StatusDetails": invocation.status_details,
        "TraceOutput": "",
        "StandardOutputUrl": "",
        "StandardErrorUrl": "",
        "CommandPlugins": [],
    }
    if details:
        plugin: dict[str, Any] = {
            "Name": command.plugin_name,
            "Status": invocation.status,
            "StatusDetails": invocation.status_details,
            "ResponseCode": invocation.response_code,
            "Output": (invocation.stdout + invocation.stderr)[:LIST_OUTPUT_LIMIT],
            "StandardOutputUrl": "",
            "StandardErrorUrl": "",
        }
        if invocation.started_at is not None:
            plugin["ResponseStartDateTime"] = datetime.fromtimestamp(invocation.started_at, tz=UTC)
        if invocation.ended_at is not None:
            plugin["ResponseFinishDateTime"] = datetime.fromtimestamp(invocation.ended_at, tz=UTC)
        response["CommandPlugins"] = [plugin]
    return response


def agent_response(agent: Agent) -> dict[str, Any]:
    return {
        "InstanceId": agent.instance_id,
        "PingStatus": agent.ping_status,
        "LastPingDateTime": datetime.fromtimestamp(agent.last_ping, tz=UTC),
        "AgentVersion": "3.3.1142.0",
        "IsLatestVersion": True,
        "PlatformType": "Linux",
        "PlatformName": "Ubuntu",
        "PlatformVersion": "24.04",
        "ResourceType": "EC2Instance",
        "IPAddress": agent.ip_address or "",
        "ComputerName": agent.computer_name,
        "RegistrationDate": datetime.fromtimestamp(agent.registered_at, tz=UTC),
    }


def _paginate(items: list[Any], max_results: int | None, token: str | None, key: str) -> dict[str, Any]:
    start = int(token) if token else 0
    size = max_results or 50
    page = items[start : start + size]
    response: dict[str, Any] = {key: page}
    if start + size < len(items):
        response["NextToken"] = str(start + size)
    return response


# ---- the patches ----------------------------------------------------------------------------

_current: RunCommandEmulation | None = None


def _emulation() -> RunCommandEmulation:
    if _current is None:
        raise _error("InternalServerError", "run command emulation is not installed")
    return _current


def _command_filter(entry: dict[str, str]) -> Callable[[Command], bool]:
    key, value = entry.get("key"), entry.get("value", "")
    if key == "DocumentName":
        return lambda command: command.document_name == value
    if key == "Status":
        return lambda command: command.status == value
    if key in ("InvokedAfter", "InvokedBefore"):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise _error("InvalidFilterValue", f"{key} must be an ISO 8601 time, got {value!r}") from None
        if key == "InvokedAfter":
            return lambda command: command.requested_at >= moment
        return lambda command: command.requested_at <= moment
    raise _error("InvalidFilterKey", f"Filter key {key!r} is not supported by ListCommands")


def _filters(self: SimpleSystemManagerResponse) -> dict[str, list[str]]:
    """DescribeInstanceInformation's two filter syntaxes, as {key: values}."""
    found: dict[str, list[str]] = {}
    for entry in self._get_param("InstanceInformationFilterList", []) or []:
        found[entry["key"]] = entry.get("valueSet", [])
    for entry in self._get_param("Filters", []) or []:
        found[entry["Key"]] = entry.get("Values", [])
    return found


def install(emulation: RunCommandEmulation) -> Callable[[], None]:
    """Serve SSM Run Command from `emulation` instead of moto; returns the undo."""
    global _current
    previous = _current
    _current = emulation
    response_cls = ssm_responses.SimpleSystemManagerResponse
    patches = MethodPatches()

    def send_command(self: SimpleSystemManagerResponse) -> ActionResult:
        command = _emulation().send(
            document_name=self._get_param("DocumentName"),
            document_version=self._get_param("DocumentVersion"),
            instance_ids=self._get_param("InstanceIds", []) or [],
            targets=self._get_param("Targets", []) or [],
            parameters=self._get_param("Parameters", {}) or {},
            timeout_seconds=self._get_int_param("TimeoutSeconds"),
            comment=self._get_param("Comment", "") or "",
        )
        return ActionResult({"Command": command_response(command)})

    def list_commands(self: SimpleSystemManagerResponse) -> ActionResult:
        commands = _emulation().list_commands(
            self._get_param("CommandId"), self._get_param("InstanceId"), self._get_param("Filters")
        )
        return ActionResult(
            _paginate(
                [command_response(c) for c in commands],
                self._get_int_param("MaxResults"),
                self._get_param("NextToken"),
                "Commands",
            )
        )

    def get_command_invocation(self: SimpleSystemManagerResponse) -> ActionResult:
        invocation = _emulation().invocation(self._get_param("CommandId"), self._get_param("InstanceId"))
        plugin = self._get_param("PluginName")
        if plugin and plugin != invocation.command.plugin_name:
            raise _error("InvalidPluginName", f"Plugin {plugin} is not in the document")
        return ActionResult(get_invocation_response(invocation))

    def list_command_invocations(self: SimpleSystemManagerResponse) -> ActionResult:
        invocations = _emulation().visible_invocations(
            self._get_param("CommandId"), self._get_param("InstanceId")
        )
        details = bool(self._get_param("Details", False))
        return ActionResult(
            _paginate(
                [list_invocation_response(i, details) for i in invocations],
                self._get_int_param("MaxResults"),
                self._get_param("NextToken"),
                "CommandInvocations",
            )
        )

    def cancel_command(self: SimpleSystemManagerResponse) -> ActionResult:
        _emulation().cancel(self._get_param("CommandId"), self._get_param("InstanceIds", []) or [])
        return ActionResult({})

    def describe_instance_information(self: SimpleSystemManagerResponse) -> ActionResult:
        filters = _filters(self)
        agents = sorted(_emulation().agents.values(), key=lambda a: a.registered_at)
        if "InstanceIds" in filters:
            agents = [a for a in agents if a.instance_id in filters["InstanceIds"]]
        if "PingStatus" in filters:
            agents = [a for a in agents if a.ping_status in filters["PingStatus"]]
        tag_filters = {k[4:]: v for k, v in filters.items() if k.startswith("tag:")}
        if tag_filters:
            agents = [a for a in agents if _has_tags(a.instance_id, tag_filters)]
        return ActionResult(
            _paginate(
                [agent_response(a) for a in agents],
                self._get_int_param("MaxResults"),
                self._get_param("NextToken"),
                "InstanceInformationList",
            )
        )

    replacements = {
        "send_command": send_command,
        "list_commands": list_commands,
        "get_command_invocation": get_command_invocation,
        "list_command_invocations": list_command_invocations,
        "cancel_command": cancel_command,
        "describe_instance_information": describe_instance_information,
    }
    for name, replacement in replacements.items():
        patches.patch(response_cls, name, replacement)

    def undo() -> None:
        global _current
        patches.undo()
        _current = previous

    return undo


def _has_tags(instance_id: str, wanted: dict[str, list[str]]) -> bool:
    tags = {tag["key"]: tag["value"] for tag in _ec2().describe_tags(filters={"resource-id": [instance_id]})}
    return all(tags.get(key) in values for key, values in wanted.items())


__all__ = ["Command", "Invocation", "RunCommandEmulation", "document_key", "install", "iso_ms"]
