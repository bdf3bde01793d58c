"""Deploying the infrastructure description: what describe calls show afterwards matches the spec."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace

import boto3
import pytest

from kcluster import contract
from kcluster.config import ClusterConfig
from tests.twin.conftest import REGION, auto_scaling
from twin.aws import lifecycle
from twin.documents import document_content, load_documents
from twin.infra import UBUNTU_AMI_PARAMETER, default_spec, deploy, publish_public_ubuntu_ami


@pytest.fixture
def deployed(twin: SimpleNamespace) -> Iterator[SimpleNamespace]:
    twin.lifecycle = auto_scaling(twin)
    undo = lifecycle.install(twin.lifecycle)
    twin.spec = default_spec("demo")
    twin.image_id = publish_public_ubuntu_ami(REGION, twin.spec.architecture)
    twin.deployment = deploy(twin.spec)
    try:
        yield twin
    finally:
        undo()


def test_default_spec_follows_the_contract():
    spec = default_spec("demo", control_planes=3, workers=5)
    assert spec.control_plane.asg_name == "kcluster-demo-control-plane"
    assert [w.asg_name for w in spec.workers] == ["kcluster-demo-workers"]
    assert (spec.control_plane.desired_capacity, spec.workers[0].desired_capacity) == (3, 5)
    assert len({s.availability_zone for s in spec.subnets}) == 3
    assert set(spec.documents) == set(load_documents())
    for group in spec.node_groups:
        assert group.tags[contract.TAG_CLUSTER] == "demo" and group.tags[contract.TAG_ROLE] == group.role
        hooks = {h.name: h for h in group.lifecycle_hooks}
        assert (hooks["kcluster-launch"].default_result, hooks["kcluster-launch"].heartbeat_timeout) == (
            "ABANDON",
            900,
        )
        assert hooks["kcluster-terminate"].default_result == "CONTINUE"


def test_deploy_creates_groups_with_the_spec_hooks_and_tags(deployed):
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    for group in deployed.spec.node_groups:
        described = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group.asg_name])[
            "AutoScalingGroups"
        ][0]
        assert (described["MinSize"], described["MaxSize"], described["DesiredCapacity"]) == (
            group.min_size,
            group.max_size,
            0,
        )
        assert described["HealthCheckGracePeriod"] == group.health_check_grace_period
        assert {t["Key"]: t["Value"] for t in described["Tags"]} == group.tags
        assert all(t["PropagateAtLaunch"] for t in described["Tags"])
        assert len(described["AvailabilityZones"]) == 3
        expected_targets = [deployed.deployment.target_group_arn] if group.attach_api_target_group else []
        assert described["TargetGroupARNs"] == expected_targets
        hooks = autoscaling.describe_lifecycle_hooks(AutoScalingGroupName=group.asg_name)["LifecycleHooks"]
        assert sorted(
            (h["LifecycleHookName"], h["LifecycleTransition"], h["DefaultResult"], h["HeartbeatTimeout"])
            for h in hooks
        ) == sorted(
            (h.name, h.transition, h.default_result, h.heartbeat_timeout) for h in group.lifecycle_hooks
        )


def test_deploy_creates_the_api_load_balancer(deployed):
    elbv2 = boto3.client("elbv2", region_name=REGION)
    target_group = elbv2.describe_target_groups(TargetGroupArns=[deployed.deployment.target_group_arn])[
        "TargetGroups"
    ][0]
    assert (target_group["Protocol"], target_group["Port"], target_group["HealthCheckProtocol"]) == (
        "TCP",
        6443,
        "TCP",
    )
    attributes = elbv2.describe_target_group_attributes(TargetGroupArn=deployed.deployment.target_group_arn)
    values = {a["Key"]: a["Value"] for a in attributes["Attributes"]}
    assert values["preserve_client_ip.enabled"] == "false"
    listeners = elbv2.describe_listeners(LoadBalancerArn=deployed.deployment.load_balancer_arn)["Listeners"]
    assert [(listener["Protocol"], listener["Port"]) for listener in listeners] == [("TCP", 6443)]


def test_deploy_writes_documents_and_a_valid_config(deployed):
    ssm = boto3.client("ssm", region_name=REGION)
    for key in deployed.spec.documents:
        document = ssm.get_document(Name=f"kcluster-demo-{key}")
        assert document["DocumentType"] == "Command"
        assert json.loads(document["Content"]) == document_content(key)
    raw = ssm.get_parameter(Name="/kcluster/demo/config")["Parameter"]["Value"]
    config = ClusterConfig.model_validate_json(raw)
    assert config.control_plane_endpoint == f"{deployed.deployment.load_balancer_dns}:6443"
    assert config.role_of("kcluster-demo-control-plane") == "control-plane"
    assert config.role_of("kcluster-demo-workers") == "worker"
    assert config.documents.by_key("join-worker") == "kcluster-demo-join-worker"


def test_scaling_a_deployed_group_launches_tagged_instances_into_pending_wait(deployed):
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    autoscaling.set_desired_capacity(AutoScalingGroupName="kcluster-demo-workers", DesiredCapacity=3)
    instances = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["kcluster-demo-workers"])[
        "AutoScalingGroups"
    ][0]["Instances"]
    assert [i["LifecycleState"] for i in instances] == ["Pending:Wait"] * 3
    assert len({i["AvailabilityZone"] for i in instances}) == 3  # spread over the three AZs
    ec2 = boto3.client("ec2", region_name=REGION)
    described = ec2.describe_instances(InstanceIds=[i["InstanceId"] for i in instances])
    for reservation in described["Reservations"]:
        for instance in reservation["Instances"]:
            tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
            assert tags[contract.TAG_CLUSTER] == "demo" and tags[contract.TAG_ROLE] == "worker"
    roles = {facts["role"] for facts in deployed.fleet.instances.values()}
    assert roles == {"worker"}


def test_launch_templates_use_the_image_the_public_parameter_names(deployed):
    ssm = boto3.client("ssm", region_name=REGION)
    name = UBUNTU_AMI_PARAMETER.format(architecture=deployed.spec.architecture)
    assert ssm.get_parameter(Name=name)["Parameter"]["Value"] == deployed.image_id
    ec2 = boto3.client("ec2", region_name=REGION)
    for template_id in deployed.deployment.launch_template_ids.values():
        (version,) = ec2.describe_launch_template_versions(LaunchTemplateId=template_id)[
            "LaunchTemplateVersions"
        ]
        assert version["LaunchTemplateData"]["ImageId"] == deployed.image_id
