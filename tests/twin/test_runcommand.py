"""SSM Run Command as the twin emulates it on top of moto."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.twin.conftest import REGION, CannedResult, run_command
from twin.aws import runcommand

DOCUMENT = "kcluster-demo-join-worker"
INVOCATION_EVENT = "EC2 Command Invocation Status-change Notification"
COMMAND_EVENT = "EC2 Command Status-change Notification"
SCRIPT = 'set -euo pipefail\necho "joining {{ ClusterName }}"\n'


def document_content(timeout_seconds: int = 600) -> dict:
    return {
        "schemaVersion": "2.2",
        "description": "join a worker",
        "parameters": {
            "ClusterName": {
                "type": "String",
                "description": "cluster",
                "allowedPattern": "^[a-z][a-z0-9-]{1,30}[a-z0-9]$",
                "interpolationType": "ENV_VAR",
            },
            "TokenTtl": {
                "type": "String",
                "description": "ttl",
                "default": "15m",
                "allowedPattern": "^[1-9][0-9]{0,3}[mh]$",
                "interpolationType": "ENV_VAR",
            },
        },
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": "joinworker",
                "inputs": {"timeoutSeconds": timeout_seconds, "runCommand": [SCRIPT]},
            }
        ],
    }


@pytest.fixture
def ssm(twin: SimpleNamespace) -> Iterator[SimpleNamespace]:
    twin.runcommand = run_command(twin)
    undo = runcommand.install(twin.runcommand)
    boto3.client("ssm", region_name=REGION).create_document(
        Name=DOCUMENT, Content=json.dumps(document_content()), DocumentType="Command", DocumentFormat="JSON"
    )
    twin.client = boto3.client("ssm", region_name=REGION)
    try:
        yield twin
    finally:
        undo()


def run_instances(count: int) -> list[str]:
    ec2 = boto3.client("ec2", region_name=REGION)
    reservation = ec2.run_instances(ImageId="ami-12c6146b", MinCount=count, MaxCount=count)
    return [i["InstanceId"] for i in reservation["Instances"]]


def registered(world: SimpleNamespace, count: int) -> list[str]:
    ids = run_instances(count)
    for instance_id in ids:
        world.runcommand.register_agent(instance_id)
    return ids


def send(world: SimpleNamespace, ids: list[str], **parameters: list[str]) -> str:
    response = world.client.send_command(
        DocumentName=DOCUMENT, InstanceIds=ids, Parameters=parameters or {"ClusterName": ["demo"]}
    )
    return response["Command"]["CommandId"]


def error_code(call, **kwargs) -> str:
    with pytest.raises(ClientError) as error:
        call(**kwargs)
    return error.value.response["Error"]["Code"]


def test_more_than_fifty_instances_is_refused(ssm):
    ids = registered(ssm, 51)
    code = error_code(
        ssm.client.send_command, DocumentName=DOCUMENT, InstanceIds=ids, Parameters={"ClusterName": ["demo"]}
    )
    assert code == "ValidationException"
    assert ssm.runcommand.commands == {}
    send(ssm, ids[:50])  # fifty is the limit, not beyond it
    assert len(next(iter(ssm.runcommand.commands.values())).invocations) == 50


def test_unregistered_agent_fails_the_whole_call(ssm):
    (online,) = registered(ssm, 1)
    (booting,) = run_instances(1)
    code = error_code(
        ssm.client.send_command,
        DocumentName=DOCUMENT,
        InstanceIds=[online, booting],
        Parameters={"ClusterName": ["demo"]},
    )
    assert code == "InvalidInstanceId"
    assert ssm.runcommand.commands == {}


@pytest.mark.parametrize(
    "parameters",
    [
        {"ClusterName": ["Demo; rm -rf /"]},  # outside allowedPattern
        {"ClusterName": ["demo"], "Extra": ["x"]},  # unknown
        {"TokenTtl": ["15m"]},  # required ClusterName missing
        {"ClusterName": ["demo\n"]},  # $ must not let a newline through
    ],
)
def test_bad_parameters_are_refused(ssm, parameters):
    ids = registered(ssm, 1)
    code = error_code(ssm.client.send_command, DocumentName=DOCUMENT, InstanceIds=ids, Parameters=parameters)
    assert code == "InvalidParameters"


def test_unknown_document_is_refused(ssm):
    ids = registered(ssm, 1)
    code = error_code(ssm.client.send_command, DocumentName="kcluster-demo-nope", InstanceIds=ids)
    assert code == "InvalidDocument"


def test_invocation_is_invisible_right_after_send_then_runs_the_script(ssm):
    (instance_id,) = registered(ssm, 1)
    ssm.fleet.result = CannedResult(0, '{"ok": true, "step": "join-worker"}\n', "warning\n")
    command_id = send(ssm, [instance_id])
    code = error_code(ssm.client.get_command_invocation, CommandId=command_id, InstanceId=instance_id)
    assert code == "InvocationDoesNotExist"
    assert ssm.client.list_command_invocations(CommandId=command_id)["CommandInvocations"] == []

    ssm.scheduler.run_until(lambda: ssm.runcommand.commands[command_id].status == "InProgress", 10)
    seen = ssm.client.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
    assert (seen["Status"], seen["ResponseCode"], seen["StandardOutputContent"]) == ("InProgress", -1, "")
    assert ssm.fleet.runs == []  # the script runs when the invocation completes

    ssm.scheduler.run_until(lambda: ssm.runcommand.commands[command_id].status == "Success", 120)
    done = ssm.client.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
    assert done["Status"] == "Success" and done["ResponseCode"] == 0
    assert done["StandardOutputContent"] == '{"ok": true, "step": "join-worker"}\n'
    assert done["StandardErrorContent"] == "warning\n"
    assert done["PluginName"] == "joinworker"
    # join-worker takes 20-60 s in the latency model.
    assert 20 <= float(done["ExecutionElapsedTime"][2:-1]) <= 60

    ((ran_on, script, env),) = ssm.fleet.runs
    assert ran_on == instance_id
    assert env == {"SSM_ClusterName": "demo", "SSM_TokenTtl": "15m"}  # the default fills TokenTtl
    assert 'echo "joining ${SSM_ClusterName}"' in script  # ENV_VAR: never the value as shell text

    listed = ssm.client.list_command_invocations(CommandId=command_id, Details=True)["CommandInvocations"]
    (plugin,) = listed[0]["CommandPlugins"]
    assert (plugin["Name"], plugin["ResponseCode"], plugin["Status"]) == ("joinworker", 0, "Success")
    commands = ssm.client.list_commands(CommandId=command_id)["Commands"]
    assert commands[0]["Status"] == "Success" and commands[0]["CompletedCount"] == 1
    assert ssm.recorder.command_parameters == [(command_id, DOCUMENT, {"ClusterName": ["demo"]})]
    assert ssm.recorder.command_outputs[0][2].startswith('{"ok": true')


def test_status_events_for_each_invocation_and_the_command(ssm):
    ids = registered(ssm, 2)
    ssm.fleet.result = CannedResult(3, '{"ok": false, "error": "kubeadm-failed"}\n', "")
    command_id = send(ssm, ids)
    ssm.scheduler.run_until(lambda: ssm.runcommand.commands[command_id].status == "Failed", 120)
    events = ssm.bus.of_type(INVOCATION_EVENT)
    assert all(e["Source"] == "aws.ssm" for e in events)
    for instance_id in ids:
        mine = [e for e in events if json.loads(e["Detail"])["instance-id"] == instance_id]
        assert [json.loads(e["Detail"])["status"] for e in mine] == ["InProgress", "Failed"]
        assert mine[0]["Resources"] == [f"arn:aws:ec2:us-east-1:123456789012:instance/{instance_id}"]
        detail = json.loads(mine[0]["Detail"])
        assert detail["command-id"] == command_id and detail["document-name"] == DOCUMENT
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", detail["requested-date-time"])
    command_statuses = [json.loads(e["Detail"])["status"] for e in ssm.bus.of_type(COMMAND_EVENT)]
    assert command_statuses == ["InProgress", "Failed"]
    result = ssm.client.get_command_invocation(CommandId=command_id, InstanceId=ids[0])
    assert (result["Status"], result["ResponseCode"]) == ("Failed", 3)


def test_output_is_truncated_at_24000_characters(ssm):
    (instance_id,) = registered(ssm, 1)
    ssm.fleet.result = CannedResult(0, "x" * 30_000, "e" * 25_000)
    command_id = send(ssm, [instance_id])
    ssm.scheduler.run_until(lambda: ssm.runcommand.commands[command_id].status == "Success", 120)
    result = ssm.client.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
    assert len(result["StandardOutputContent"]) == 24_000
    assert len(result["StandardErrorContent"]) == 24_000
    assert len(ssm.recorder.command_outputs[0][2]) == 30_000  # the recorder keeps everything


def test_a_run_longer_than_the_timeout_times_out(ssm):
    (instance_id,) = registered(ssm, 1)
    ssm.latency.command_overrides["join-worker"] = 700  # the document allows 600 s
    command_id = send(ssm, [instance_id])
    ssm.scheduler.run_until(lambda: ssm.runcommand.commands[command_id].status == "TimedOut", 1000)
    result = ssm.client.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
    assert result["Status"] == "TimedOut"
    assert 600 <= float(result["ExecutionElapsedTime"][2:-1]) < 601
    assert ssm.fleet.runs == []


def test_instance_death_fails_invocations_and_loses_the_agent(ssm):
    running, waiting = registered(ssm, 2)
    command_id = send(ssm, [running])
    ssm.scheduler.run_until(lambda: ssm.runcommand.commands[command_id].status == "InProgress", 10)
    later = send(ssm, [waiting])
    ssm.runcommand.instance_gone(running)
    ssm.runcommand.instance_gone(waiting)
    ssm.scheduler.run_for(2)
    first = ssm.client.get_command_invocation(CommandId=command_id, InstanceId=running)
    second = ssm.client.get_command_invocation(CommandId=later, InstanceId=waiting)
    assert (first["Status"], first["StatusDetails"]) == ("Failed", "Failed")
    assert (second["Status"], second["StatusDetails"]) == ("Failed", "Undeliverable")
    info = ssm.client.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": [running]}])
    assert [i["PingStatus"] for i in info["InstanceInformationList"]] == ["ConnectionLost"]
    assert (
        error_code(
            ssm.client.send_command,
            DocumentName=DOCUMENT,
            InstanceIds=[running],
            Parameters={"ClusterName": ["demo"]},
        )
        == "InvalidInstanceId"
    )


def test_describe_instance_information_lists_registered_agents(ssm):
    ids = registered(ssm, 3)
    run_instances(1)  # booting: not registered yet
    info = ssm.client.describe_instance_information()["InstanceInformationList"]
    assert sorted(i["InstanceId"] for i in info) == sorted(ids)
    assert {i["PingStatus"] for i in info} == {"Online"}
    filtered = ssm.client.describe_instance_information(
        InstanceInformationFilterList=[{"key": "InstanceIds", "valueSet": ids[:1]}]
    )["InstanceInformationList"]
    assert [i["InstanceId"] for i in filtered] == ids[:1]


def test_cancel_command(ssm):
    (instance_id,) = registered(ssm, 1)
    command_id = send(ssm, [instance_id])
    ssm.client.cancel_command(CommandId=command_id)
    ssm.scheduler.run_for(120)
    result = ssm.client.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
    assert result["Status"] == "Cancelled"
    assert ssm.fleet.runs == []


def test_list_commands_filters_by_document_and_time_as_ssm_does(ssm):
    (instance,) = registered(ssm, 1)
    command_id = send(ssm, [instance])
    requested = ssm.runcommand.commands[command_id].requested_at

    def listed(*filters: tuple[str, str]) -> list[str]:
        pages = ssm.client.get_paginator("list_commands").paginate(
            InstanceId=instance, Filters=[{"key": key, "value": value} for key, value in filters]
        )
        return [c["CommandId"] for page in pages for c in page["Commands"]]

    def iso(moment: float) -> str:
        return datetime.fromtimestamp(moment, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    assert listed(("DocumentName", DOCUMENT)) == [command_id]
    assert listed(("DocumentName", "another-document")) == []
    assert listed(("DocumentName", DOCUMENT), ("InvokedAfter", iso(requested - 1))) == [command_id]
    assert listed(("InvokedAfter", iso(requested + 60))) == []
    assert listed(("InvokedBefore", iso(requested + 60))) == [command_id]
    assert (
        error_code(ssm.client.list_commands, Filters=[{"key": "Colour", "value": "red"}])
        == "InvalidFilterKey"
    )
