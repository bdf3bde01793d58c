"""What `terraform apply` creates, as one Python description, and its deploy through boto3 (moto).

No Terraform binary can run here, so the twin creates the same infrastructure from `InfraSpec`.
Every setting is data in the spec, never buried in `deploy`, so the contract test can compare the
spec with what terraform/ declares (ASG and hook settings, tags, documents, config keys).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3

from kcluster import contract
from kcluster.config import ClusterConfig, CniConfig, Timeouts
from twin.account import ACCOUNT_ID, REGION

DOCUMENTS_JSON = "terraform/documents/documents.json"
# terraform/main.tf reads the AMI id from Canonical's public parameter (data "aws_ssm_parameter").
UBUNTU_AMI_PARAMETER = (
    "/aws/service/canonical/ubuntu/server/24.04/stable/current/{architecture}/hvm/ebs-gp3/ami-id"
)
API_PORT = 6443


@dataclass(frozen=True)
class LifecycleHookSpec:
    name: str
    transition: str
    default_result: str
    heartbeat_timeout: int = 900
    notification_metadata: str | None = None


@dataclass(frozen=True)
class SecurityRuleSpec:
    """Ingress: from a CIDR, or from a security group of this spec (by its name), or from itself."""

    protocol: str
    from_port: int
    to_port: int
    description: str
    cidr: str | None = None
    source_group: str | None = None


@dataclass(frozen=True)
class SecurityGroupSpec:
    name: str
    description: str
    ingress: tuple[SecurityRuleSpec, ...]


@dataclass(frozen=True)
class NodeGroupSpec:
    asg_name: str
    role: str
    min_size: int
    max_size: int
    desired_capacity: int
    instance_type: str
    launch_template_name: str
    security_groups: tuple[str, ...]
    tags: dict[str, str]
    lifecycle_hooks: tuple[LifecycleHookSpec, ...]
    health_check_type: str = "EC2"
    health_check_grace_period: int = 300
    attach_api_target_group: bool = False
    root_volume_gib: int = 50
    # IMDSv2 only, one hop: a pod behind the node's network namespace cannot reach the metadata.
    metadata_hop_limit: int = 1

    def asg_tags(self) -> list[dict[str, Any]]:
        """The group's tags as CreateAutoScalingGroup takes them: all propagated at launch."""
        return [{"Key": key, "Value": value, "PropagateAtLaunch": True} for key, value in self.tags.items()]


@dataclass(frozen=True)
class NlbSpec:
    name: str
    target_group_name: str
    internal: bool = True
    port: int = API_PORT
    protocol: str = "TCP"
    # An instance cannot reach itself through an NLB that preserves the client IP (DESIGN.md 8).
    preserve_client_ip: bool = False
    health_check_protocol: str = "TCP"
    health_check_port: str = str(API_PORT)
    health_check_interval_seconds: int = 10
    healthy_threshold: int = 2
    unhealthy_threshold: int = 2
    cross_zone: bool = True
    deregistration_delay_seconds: int = 30


@dataclass(frozen=True)
class SubnetSpec:
    cidr: str
    availability_zone: str


@dataclass(frozen=True)
class InfraSpec:
    cluster_name: str
    region: str
    vpc_cidr: str
    subnets: tuple[SubnetSpec, ...]
    security_groups: tuple[SecurityGroupSpec, ...]
    control_plane: NodeGroupSpec
    workers: tuple[NodeGroupSpec, ...]
    nlb: NlbSpec
    documents: tuple[str, ...]
    # ClusterConfig settings that are not derived from the resources (endpoint, groups, documents).
    config: dict[str, Any]
    architecture: str = "arm64"
    user_data: str = ""

    @property
    def node_groups(self) -> tuple[NodeGroupSpec, ...]:
        return (self.control_plane, *self.workers)

    def document_name(self, key: str) -> str:
        return contract.document_name(self.cluster_name, key)


def asg_name(cluster: str, role: str, group: str | None = None) -> str:
    if role == contract.ROLE_CONTROL_PLANE:
        return f"kcluster-{cluster}-control-plane"
    return f"kcluster-{cluster}-workers" + (f"-{group}" if group else "")


def default_hooks() -> tuple[LifecycleHookSpec, ...]:
    return (
        LifecycleHookSpec("kcluster-launch", contract.LAUNCH_TRANSITION, "ABANDON", 900),
        LifecycleHookSpec("kcluster-terminate", contract.TERMINATE_TRANSITION, "CONTINUE", 900),
    )


def document_keys() -> tuple[str, ...]:
    from twin.documents import load_documents

    return tuple(load_documents())


def default_spec(cluster_name: str = "demo", control_planes: int = 0, workers: int = 0) -> InfraSpec:
    """The default cluster: desired capacities as given (scenarios raise them after deploy)."""
    vpc_cidr = "10.0.0.0/16"
    cp_sg, node_sg = f"kcluster-{cluster_name}-control-plane", f"kcluster-{cluster_name}-nodes"
    security_groups = (
        SecurityGroupSpec(
            name=node_sg,
            description="every kcluster node: kubelet, CNI and node-to-node traffic",
            ingress=(
                SecurityRuleSpec("-1", 0, 0, "all traffic between the cluster's nodes", source_group=node_sg),
                SecurityRuleSpec("tcp", 10250, 10250, "kubelet API from the VPC", cidr=vpc_cidr),
            ),
        ),
        SecurityGroupSpec(
            name=cp_sg,
            description="control planes: API server through the NLB, etcd between control planes",
            ingress=(
                SecurityRuleSpec("tcp", API_PORT, API_PORT, "API server (NLB and nodes)", cidr=vpc_cidr),
                SecurityRuleSpec("tcp", 2379, 2380, "etcd between control planes", source_group=cp_sg),
            ),
        ),
    )

    def tags(role: str) -> dict[str, str]:
        return {
            # Instances are named after their group, as Terraform's ASG tags do.
            "Name": asg_name(cluster_name, role),
            contract.TAG_CLUSTER: cluster_name,
            contract.TAG_ROLE: role,
        }

    control_plane = NodeGroupSpec(
        asg_name=asg_name(cluster_name, contract.ROLE_CONTROL_PLANE),
        role=contract.ROLE_CONTROL_PLANE,
        min_size=0,
        max_size=5,
        desired_capacity=control_planes,
        instance_type="t4g.medium",
        launch_template_name=f"kcluster-{cluster_name}-control-plane",
        security_groups=(node_sg, cp_sg),
        tags=tags(contract.ROLE_CONTROL_PLANE),
        lifecycle_hooks=default_hooks(),
        attach_api_target_group=True,
    )
    worker_group = NodeGroupSpec(
        asg_name=asg_name(cluster_name, contract.ROLE_WORKER),
        role=contract.ROLE_WORKER,
        min_size=0,
        max_size=10,
        desired_capacity=workers,
        instance_type="t4g.medium",
        launch_template_name=f"kcluster-{cluster_name}-workers",
        security_groups=(node_sg,),
        tags=tags(contract.ROLE_WORKER),
        lifecycle_hooks=default_hooks(),
    )
    defaults = ClusterConfig.model_fields
    config = {
        "kubernetes_version": defaults["kubernetes_version"].default,
        "pod_cidr": defaults["pod_cidr"].default,
        "service_cidr": defaults["service_cidr"].default,
        "cni": CniConfig().model_dump(),
        "timeouts": Timeouts().model_dump(),
        "join_token_ttl": defaults["join_token_ttl"].default,
        "max_attempts": defaults["max_attempts"].default,
        "worker_batch_size": defaults["worker_batch_size"].default,
    }
    return InfraSpec(
        cluster_name=cluster_name,
        region=REGION,
        vpc_cidr=vpc_cidr,
        subnets=(
            SubnetSpec("10.0.0.0/20", f"{REGION}a"),
            SubnetSpec("10.0.16.0/20", f"{REGION}b"),
            SubnetSpec("10.0.32.0/20", f"{REGION}c"),
        ),
        security_groups=security_groups,
        control_plane=control_plane,
        workers=(worker_group,),
        # Load balancer and target group names stop at 32 characters; Terraform uses the "kc-" prefix too.
        nlb=NlbSpec(name=f"kc-{cluster_name}"[:32], target_group_name=f"kc-{cluster_name}-api"[:32]),
        documents=document_keys(),
        config=config,
    )


@dataclass
class Deployment:
    """Ids of what deploy created, for the twin and the CLI."""

    spec: InfraSpec
    vpc_id: str = ""
    subnet_ids: list[str] = field(default_factory=list)
    security_group_ids: dict[str, str] = field(default_factory=dict)
    load_balancer_arn: str = ""
    load_balancer_dns: str = ""
    target_group_arn: str = ""
    launch_template_ids: dict[str, str] = field(default_factory=dict)
    document_names: dict[str, str] = field(default_factory=dict)
    config_parameter: str = ""
    config: ClusterConfig | None = None
    kms_key_arn: str = ""
    ssm_transfer_bucket: str = ""
    backup_bucket: str = ""
    # What AWS named what the module creates (Terraform address + attribute -> value), for the twin's
    # reading of the module (its IAM policies).
    known_attributes: dict[tuple[str, ...], str] = field(default_factory=dict)


def _create_secrets_key(spec: InfraSpec, out: Deployment) -> str:
    """The cluster's own key for its SecureStrings, with the key policy terraform/kms.tf renders."""
    from twin.iam import nodes

    kms = boto3.client("kms", region_name=spec.region)
    inputs = nodes.module_inputs(
        spec.cluster_name, ACCOUNT_ID, spec.region, out.vpc_id, out.subnet_ids, out.known_attributes
    )
    key = kms.create_key(
        Description=f"kcluster {spec.cluster_name}: SecureString parameters",
        Policy=json.dumps(nodes.kms_key_policy(inputs)),
    )["KeyMetadata"]
    kms.enable_key_rotation(KeyId=key["KeyId"])
    kms.create_alias(AliasName=f"alias/kcluster-{spec.cluster_name}", TargetKeyId=key["KeyId"])
    out.known_attributes[("aws_kms_key", "secrets", "0", "arn")] = key["Arn"]
    return key["Arn"]


def _create_transfer_bucket(spec: InfraSpec, tags: list[dict[str, str]]) -> str:
    """The bucket terraform/operator.tf makes for Ansible's Session Manager file transfers: private,
    TLS-only, SSE-S3, objects expiring after a day. Named as Terraform's bucket_prefix names it."""
    s3 = boto3.client("s3", region_name=spec.region)
    # Terraform appends a 26-digit unique suffix to the prefix.
    name = f"kc-{spec.cluster_name}-20261202000000000000000001"
    s3.create_bucket(Bucket=name)
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_bucket_lifecycle_configuration(
        Bucket=name,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "transfers-expire",
                    "Status": "Enabled",
                    "Filter": {},
                    "Expiration": {"Days": 1},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                }
            ]
        },
    )
    tls_only = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "TlsOnly",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }
    s3.put_bucket_policy(Bucket=name, Policy=json.dumps(tls_only))
    s3.put_bucket_tagging(
        Bucket=name, Tagging={"TagSet": [*tags, {"Key": "kcluster:purpose", "Value": "ssm-transfer"}]}
    )
    return name


def cluster_config(
    spec: InfraSpec,
    load_balancer_dns: str,
    target_group_arn: str,
    kms_key_arn: str | None = None,
    ssm_transfer_bucket: str | None = None,
    backup_bucket: str | None = None,
) -> ClusterConfig:
    """The /kcluster/<c>/config value, validated by the product's own model."""
    documents = {key.replace("-", "_"): spec.document_name(key) for key in spec.documents}
    return ClusterConfig.model_validate(
        {
            **spec.config,
            "cluster_name": spec.cluster_name,
            "control_plane_endpoint": f"{load_balancer_dns}:{spec.nlb.port}",
            "node_groups": [{"asg_name": g.asg_name, "role": g.role} for g in spec.node_groups],
            "documents": documents,
            "api_target_group_arn": target_group_arn,
            "kms_key_arn": kms_key_arn,
            "ssm_transfer_bucket": ssm_transfer_bucket,
            "backup_bucket": backup_bucket,
        }
    )


def deploy(spec: InfraSpec, *, document_content: Callable[[str], dict] | None = None) -> Deployment:
    """Create everything `terraform apply` would, through boto3 against moto."""
    if document_content is None:
        from twin.documents import document_content
    region = spec.region
    ec2 = boto3.client("ec2", region_name=region)
    elbv2 = boto3.client("elbv2", region_name=region)
    autoscaling = boto3.client("autoscaling", region_name=region)
    ssm = boto3.client("ssm", region_name=region)
    out = Deployment(spec=spec)
    cluster_tags = [{"Key": contract.TAG_CLUSTER, "Value": spec.cluster_name}]

    def tagged(resource_type: str, name: str) -> list[dict[str, Any]]:
        return [{"ResourceType": resource_type, "Tags": [*cluster_tags, {"Key": "Name", "Value": name}]}]

    prefix = f"kcluster-{spec.cluster_name}"
    out.vpc_id = ec2.create_vpc(CidrBlock=spec.vpc_cidr, TagSpecifications=tagged("vpc", prefix))["Vpc"][
        "VpcId"
    ]
    ec2.modify_vpc_attribute(VpcId=out.vpc_id, EnableDnsHostnames={"Value": True})
    gateway = ec2.create_internet_gateway(TagSpecifications=tagged("internet-gateway", prefix))
    gateway_id = gateway["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=gateway_id, VpcId=out.vpc_id)
    route_table = ec2.create_route_table(VpcId=out.vpc_id, TagSpecifications=tagged("route-table", prefix))
    route_table_id = route_table["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=route_table_id, DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway_id)
    for subnet in spec.subnets:
        subnet_id = ec2.create_subnet(
            VpcId=out.vpc_id,
            CidrBlock=subnet.cidr,
            AvailabilityZone=subnet.availability_zone,
            TagSpecifications=tagged("subnet", f"{prefix}-{subnet.availability_zone}"),
        )["Subnet"]["SubnetId"]
        ec2.modify_subnet_attribute(SubnetId=subnet_id, MapPublicIpOnLaunch={"Value": True})
        ec2.associate_route_table(RouteTableId=route_table_id, SubnetId=subnet_id)
        out.subnet_ids.append(subnet_id)

    for group in spec.security_groups:
        out.security_group_ids[group.name] = ec2.create_security_group(
            GroupName=group.name,
            Description=group.description,
            VpcId=out.vpc_id,
            TagSpecifications=tagged("security-group", group.name),
        )["GroupId"]
    for group in spec.security_groups:
        ec2.authorize_security_group_ingress(
            GroupId=out.security_group_ids[group.name],
            IpPermissions=[_permission(rule, out.security_group_ids) for rule in group.ingress],
        )

    nlb = spec.nlb
    balancer = elbv2.create_load_balancer(
        Name=nlb.name,
        Type="network",
        Scheme="internal" if nlb.internal else "internet-facing",
        Subnets=out.subnet_ids,
        Tags=cluster_tags,
    )["LoadBalancers"][0]
    out.load_balancer_arn, out.load_balancer_dns = balancer["LoadBalancerArn"], balancer["DNSName"]
    elbv2.modify_load_balancer_attributes(
        LoadBalancerArn=out.load_balancer_arn,
        Attributes=[{"Key": "load_balancing.cross_zone.enabled", "Value": str(nlb.cross_zone).lower()}],
    )
    out.target_group_arn = elbv2.create_target_group(
        Name=nlb.target_group_name,
        Protocol=nlb.protocol,
        Port=nlb.port,
        VpcId=out.vpc_id,
        TargetType="instance",
        HealthCheckProtocol=nlb.health_check_protocol,
        HealthCheckPort=nlb.health_check_port,
        HealthCheckIntervalSeconds=nlb.health_check_interval_seconds,
        HealthyThresholdCount=nlb.healthy_threshold,
        UnhealthyThresholdCount=nlb.unhealthy_threshold,
        Tags=cluster_tags,
    )["TargetGroups"][0]["TargetGroupArn"]
    elbv2.modify_target_group_attributes(
        TargetGroupArn=out.target_group_arn,
        Attributes=[
            {"Key": "preserve_client_ip.enabled", "Value": str(nlb.preserve_client_ip).lower()},
            {"Key": "deregistration_delay.timeout_seconds", "Value": str(nlb.deregistration_delay_seconds)},
        ],
    )
    elbv2.create_listener(
        LoadBalancerArn=out.load_balancer_arn,
        Protocol=nlb.protocol,
        Port=nlb.port,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": out.target_group_arn}],
    )

    for key in spec.documents:
        name = spec.document_name(key)
        ssm.create_document(
            Name=name,
            Content=json.dumps(document_content(key)),
            DocumentType="Command",
            DocumentFormat="JSON",
            Tags=cluster_tags,
        )
        out.document_names[key] = name
    # The key's policy names the backup bucket: what AWS will name it is known first.
    from twin.backup_bucket import backup_bucket_known, create_backup_bucket
    from twin.iam import nodes

    out.known_attributes |= backup_bucket_known(spec.cluster_name)
    out.kms_key_arn = _create_secrets_key(spec, out)
    out.backup_bucket = create_backup_bucket(
        spec.region,
        cluster_tags,
        nodes.module_inputs(
            spec.cluster_name, ACCOUNT_ID, spec.region, out.vpc_id, out.subnet_ids, out.known_attributes
        ),
        out.kms_key_arn,
    )
    out.ssm_transfer_bucket = _create_transfer_bucket(spec, cluster_tags)
    out.config = cluster_config(
        spec,
        out.load_balancer_dns,
        out.target_group_arn,
        out.kms_key_arn,
        out.ssm_transfer_bucket,
        backup_bucket=out.backup_bucket,
    )
    out.config_parameter = contract.config_parameter_name(spec.cluster_name)
    ssm.put_parameter(
        Name=out.config_parameter, Value=out.config.model_dump_json(), Type="String", Tags=cluster_tags
    )

    image_id = ssm.get_parameter(Name=UBUNTU_AMI_PARAMETER.format(architecture=spec.architecture))[
        "Parameter"
    ]["Value"]
    for group in spec.node_groups:
        out.launch_template_ids[group.asg_name] = ec2.create_launch_template(
            LaunchTemplateName=group.launch_template_name,
            LaunchTemplateData={
                "ImageId": image_id,
                "InstanceType": group.instance_type,
                "SecurityGroupIds": [out.security_group_ids[name] for name in group.security_groups],
                "UserData": spec.user_data,
                "MetadataOptions": {
                    "HttpTokens": "required",
                    "HttpPutResponseHopLimit": group.metadata_hop_limit,
                },
                "BlockDeviceMappings": [
                    {
                        "DeviceName": "/dev/sda1",
                        "Ebs": {"VolumeSize": group.root_volume_gib, "VolumeType": "gp3"},
                    }
                ],
                "TagSpecifications": [
                    {
                        "ResourceType": "instance",
                        "Tags": [{"Key": k, "Value": v} for k, v in group.tags.items()],
                    }
                ],
            },
        )["LaunchTemplate"]["LaunchTemplateId"]
        hooks = [_hook_request(hook) for hook in group.lifecycle_hooks]
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=group.asg_name,
            LaunchTemplate={"LaunchTemplateName": group.launch_template_name, "Version": "$Latest"},
            MinSize=group.min_size,
            MaxSize=group.max_size,
            DesiredCapacity=0,
            VPCZoneIdentifier=",".join(out.subnet_ids),
            HealthCheckType=group.health_check_type,
            HealthCheckGracePeriod=group.health_check_grace_period,
            TargetGroupARNs=[out.target_group_arn] if group.attach_api_target_group else [],
            LifecycleHookSpecificationList=hooks,
            Tags=group.asg_tags(),
        )
        # moto drops LifecycleHookSpecificationList; Terraform's initial_lifecycle_hook puts them anyway.
        for hook in hooks:
            autoscaling.put_lifecycle_hook(AutoScalingGroupName=group.asg_name, **hook)
        if group.desired_capacity:
            autoscaling.set_desired_capacity(
                AutoScalingGroupName=group.asg_name, DesiredCapacity=group.desired_capacity
            )
    return out


def _hook_request(hook: LifecycleHookSpec) -> dict[str, Any]:
    request: dict[str, Any] = {
        "LifecycleHookName": hook.name,
        "LifecycleTransition": hook.transition,
        "HeartbeatTimeout": hook.heartbeat_timeout,
        "DefaultResult": hook.default_result,
    }
    if hook.notification_metadata:
        request["NotificationMetadata"] = hook.notification_metadata
    return request


def _permission(rule: SecurityRuleSpec, group_ids: dict[str, str]) -> dict[str, Any]:
    permission: dict[str, Any] = {"IpProtocol": rule.protocol}
    if rule.protocol != "-1":
        permission.update(FromPort=rule.from_port, ToPort=rule.to_port)
    if rule.cidr:
        permission["IpRanges"] = [{"CidrIp": rule.cidr, "Description": rule.description}]
    if rule.source_group:
        permission["UserIdGroupPairs"] = [
            {"GroupId": group_ids[rule.source_group], "Description": rule.description}
        ]
    return permission


def publish_public_ubuntu_ami(region: str, architecture: str = "arm64") -> str:
    """What AWS and Canonical provide in every account: an Ubuntu 24.04 image and the public parameter
    naming it. moto knows neither (its bundled catalogue, which the twin does not load, has no such
    parameter), and the parameter path is reserved to AWS, so it goes into moto's SSM backend directly.
    The image is registered in the twin's account (Canonical's owner id cannot be set through the API)."""
    from moto.ssm.models import Parameter, ssm_backends

    image_id = boto3.client("ec2", region_name=region).register_image(
        Name=f"ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-{architecture}-server-20260101",
        Architecture="arm64" if architecture == "arm64" else "x86_64",
        RootDeviceName="/dev/sda1",
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8, "VolumeType": "gp3"}}],
        VirtualizationType="hvm",
    )["ImageId"]
    backend = ssm_backends[ACCOUNT_ID][region]
    name = UBUNTU_AMI_PARAMETER.format(architecture=architecture)
    backend._parameters[name].append(
        Parameter(
            account_id=ACCOUNT_ID,
            name=name,
            value=image_id,
            parameter_type="String",
            description=None,
            allowed_pattern=None,
            keyid=None,
            last_modified_date=time.time(),
            version=1,
            data_type="aws:ec2:image",
        )
    )
    return image_id
