"""The twin's `terraform apply`: every resource Terraform planned, created in moto in dependency order.

One small function per resource type (DEPLOYERS), one per data source type read from the world
(READERS); what the twin does not create is listed with the reason (NOT_DEPLOYED, NOT_READ). A planned
type in none of them fails the deploy (and tests/iac checks it on the plan), so a resource added to the
module is never silently missing from the twin. Each function gets the resource's applied values with
every stand-in already replaced by the real value (twin/terraform/resolve.py) and returns the values AWS
gave what it created (id, ARN, ...), which later resources then receive.
"""

from __future__ import annotations

import base64
import graphlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3

from twin.account import ACCOUNT_ID, REGION
from twin.terraform.plan import Planned
from twin.terraform.resolve import Resolver


@dataclass
class Clients:
    """One boto3 client per service the deploy calls (the operator's, before IAM is enforced)."""

    _made: dict[str, Any] = field(default_factory=dict)

    def __call__(self, service: str) -> Any:
        if service not in self._made:
            self._made[service] = boto3.client(service, region_name=REGION)
        return self._made[service]


Deployer = Callable[[Clients, dict[str, Any]], dict[str, Any]]


def _tags(values: dict[str, Any]) -> dict[str, str]:
    return dict(values.get("tags") or {})


def _tag_list(values: dict[str, Any]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in _tags(values).items()]


def _one(values: dict[str, Any], block: str) -> dict[str, Any]:
    """A nested block of at most one element (Terraform holds it as a list)."""
    found = values.get(block) or [{}]
    first: dict[str, Any] = found[0]
    return first


# --- EC2 -------------------------------------------------------------------------------------------


def security_group(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
    ec2 = aws("ec2")
    group_id = ec2.create_security_group(
        GroupName=values["name"],
        Description=values["description"],
        VpcId=values["vpc_id"],
        TagSpecifications=[{"ResourceType": "security-group", "Tags": _tag_list(values)}],
    )["GroupId"]
    # The provider revokes the allow-all egress rule AWS adds to a new group: only declared rules remain.
    ec2.revoke_security_group_egress(
        GroupId=group_id, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    )
    arn = f"arn:aws:ec2:{REGION}:{ACCOUNT_ID}:security-group/{group_id}"
    return {"id": group_id, "arn": arn, "owner_id": ACCOUNT_ID}


def _rule_permission(values: dict[str, Any]) -> dict[str, Any]:
    permission: dict[str, Any] = {"IpProtocol": values["ip_protocol"]}
    if values.get("from_port") is not None:
        permission.update(FromPort=values["from_port"], ToPort=values["to_port"])
    elif values["ip_protocol"] != "-1":
        # A protocol without ports (4: IP in IP): AWS ignores them, moto needs them (-1, as for all).
        permission.update(FromPort=-1, ToPort=-1)
    description = {"Description": values["description"]} if values.get("description") else {}
    if values.get("cidr_ipv4"):
        permission["IpRanges"] = [{"CidrIp": values["cidr_ipv4"], **description}]
    if values.get("referenced_security_group_id"):
        permission["UserIdGroupPairs"] = [{"GroupId": values["referenced_security_group_id"], **description}]
    return permission


def _security_group_rule(direction: str) -> Deployer:
    def deploy(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
        authorize = getattr(aws("ec2"), f"authorize_security_group_{direction}")
        rules = authorize(
            GroupId=values["security_group_id"],
            IpPermissions=[_rule_permission(values)],
            TagSpecifications=[{"ResourceType": "security-group-rule", "Tags": _tag_list(values)}],
        )["SecurityGroupRules"]
        rule_id = rules[0]["SecurityGroupRuleId"]
        arn = f"arn:aws:ec2:{REGION}:{ACCOUNT_ID}:security-group-rule/{rule_id}"
        return {"id": rule_id, "security_group_rule_id": rule_id, "arn": arn}

    return deploy


def launch_template(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
    metadata = _one(values, "metadata_options")
    data: dict[str, Any] = {
        "ImageId": values["image_id"],
        "InstanceType": values["instance_type"],
        "SecurityGroupIds": list(values.get("vpc_security_group_ids") or []),
        "UserData": values.get("user_data") or "",
        "EbsOptimized": values.get("ebs_optimized") == "true",
        "IamInstanceProfile": {"Arn": _one(values, "iam_instance_profile")["arn"]},
        "MetadataOptions": {
            "HttpEndpoint": metadata.get("http_endpoint") or "enabled",
            "HttpTokens": metadata.get("http_tokens") or "optional",
            "HttpPutResponseHopLimit": metadata.get("http_put_response_hop_limit") or 1,
            "InstanceMetadataTags": metadata.get("instance_metadata_tags") or "disabled",
        },
        "BlockDeviceMappings": [
            _block_device(mapping) for mapping in values.get("block_device_mappings") or []
        ],
        "Monitoring": {"Enabled": bool(_one(values, "monitoring").get("enabled"))},
        "TagSpecifications": [
            {"ResourceType": spec["resource_type"], "Tags": _tag_list(spec)}
            for spec in values.get("tag_specifications") or []
        ],
    }
    template = aws("ec2").create_launch_template(
        LaunchTemplateName=values["name"],
        VersionDescription=values.get("description") or "",
        LaunchTemplateData=data,
        TagSpecifications=[{"ResourceType": "launch-template", "Tags": _tag_list(values)}],
    )["LaunchTemplate"]
    template_id = template["LaunchTemplateId"]
    return {
        "id": template_id,
        "arn": f"arn:aws:ec2:{REGION}:{ACCOUNT_ID}:launch-template/{template_id}",
        "latest_version": template["LatestVersionNumber"],
        "default_version": template["DefaultVersionNumber"],
    }


def _block_device(mapping: dict[str, Any]) -> dict[str, Any]:
    ebs = _one(mapping, "ebs")
    device: dict[str, Any] = {
        "VolumeType": ebs.get("volume_type") or "gp3",
        "VolumeSize": ebs.get("volume_size"),
        "Encrypted": ebs.get("encrypted") == "true",
        "DeleteOnTermination": ebs.get("delete_on_termination") != "false",
    }
    if ebs.get("kms_key_id"):
        device["KmsKeyId"] = ebs["kms_key_id"]
    return {"DeviceName": mapping["device_name"], "Ebs": device}


# --- Elastic Load Balancing ---------------------------------------------------------------------------


def _elb_attributes(attributes: dict[str, Any]) -> list[dict[str, str]]:
    """Attributes as ELB takes them: strings, booleans lower-case; unset ones left at AWS's default."""
    return [
        {"Key": key, "Value": str(value).lower() if isinstance(value, bool) else str(value)}
        for key, value in attributes.items()
        if value is not None
    ]


def load_balancer(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
    elbv2 = aws("elbv2")
    balancer = elbv2.create_load_balancer(
        Name=values["name"],
        Type=values["load_balancer_type"],
        Scheme="internal" if values["internal"] else "internet-facing",
        Subnets=list(values["subnets"]),
        SecurityGroups=list(values.get("security_groups") or []),
        Tags=_tag_list(values),
    )["LoadBalancers"][0]
    arn = balancer["LoadBalancerArn"]
    elbv2.modify_load_balancer_attributes(
        LoadBalancerArn=arn,
        Attributes=_elb_attributes(
            {
                "load_balancing.cross_zone.enabled": bool(values.get("enable_cross_zone_load_balancing")),
                "deletion_protection.enabled": bool(values.get("enable_deletion_protection")),
            }
        ),
    )
    return {
        "id": arn,
        "arn": arn,
        "arn_suffix": arn.split(":loadbalancer/", 1)[1],
        "dns_name": balancer["DNSName"],
        "zone_id": balancer.get("CanonicalHostedZoneId"),
    }


def target_group(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
    elbv2 = aws("elbv2")
    check = _one(values, "health_check")
    port = check.get("port") or "traffic-port"
    group = elbv2.create_target_group(
        Name=values["name"],
        Protocol=values["protocol"],
        Port=values["port"],
        VpcId=values["vpc_id"],
        TargetType=values.get("target_type") or "instance",
        HealthCheckProtocol=check.get("protocol") or values["protocol"],
        HealthCheckPort=str(values["port"]) if port == "traffic-port" else str(port),
        HealthCheckIntervalSeconds=check.get("interval") or 30,
        HealthyThresholdCount=check.get("healthy_threshold") or 5,
        UnhealthyThresholdCount=check.get("unhealthy_threshold") or 2,
        Tags=_tag_list(values),
    )["TargetGroups"][0]
    arn = group["TargetGroupArn"]
    elbv2.modify_target_group_attributes(
        TargetGroupArn=arn,
        Attributes=_elb_attributes(
            {
                "preserve_client_ip.enabled": values.get("preserve_client_ip"),
                "deregistration_delay.timeout_seconds": values.get("deregistration_delay"),
            }
        ),
    )
    return {"id": arn, "arn": arn, "arn_suffix": "targetgroup/" + arn.split(":targetgroup/", 1)[1]}


def listener(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
    actions = [
        {"Type": action["type"], "TargetGroupArn": action["target_group_arn"]}
        for action in values["default_action"]
    ]
    arn = aws("elbv2").create_listener(
        LoadBalancerArn=values["load_balancer_arn"],
        Protocol=values["protocol"],
        Port=values["port"],
        DefaultActions=actions,
        Tags=_tag_list(values),
    )["Listeners"][0]["ListenerArn"]
    return {"id": arn, "arn": arn}


def target_group_attachment(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
    target: dict[str, Any] = {"Id": values["target_id"]}
    if values.get("port") is not None:
        target["Port"] = values["port"]
    aws("elbv2").register_targets(TargetGroupArn=values["target_group_arn"], Targets=[target])
    return {"id": f"{values['target_group_arn']}-{values['target_id']}"}


# --- Auto Scaling ------------------------------------------------------------------------------------


def _hook(hook: dict[str, Any]) -> dict[str, Any]:
    request = {
        "LifecycleHookName": hook["name"],
        "LifecycleTransition": hook["lifecycle_transition"],
        "HeartbeatTimeout": hook["heartbeat_timeout"],
        "DefaultResult": hook["default_result"],
    }
    if hook.get("notification_metadata"):
        request["NotificationMetadata"] = hook["notification_metadata"]
    return request


def auto_scaling_group(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
    autoscaling = aws("autoscaling")
    name = values["name"]
    template = _one(values, "launch_template")
    hooks = [_hook(hook) for hook in values.get("initial_lifecycle_hook") or []]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateId": template["id"], "Version": str(template["version"])},
        # Every twin starts empty and its scenario sets the capacity (Twin.set_desired), as an operator
        # does once the functions are deployed: the module's minimum is 1, so this is the one setting the
        # twin does not take from the plan (the planned values stay in the deployment).
        MinSize=0,
        MaxSize=values["max_size"],
        DesiredCapacity=0,
        VPCZoneIdentifier=",".join(values["vpc_zone_identifier"]),
        HealthCheckType=values["health_check_type"],
        HealthCheckGracePeriod=values["health_check_grace_period"],
        DefaultInstanceWarmup=values.get("default_instance_warmup") or 0,
        TargetGroupARNs=list(values.get("target_group_arns") or []),
        LifecycleHookSpecificationList=hooks,
        Tags=[
            {"Key": tag["key"], "Value": tag["value"], "PropagateAtLaunch": tag["propagate_at_launch"]}
            for tag in values.get("tag") or []
        ],
    )
    # moto drops LifecycleHookSpecificationList; the provider's initial_lifecycle_hook puts them anyway.
    for hook in hooks:
        autoscaling.put_lifecycle_hook(AutoScalingGroupName=name, **hook)
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
    return {"id": name, "arn": group["AutoScalingGroupARN"]}


# --- IAM and KMS -------------------------------------------------------------------------------------


def role(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = {
        "RoleName": values["name"],
        "AssumeRolePolicyDocument": values["assume_role_policy"],
        "Description": values.get("description") or "",
        "MaxSessionDuration": values.get("max_session_duration") or 3600,
        "Tags": _tag_list(values),
    }
    if values.get("permissions_boundary"):
        request["PermissionsBoundary"] = values["permissions_boundary"]
    created = aws("iam").create_role(**request)["Role"]
    return {"id": created["RoleName"], "arn": created["Arn"], "unique_id": created["RoleId"]}


def instance_profile(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
    iam = aws("iam")
    profile = iam.create_instance_profile(InstanceProfileName=values["name"], Tags=_tag_list(values))
    iam.add_role_to_instance_profile(InstanceProfileName=values["name"], RoleName=values["role"])
    created = profile["InstanceProfile"]
    return {"id": values["name"], "arn": created["Arn"], "unique_id": created["InstanceProfileId"]}


def role_policy(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
    aws("iam").put_role_policy(
        RoleName=values["role"], PolicyName=values["name"], PolicyDocument=values["policy"]
    )
    return {"id": f"{values['role']}:{values['name']}"}


def role_policy_attachment(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
    """moto holds no AWS managed policies unless it loads all of them (seconds per twin): the attachment
    is checked against the managed policies moto ships, and the twin's IAM reads it from the deployment."""
    from twin.iam.identities import aws_managed_policy

    aws_managed_policy(values["policy_arn"])
    return {"id": f"{values['role']}-{values['policy_arn'].rsplit('/', 1)[-1]}"}


def kms_key(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
    kms = aws("kms")
    key = kms.create_key(
        Description=values.get("description") or "",
        Policy=values["policy"],
        KeyUsage=values.get("key_usage") or "ENCRYPT_DECRYPT",
        Tags=[{"TagKey": key, "TagValue": value} for key, value in _tags(values).items()],
    )["KeyMetadata"]
    if values.get("enable_key_rotation"):
        kms.enable_key_rotation(KeyId=key["KeyId"])
    return {"id": key["KeyId"], "key_id": key["KeyId"], "arn": key["Arn"]}


def kms_alias(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
    aws("kms").create_alias(AliasName=values["name"], TargetKeyId=values["target_key_id"])
    key = aws("kms").describe_key(KeyId=values["target_key_id"])["KeyMetadata"]
    return {
        "id": values["name"],
        "arn": f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:{values['name']}",
        "target_key_arn": key["Arn"],
    }


# --- SSM ---------------------------------------------------------------------------------------------


def ssm_document(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
    created = aws("ssm").create_document(
        Name=values["name"],
        Content=values["content"],
        DocumentType=values["document_type"],
        DocumentFormat=values.get("document_format") or "JSON",
        Tags=_tag_list(values),
    )["DocumentDescription"]
    return {
        "id": values["name"],
        "arn": f"arn:aws:ssm:{REGION}:{ACCOUNT_ID}:document/{values['name']}",
        "hash": created.get("Hash"),
    }


def ssm_parameter(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = {
        "Name": values["name"],
        "Value": values["value"] if values.get("value") is not None else values["insecure_value"],
        "Type": values["type"],
        "Tier": values.get("tier") or "Standard",
        "Tags": _tag_list(values),
    }
    if values.get("description"):
        request["Description"] = values["description"]
    if values.get("key_id"):
        request["KeyId"] = values["key_id"]
    version = aws("ssm").put_parameter(**request)["Version"]
    arn = f"arn:aws:ssm:{REGION}:{ACCOUNT_ID}:parameter{values['name']}"
    return {"id": values["name"], "arn": arn, "version": version}


# --- S3 ----------------------------------------------------------------------------------------------


def bucket(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
    """Named by the provider from bucket_prefix (the real provider makes the name, not S3)."""
    name = values["bucket"]
    s3 = aws("s3")
    s3.create_bucket(Bucket=name)
    if values.get("tags"):
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": _tag_list(values)})
    return {
        "id": name,
        "arn": f"arn:aws:s3:::{name}",
        "bucket_domain_name": f"{name}.s3.amazonaws.com",
        "bucket_regional_domain_name": f"{name}.s3.{REGION}.amazonaws.com",
        "region": REGION,
    }


def bucket_public_access_block(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
    aws("s3").put_public_access_block(
        Bucket=values["bucket"],
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": bool(values.get("block_public_acls")),
            "IgnorePublicAcls": bool(values.get("ignore_public_acls")),
            "BlockPublicPolicy": bool(values.get("block_public_policy")),
            "RestrictPublicBuckets": bool(values.get("restrict_public_buckets")),
        },
    )
    return {"id": values["bucket"]}


def bucket_ownership_controls(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
    rules = [{"ObjectOwnership": rule["object_ownership"]} for rule in values["rule"]]
    aws("s3").put_bucket_ownership_controls(Bucket=values["bucket"], OwnershipControls={"Rules": rules})
    return {"id": values["bucket"]}


def bucket_encryption(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
    rules = []
    for rule in values["rule"]:
        default = _one(rule, "apply_server_side_encryption_by_default")
        by_default = {"SSEAlgorithm": default["sse_algorithm"]}
        if default.get("kms_master_key_id"):
            by_default["KMSMasterKeyID"] = default["kms_master_key_id"]
        entry: dict[str, Any] = {"ApplyServerSideEncryptionByDefault": by_default}
        if rule.get("bucket_key_enabled") is not None:
            entry["BucketKeyEnabled"] = bool(rule["bucket_key_enabled"])
        rules.append(entry)
    aws("s3").put_bucket_encryption(
        Bucket=values["bucket"], ServerSideEncryptionConfiguration={"Rules": rules}
    )
    return {"id": values["bucket"]}


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"ID": rule["id"], "Status": rule["status"], "Filter": {}}
    prefix = _one(rule, "filter").get("prefix")
    if prefix:
        out["Filter"] = {"Prefix": prefix}
    expiration = _one(rule, "expiration")
    if expiration.get("days"):
        out["Expiration"] = {"Days": expiration["days"]}
    noncurrent = _one(rule, "noncurrent_version_expiration")
    if noncurrent.get("noncurrent_days"):
        out["NoncurrentVersionExpiration"] = {"NoncurrentDays": noncurrent["noncurrent_days"]}
    abort = _one(rule, "abort_incomplete_multipart_upload")
    if abort.get("days_after_initiation"):
        out["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": abort["days_after_initiation"]}
    return out


def bucket_lifecycle(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
    aws("s3").put_bucket_lifecycle_configuration(
        Bucket=values["bucket"],
        LifecycleConfiguration={"Rules": [_lifecycle_rule(rule) for rule in values["rule"]]},
    )
    return {"id": values["bucket"]}


def bucket_policy(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
    aws("s3").put_bucket_policy(Bucket=values["bucket"], Policy=values["policy"])
    return {"id": values["bucket"]}


def bucket_versioning(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
    status = _one(values, "versioning_configuration")["status"]
    aws("s3").put_bucket_versioning(Bucket=values["bucket"], VersioningConfiguration={"Status": status})
    return {"id": values["bucket"]}


DEPLOYERS: dict[str, Deployer] = {
    "aws_security_group": security_group,
    "aws_vpc_security_group_ingress_rule": _security_group_rule("ingress"),
    "aws_vpc_security_group_egress_rule": _security_group_rule("egress"),
    "aws_launch_template": launch_template,
    "aws_lb": load_balancer,
    "aws_lb_target_group": target_group,
    "aws_lb_listener": listener,
    "aws_lb_target_group_attachment": target_group_attachment,
    "aws_autoscaling_group": auto_scaling_group,
    "aws_iam_role": role,
    "aws_iam_instance_profile": instance_profile,
    "aws_iam_role_policy": role_policy,
    "aws_iam_role_policy_attachment": role_policy_attachment,
    "aws_kms_key": kms_key,
    "aws_kms_alias": kms_alias,
    "aws_ssm_document": ssm_document,
    "aws_ssm_parameter": ssm_parameter,
    "aws_s3_bucket": bucket,
    "aws_s3_bucket_public_access_block": bucket_public_access_block,
    "aws_s3_bucket_ownership_controls": bucket_ownership_controls,
    "aws_s3_bucket_server_side_encryption_configuration": bucket_encryption,
    "aws_s3_bucket_lifecycle_configuration": bucket_lifecycle,
    "aws_s3_bucket_policy": bucket_policy,
    "aws_s3_bucket_versioning": bucket_versioning,
}

# Resource types the module may plan that the twin does not create, and why.
NOT_DEPLOYED: dict[str, str] = {}


# --- data sources ------------------------------------------------------------------------------------

Reader = Callable[[Clients, dict[str, Any]], dict[str, Any]]


def _same(name: str, planned: Any, real: Any) -> None:
    if planned != real:
        raise ValueError(f"the plan was made for {name} {planned!r}, the twin's world is {real!r}")


def read_region(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
    _same("region", values.get("name"), REGION)
    return {}


def read_caller_identity(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
    _same("account", values["account_id"], ACCOUNT_ID)
    return {}


def read_vpc(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
    vpc = aws("ec2").describe_vpcs(VpcIds=[values["id"]])["Vpcs"][0]
    _same("the VPC's CIDR", values["cidr_block"], vpc["CidrBlock"])
    return {"arn": f"arn:aws:ec2:{REGION}:{ACCOUNT_ID}:vpc/{vpc['VpcId']}"}


def read_subnet(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
    subnet = aws("ec2").describe_subnets(SubnetIds=[values["id"]])["Subnets"][0]
    _same("a subnet's zone", values["availability_zone"], subnet["AvailabilityZone"])
    _same("a subnet's CIDR", values["cidr_block"], subnet["CidrBlock"])
    return {"arn": subnet["SubnetArn"]}


def read_ssm_parameter(aws: Clients, values: dict[str, Any]) -> dict[str, Any]:
    parameter = aws("ssm").get_parameter(Name=values["name"], WithDecryption=True)["Parameter"]
    return {"value": parameter["Value"], "insecure_value": parameter["Value"], "arn": parameter["ARN"]}


READERS: dict[str, Reader] = {
    "aws_region": read_region,
    "aws_caller_identity": read_caller_identity,
    "aws_vpc": read_vpc,
    "aws_subnet": read_subnet,
    "aws_ssm_parameter": read_ssm_parameter,
}

# Data sources whose answer does not depend on the world the twin builds.
NOT_READ: dict[str, str] = {
    "aws_partition": "the partition is aws, in the twin as in the plan",
    "aws_iam_policy_document": "rendered by the provider from its arguments; the JSON reaches AWS only "
    "through the resources that use it, and is resolved there",
}


# --- the apply ---------------------------------------------------------------------------------------


def unknown_types(planned: Planned) -> list[str]:
    """Planned resource and data source types the twin neither deploys nor lists as not deployed."""
    found = set()
    for resource in planned.resources():
        if resource["mode"] == "managed" and resource["type"] not in {*DEPLOYERS, *NOT_DEPLOYED}:
            found.add(resource["type"])
        if resource["mode"] == "data" and resource["type"] not in {*READERS, *NOT_READ}:
            found.add(f"data.{resource['type']}")
    return sorted(found)


def apply_time_attributes(planned: Planned) -> dict[str, set[str]]:
    """address -> the attributes Terraform did not know at plan time and AWS names (no argument sets
    them). A name the provider makes from a `<name>_prefix` argument is the provider's, not AWS's."""
    configured = {
        resource["address"]: set(resource.get("expressions", {}))
        for resource in planned.plan["configuration"]["root_module"].get("resources", [])
    }
    found: dict[str, set[str]] = {}
    for address, change in planned.changes().items():
        if change["actions"] != ["create"]:
            continue
        arguments = configured.get(_base_address(address), set())
        found[address] = {
            name
            for name, unknown in (change.get("after_unknown") or {}).items()
            if unknown is True and name not in arguments and f"{name}_prefix" not in arguments
        }
    return found


def stand_ins(planned: Planned) -> set[str]:
    """The values the provider's apply gave what AWS names (they stand in for AWS's). Not a value the
    plan already knew (an id equal to a configured name), nor a name the provider made from a prefix."""
    attributes = apply_time_attributes(planned)
    found, provider_named = set(), set()
    for resource in planned.resources():
        values = resource["values"]
        for name in attributes.get(resource["address"], ()):
            if isinstance(values.get(name), str):
                found.add(values[name])
        provider_named |= {values[name] for name in ("name", "bucket") if values.get(f"{name}_prefix")}
    known = set(_strings([change.get("after") for change in planned.changes().values()]))
    return found - provider_named - known


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def _base_address(address: str) -> str:
    return address.split("[", 1)[0]


def deploy_order(planned: Planned) -> list[dict[str, Any]]:
    """Resources and data sources, each after everything it depends on (the state's depends_on)."""
    by_base: dict[str, list[dict[str, Any]]] = {}
    for resource in planned.resources():
        by_base.setdefault(_base_address(resource["address"]), []).append(resource)
    graph = graphlib.TopologicalSorter[str]()
    for base, instances in by_base.items():
        graph.add(base, *(dep for instance in instances for dep in instance.get("depends_on", [])))
    ordered = []
    graph.prepare()
    while graph.is_active():
        ready = sorted(graph.get_ready())
        for base in ready:
            ordered.extend(by_base.get(base, []))
        graph.done(*ready)
    return ordered


@dataclass
class Applied:
    """What the twin's apply created: each resource's values as AWS holds them, by address."""

    values: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __getitem__(self, address: str) -> dict[str, Any]:
        return self.values[address]

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {
            address: values
            for address, values in self.values.items()
            if _base_address(address).split(".")[-2] == resource_type and not address.startswith("data.")
        }


def apply(planned: Planned, resolver: Resolver, aws: Clients | None = None) -> Applied:
    """Create every planned resource in moto; `resolver` already knows the network's real ids."""
    unknown = unknown_types(planned)
    if unknown:
        raise NotImplementedError(f"planned types the twin does not deploy and does not list: {unknown}")
    aws = aws or Clients()
    applied = Applied()
    outputs = apply_time_attributes(planned)
    for resource in deploy_order(planned):
        address, resource_type = resource["address"], resource["type"]
        if resource["mode"] == "data":
            reader = READERS.get(resource_type)
            values = resolver.resolve(resource["values"], address)
            real = reader(aws, values) if reader else {}
        elif resource_type in NOT_DEPLOYED:
            continue
        else:
            own = outputs.get(address, set())
            values = _resolved(resolver, resource, address, own)
            real = DEPLOYERS[resource_type](aws, values)
        learn = resolver.learn_read if resource["mode"] == "data" else resolver.learn
        for name, value in real.items():
            learn(resource["values"].get(name), value)
        applied.values[address] = {**values, **real}
    resolver.verify()
    return applied


def _resolved(resolver: Resolver, resource: dict[str, Any], address: str, own: set[str]) -> dict[str, Any]:
    """The resource's arguments and what it was planned with, its own apply-time values left out (the
    deployer returns AWS's)."""
    values = {name: value for name, value in resource["values"].items() if name not in own}
    # Rendered user data travels base64-encoded: what it names is resolved in its text.
    if resource["type"] == "aws_launch_template" and values.get("user_data"):
        text = base64.b64decode(values["user_data"]).decode()
        values["user_data"] = base64.b64encode(resolver.resolve(text, address).encode()).decode()
    resolved: dict[str, Any] = resolver.resolve(values, address)
    return resolved
