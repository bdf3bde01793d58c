"""Negative tests, one per boundary: in the twin every call is authorized as AWS would authorize it,
with the caller's own credentials, so what a policy does not allow fails with AccessDenied."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError

from twin.account import REGION
from twin.world import Twin

OTHER = "demo-x"


@pytest.fixture(scope="module")
def twin() -> Iterator[Twin]:
    world = Twin(seed=3)
    admin_ssm = boto3.client("ssm", region_name=REGION)
    for name in ("token", "certificate-key"):
        for cluster in ("demo", OTHER):
            admin_ssm.put_parameter(
                Name=f"/kcluster/{cluster}/join/{name}", Value="x", Type="SecureString", Overwrite=True
            )
    admin_ssm.put_parameter(Name=f"/kcluster/{OTHER}/config", Value="{}", Type="String", Overwrite=True)
    yield world
    world.close()


def _client(service: str, access_key: str):
    return boto3.client(
        service,
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key="twin",
        aws_session_token="twin",
    )


def _denied(call, **kwargs) -> str:
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    error = raised.value.response["Error"]
    assert error["Code"] in {"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"}, error
    return error["Message"]


def test_a_worker_reads_only_its_join_material(twin: Twin):
    ssm = _client("ssm", twin.iam.node_keys["worker"])
    message = _denied(ssm.get_parameter, Name="/kcluster/demo/join/certificate-key", WithDecryption=True)
    assert "ssm:GetParameter" in message and "join/certificate-key" in message
    _denied(ssm.get_parameter, Name="/kcluster/demo/admin/kubeconfig", WithDecryption=True)
    _denied(ssm.get_parameter, Name=f"/kcluster/{OTHER}/join/token", WithDecryption=True)
    _denied(
        ssm.put_parameter, Name="/kcluster/demo/join/token", Value="y", Type="SecureString", Overwrite=True
    )
    _denied(ssm.send_command, DocumentName="kcluster-demo-health", InstanceIds=["i-0123456789abcdef0"])
    # AND what it needs is allowed
    assert (
        ssm.get_parameter(Name="/kcluster/demo/join/token", WithDecryption=True)["Parameter"]["Value"] == "x"
    )


def test_a_control_plane_cannot_touch_another_clusters_join_material(twin: Twin):
    ssm = _client("ssm", twin.iam.node_keys["control-plane"])
    _denied(ssm.get_parameter, Name=f"/kcluster/{OTHER}/join/certificate-key", WithDecryption=True)
    _denied(
        ssm.put_parameter,
        Name=f"/kcluster/{OTHER}/join/token",
        Value="y",
        Type="SecureString",
        Overwrite=True,
    )
    _denied(ssm.get_parameter, Name="/kcluster/demo/admin/kubeconfig", WithDecryption=True)
    assert ssm.get_parameter(Name="/kcluster/demo/join/certificate-key", WithDecryption=True)


def test_the_functions_of_demo_cannot_act_on_demo_x(twin: Twin):
    admin_asg = boto3.client("autoscaling", region_name=REGION)
    ec2 = boto3.client("ec2", region_name=REGION)
    template = twin.deployment.launch_template_ids[twin.worker_asg]
    admin_asg.create_auto_scaling_group(
        AutoScalingGroupName=f"kcluster-{OTHER}-workers",
        LaunchTemplate={"LaunchTemplateId": template},
        MinSize=0,
        MaxSize=1,
        VPCZoneIdentifier=twin.deployment.subnet_ids[0],
        Tags=[{"Key": "kcluster:cluster", "Value": OTHER, "PropagateAtLaunch": True}],
    )
    (instance,) = ec2.run_instances(
        ImageId=ec2.describe_images()["Images"][0]["ImageId"],
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "kcluster:cluster", "Value": OTHER}]}
        ],
    )["Instances"]
    reactor = twin.iam.function_access_key("ReactorFunction")
    remediator = twin.iam.function_access_key("RemediatorFunction")
    _denied(
        _client("autoscaling", reactor).complete_lifecycle_action,
        AutoScalingGroupName=f"kcluster-{OTHER}-workers",
        LifecycleHookName="kcluster-launch",
        InstanceId=instance["InstanceId"],
        LifecycleActionResult="CONTINUE",
    )
    _denied(
        _client("ssm", reactor).send_command,
        DocumentName="kcluster-demo-join-worker",
        InstanceIds=[instance["InstanceId"]],
    )
    _denied(_client("ssm", remediator).send_command, DocumentName="kcluster-demo-health", InstanceIds=["i-1"])
    # the remediator cannot mark an instance of demo-x unhealthy (its group is not tagged demo)
    admin_asg.attach_instances(
        AutoScalingGroupName=f"kcluster-{OTHER}-workers", InstanceIds=[instance["InstanceId"]]
    )
    _denied(
        _client("autoscaling", remediator).set_instance_health,
        InstanceId=instance["InstanceId"],
        HealthStatus="Unhealthy",
    )
    _denied(
        _client("autoscaling", remediator).complete_lifecycle_action,
        AutoScalingGroupName=twin.worker_asg,
        LifecycleHookName="kcluster-launch",
        InstanceId=instance["InstanceId"],
        LifecycleActionResult="CONTINUE",
    )


def test_only_the_rules_put_messages_on_the_queue(twin: Twin):
    queue_url = twin.stack.outputs.get("EventsQueueUrl") or next(
        r.physical_id for r in twin.stack.resources.values() if r.logical_id == "EventsQueue"
    )
    for key in (twin.iam.node_keys["worker"], twin.iam.function_access_key("RemediatorFunction")):
        _denied(_client("sqs", key).send_message, QueueUrl=queue_url, MessageBody="{}")


def test_a_key_nobody_was_given_is_refused_loudly(twin: Twin):
    with pytest.raises(PermissionError, match="belongs to no principal"):
        _client("ssm", "ASIAUNKNOWNKEY00000").get_parameter(Name="/kcluster/demo/config")


def test_the_operator_acts_with_its_own_credentials(twin: Twin):
    # WHEN the operator changes desired capacity
    before = twin.iam.authorizer.calls
    twin.set_desired("worker", 0)
    # THEN the call was authorized as the operator's (an administrator), not let through unchecked
    assert twin.iam.authorizer.calls == before + 1
    assert any(label == "operator" for label, _ in twin.iam.authorizer.used)


def test_only_control_planes_read_or_write_the_backups(twin: Twin):
    """The backups hold the cluster PKI (DESIGN.md section 4): the control-plane role may put and get
    them (S3 using the cluster key on its behalf); a worker may not; the operator, an administrator of
    the account, is refused the objects by the bucket policy and could not use the key anyway."""
    bucket = twin.deployment.config.backup_bucket or ""
    key = "frequent/20260101T000000Z/pki.tar"
    control_plane = _client("s3", twin.iam.node_keys["control-plane"])
    control_plane.put_object(
        Bucket=bucket,
        Key=key,
        Body=b"pki",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=twin.deployment.kms_key_arn,
    )
    assert control_plane.get_object(Bucket=bucket, Key=key)["Body"].read() == b"pki"
    worker = _client("s3", twin.iam.node_keys["worker"])
    assert "s3:GetObject" in _denied(worker.get_object, Bucket=bucket, Key=key)
    _denied(worker.put_object, Bucket=bucket, Key="frequent/x/etcd.db", Body=b"x")
    operator = twin.operator_session().client("s3")
    message = _denied(operator.get_object, Bucket=bucket, Key=key)
    assert "s3:GetObject" in message
    # another bucket of the account is not theirs to write either
    _denied(control_plane.put_object, Bucket=twin.deployment.ssm_transfer_bucket, Key="x", Body=b"x")
