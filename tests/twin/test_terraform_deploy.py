"""The twin's apply of Terraform's plan: what describe calls show afterwards is what Terraform planned,
with AWS's own ids where the plan could not know them."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from types import SimpleNamespace

import boto3
import pytest

from kcluster import contract
from kcluster.config import ClusterConfig
from tests.twin.conftest import REGION, auto_scaling
from twin.aws import lifecycle
from twin.iam import nodes
from twin.terraform import deploy
from twin.terraform.deployment import deploy_module
from twin.terraform.documents import document_content
from twin.terraform.network import UBUNTU_AMI_PARAMETER
from twin.terraform.plan import Planned
from twin.terraform.resolve import Resolver, UnresolvedValue

GROUPS = {"control_plane": contract.ROLE_CONTROL_PLANE, "worker": contract.ROLE_WORKER}


@pytest.fixture
def deployed(twin: SimpleNamespace) -> Iterator[SimpleNamespace]:
    twin.lifecycle = auto_scaling(twin)
    undo = lifecycle.install(twin.lifecycle)
    twin.deployment = deploy_module("demo")
    twin.planned = twin.deployment.planned
    try:
        yield twin
    finally:
        undo()


def _asg(deployed: SimpleNamespace, key: str) -> dict:
    return deployed.planned.resource(f'aws_autoscaling_group.node["{key}"]')


@pytest.mark.parametrize("key", sorted(GROUPS))
def test_groups_have_the_planned_hooks_tags_and_settings(deployed, key):
    planned = _asg(deployed, key)
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    described = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[planned["name"]])[
        "AutoScalingGroups"
    ][0]
    # Capacity is the scenario's: every twin starts empty (deploy.auto_scaling_group says why).
    assert (described["MinSize"], described["MaxSize"], described["DesiredCapacity"]) == (
        0,
        planned["max_size"],
        0,
    )
    assert described["HealthCheckType"] == planned["health_check_type"] == "EC2"
    assert described["HealthCheckGracePeriod"] == planned["health_check_grace_period"]
    tags = {t["Key"]: (t["Value"], t["PropagateAtLaunch"]) for t in described["Tags"]}
    assert tags == {t["key"]: (t["value"], t["propagate_at_launch"]) for t in planned["tag"]}
    assert tags[contract.TAG_ROLE] == (GROUPS[key], True)
    assert sorted(described["VPCZoneIdentifier"].split(",")) == sorted(deployed.deployment.subnet_ids)
    targets = [deployed.deployment.target_group_arn] if key == "control_plane" else []
    assert described["TargetGroupARNs"] == targets
    hooks = autoscaling.describe_lifecycle_hooks(AutoScalingGroupName=planned["name"])["LifecycleHooks"]
    assert sorted(
        (h["LifecycleHookName"], h["LifecycleTransition"], h["DefaultResult"], h["HeartbeatTimeout"])
        for h in hooks
    ) == sorted(
        (h["name"], h["lifecycle_transition"], h["default_result"], h["heartbeat_timeout"])
        for h in planned["initial_lifecycle_hook"]
    )


def test_the_api_load_balancer_is_as_planned(deployed):
    elbv2 = boto3.client("elbv2", region_name=REGION)
    arn = deployed.deployment.target_group_arn
    target_group = elbv2.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"][0]
    assert (target_group["Protocol"], target_group["Port"], target_group["HealthCheckProtocol"]) == (
        "TCP",
        6443,
        "TCP",
    )
    values = {
        a["Key"]: a["Value"] for a in elbv2.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
    }
    assert values["preserve_client_ip.enabled"] == "false"
    assert values["deregistration_delay.timeout_seconds"] == "30"
    balancer = elbv2.describe_load_balancers(LoadBalancerArns=[deployed.deployment.load_balancer_arn])
    assert balancer["LoadBalancers"][0]["Scheme"] == "internal"
    listeners = elbv2.describe_listeners(LoadBalancerArn=deployed.deployment.load_balancer_arn)["Listeners"]
    assert [(listener["Protocol"], listener["Port"]) for listener in listeners] == [("TCP", 6443)]


def test_documents_and_config_are_terraforms_with_aws_ids(deployed):
    ssm = boto3.client("ssm", region_name=REGION)
    for key in ("init", "join-worker", "drain-remove"):
        planned = deployed.planned.resource(f'aws_ssm_document.node["{key}"]')
        document = ssm.get_document(Name=f"kcluster-demo-{key}")
        assert document["DocumentType"] == "Command"
        assert document["Content"] == planned["content"]
        # The node-script tests run the same content.
        assert json.loads(document["Content"]) == document_content(key)
    config = ClusterConfig.model_validate_json(
        ssm.get_parameter(Name="/kcluster/demo/config")["Parameter"]["Value"]
    )
    assert config.control_plane_endpoint == f"{deployed.deployment.load_balancer_dns}:6443"
    assert config.api_target_group_arn == deployed.deployment.target_group_arn
    key_arn = boto3.client("kms", region_name=REGION).describe_key(KeyId="alias/kcluster-demo")[
        "KeyMetadata"
    ]["Arn"]
    assert config.kms_key_arn == key_arn
    boto3.client("s3", region_name=REGION).head_bucket(Bucket=config.ssm_transfer_bucket)
    assert config.role_of("kcluster-demo-control-plane") == "control-plane"
    assert config.documents.by_key("join-worker") == "kcluster-demo-join-worker"


@pytest.mark.parametrize("key", sorted(GROUPS))
def test_launch_templates_carry_the_rendered_user_data_and_the_public_image(deployed, key):
    planned = deployed.planned.resource(f'aws_launch_template.node["{key}"]')
    ec2 = boto3.client("ec2", region_name=REGION)
    template_id = deployed.deployment.launch_template_ids[_asg(deployed, key)["name"]]
    (version,) = ec2.describe_launch_template_versions(LaunchTemplateId=template_id)["LaunchTemplateVersions"]
    data = version["LaunchTemplateData"]
    assert data["UserData"] == planned["user_data"]
    script = base64.b64decode(data["UserData"]).decode()
    assert f"NODE_ROLE='{GROUPS[key]}'" in script and "CLUSTER_NAME='demo'" in script
    ami = boto3.client("ssm", region_name=REGION).get_parameter(
        Name=UBUNTU_AMI_PARAMETER.format(architecture="arm64")
    )
    assert data["ImageId"] == ami["Parameter"]["Value"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    (group,) = ec2.describe_security_groups(GroupIds=data["SecurityGroupIds"])["SecurityGroups"]
    planned_group = "control_plane" if key == "control_plane" else "worker"
    assert group["GroupName"] == deployed.planned.resource(f"aws_security_group.{planned_group}")["name"]


def test_security_groups_hold_only_the_planned_rules(deployed):
    ec2 = boto3.client("ec2", region_name=REGION)
    planned = deployed.planned.resource("aws_security_group.worker")
    (group,) = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [planned["name"]]}])[
        "SecurityGroups"
    ]
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group["GroupId"]]}])
    egress = [r for r in rules["SecurityGroupRules"] if r["IsEgress"]]
    planned_egress = [
        values
        for values in deployed.deployment.applied.of_type("aws_vpc_security_group_egress_rule").values()
        if values["security_group_id"] == group["GroupId"]
    ]
    # AWS's allow-all egress of a new group is revoked, as the provider does: only the planned rules.
    assert len(egress) == len(planned_egress) > 0


def test_node_roles_are_the_rendered_policies_with_aws_arns(deployed):
    roles = nodes.node_roles(deployed.deployment.applied)
    name, policies, boundary = roles[contract.ROLE_WORKER]
    assert name == "kcluster-demo-worker"
    inline = json.loads(deployed.planned.resource('aws_iam_role_policy.node["worker"]')["policy"])
    assert [s.get("Sid") for s in policies[0].document["Statement"]] == [
        s.get("Sid") for s in inline["Statement"]
    ]
    assert "AmazonSSMManagedInstanceCore" in policies[1].name
    assert boundary is None
    iam = boto3.client("iam", region_name=REGION)
    stored = iam.get_role_policy(RoleName=name, PolicyName="kcluster-node")["PolicyDocument"]
    assert stored == policies[0].document


def test_scaling_a_deployed_group_launches_tagged_instances_into_pending_wait(deployed):
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    autoscaling.set_desired_capacity(AutoScalingGroupName="kcluster-demo-workers", DesiredCapacity=3)
    instances = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["kcluster-demo-workers"])[
        "AutoScalingGroups"
    ][0]["Instances"]
    assert [i["LifecycleState"] for i in instances] == ["Pending:Wait"] * 3
    assert len({i["AvailabilityZone"] for i in instances}) == 3  # spread over the three AZs
    roles = {facts["role"] for facts in deployed.fleet.instances.values()}
    assert roles == {"worker"}


# --- the deploy's own rules, on the plan and on made-up ones ------------------------------------------


def test_every_planned_type_is_deployed_or_listed(deployed):
    assert deploy.unknown_types(deployed.planned) == []


def test_an_unknown_planned_type_fails_the_deploy():
    planned = Planned(
        plan={"resource_changes": [], "configuration": {"root_module": {}}},
        state={
            "values": {
                "root_module": {
                    "resources": [
                        {"address": "aws_shiny.thing", "mode": "managed", "type": "aws_shiny", "values": {}}
                    ]
                }
            }
        },
    )
    with pytest.raises(NotImplementedError, match="aws_shiny"):
        deploy.apply(planned, Resolver(set()))


def test_a_stand_in_used_before_aws_named_it_differently_fails():
    resolver = Resolver({"sg-0stand1n0000000001"})
    used = resolver.resolve({"ids": ["sg-0stand1n0000000001"]}, "aws_thing.early")
    assert used == {"ids": ["sg-0stand1n0000000001"]}
    resolver.learn("sg-0stand1n0000000001", "sg-0realid000000000")
    with pytest.raises(UnresolvedValue, match=r"aws_thing\.early"):
        resolver.verify()
    assert resolver.resolve("x sg-0stand1n0000000001 y", "later") == "x sg-0realid000000000 y"


def test_a_stand_in_that_turned_out_to_be_awss_value_passes():
    resolver = Resolver({"arn:aws:ssm:us-east-1:123456789012:parameter/kcluster/demo/config"})
    resolver.resolve("arn:aws:ssm:us-east-1:123456789012:parameter/kcluster/demo/config", "a policy")
    resolver.learn(
        "arn:aws:ssm:us-east-1:123456789012:parameter/kcluster/demo/config",
        "arn:aws:ssm:us-east-1:123456789012:parameter/kcluster/demo/config",
    )
    resolver.verify()


def test_a_target_group_attachment_registers_its_target(deployed):
    # GIVEN an instance (the module may come to attach targets itself: the deployer is ready for it)
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    autoscaling.set_desired_capacity(AutoScalingGroupName="kcluster-demo-workers", DesiredCapacity=1)
    (instance,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["kcluster-demo-workers"])[
        "AutoScalingGroups"
    ][0]["Instances"]
    arn = deployed.deployment.target_group_arn

    # WHEN an aws_lb_target_group_attachment is deployed
    deploy.DEPLOYERS["aws_lb_target_group_attachment"](
        deploy.Clients(), {"target_group_arn": arn, "target_id": instance["InstanceId"], "port": 6443}
    )

    # THEN the target group holds it
    health = boto3.client("elbv2", region_name=REGION).describe_target_health(TargetGroupArn=arn)
    assert [(t["Target"]["Id"], t["Target"]["Port"]) for t in health["TargetHealthDescriptions"]] == [
        (instance["InstanceId"], 6443)
    ]
