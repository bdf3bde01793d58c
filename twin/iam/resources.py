"""What AWS knows about a resource when it authorizes a call on it: its tags and its resource policy.

Read straight from moto's backends (no API call, so nothing here is itself authorized or counted).
A resource kind the twin does not know raises: an authorization never runs on a guess.
"""

from __future__ import annotations

import json
from typing import Any

from moto.autoscaling.models import autoscaling_backends
from moto.dynamodb.models import dynamodb_backends
from moto.ec2.models import ec2_backends
from moto.elbv2.models import elbv2_backends
from moto.kms.models import kms_backends
from moto.s3.models import s3_backends
from moto.sns.models import sns_backends
from moto.sqs.models import sqs_backends
from moto.ssm.models import ssm_backends

# AWS's key policy for an AWS managed key such as aws/ssm: any principal of the account may use it, but
# only through the service that owns it (documented for every AWS managed key).
_AWS_MANAGED_KEY_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "Allow access through the owning service for all principals in the account",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": [
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:DescribeKey",
            ],
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:CallerAccount": "{account}", "kms:ViaService": "{via}"}},
        }
    ],
}


def split_arn(arn: str) -> tuple[str, str, str, str]:
    """(service, region, account, resource) of an ARN."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        raise ValueError(f"not an ARN: {arn!r}")
    return parts[2], parts[3], parts[4], parts[5]


def tags_of(arn: str) -> dict[str, str]:
    """The tags AWS would put into aws:ResourceTag/... for the resource named by `arn`."""
    if arn == "*":
        return {}
    service, region, account, resource = split_arn(arn)
    match service, resource.split("/", 1)[0].split(":", 1)[0]:
        case "ec2", "instance":
            # An instance AWS does not know has no tags (the call itself then fails on its own terms).
            wanted = resource.split("/", 1)[1]
            instances = ec2_backends[account][region].all_instances()
            instance = next((i for i in instances if i.id == wanted), None)
            return {tag["key"]: tag["value"] for tag in instance.get_tags()} if instance else {}
        case "autoscaling", "autoScalingGroup":
            name = resource.split("autoScalingGroupName/", 1)[1]
            group = autoscaling_backends[account][region].autoscaling_groups.get(name)
            # moto keeps an ASG's tags as the API took them (Key/Value)
            return {tag["Key"]: tag["Value"] for tag in (group.tags if group else [])}
        case "ssm", "document":
            return dict(
                ssm_backends[account][region]._resource_tags.get("Document", {}).get(resource[9:], {})
            )
        case "ssm", "parameter":
            name = "/" + resource[len("parameter/") :]
            return dict(ssm_backends[account][region]._resource_tags.get("Parameter", {}).get(name, {}))
        case "dynamodb", "table":
            table = dynamodb_backends[account][region].tables.get(resource.split("/", 1)[1])
            return {tag["Key"]: tag["Value"] for tag in (table.tags if table else [])}
        case "sqs", _:
            queue = sqs_backends[account][region].queues.get(resource)
            return dict(queue.tags) if queue else {}
        case "sns", _:
            return (
                dict(sns_backends[account][region].topics[arn]._tags)
                if arn in _topics(account, region)
                else {}
            )
        case "elasticloadbalancing", "targetgroup":
            backend = elbv2_backends[account][region]
            return dict(backend.tagging_service.get_tag_dict_for_resource(arn))
        case "kms", "key":
            key = kms_backends[account][region].keys.get(resource.split("/", 1)[1])
            return {tag["TagKey"]: tag["TagValue"] for tag in (key.tags if key else [])} if key else {}
        case _:
            return {}


def _topics(account: str, region: str) -> dict[str, Any]:
    return sns_backends[account][region].topics


def resource_policy(arn: str) -> tuple[dict[str, Any] | None, str]:
    """(policy document or None, kind) of a resource that carries a resource-based policy."""
    service, region, account, resource = split_arn(arn)
    if service == "sqs":
        queue = sqs_backends[account][region].queues.get(resource)
        return (json.loads(queue.policy) if queue and queue.policy else None), "ordinary"
    if service == "sns":
        topic = _topics(account, region).get(arn)
        document = topic._policy_json if topic else None
        return (json.loads(document) if isinstance(document, str) else document), "ordinary"
    if service == "kms":
        return key_policy(arn), "kms-key-policy"
    if service == "s3":
        bucket = s3_bucket(resource.split("/", 1)[0])
        document = bucket.policy if bucket is not None else None
        return (json.loads(document) if document else None), "ordinary"
    return None, "ordinary"


def s3_bucket(name: str) -> Any | None:
    """moto's bucket of that name, whichever account holds it (bucket names are global)."""
    for account in list(s3_backends):
        bucket = s3_backends[account]["global"].buckets.get(name)
        if bucket is not None:
            return bucket
    return None


def s3_object_key(bucket_name: str, key: str, requested: str | None) -> str | None:
    """The KMS key an S3 object is (to be) encrypted with: the one a request names, else the object's,
    else the bucket's default; None when the object is not encrypted with KMS."""
    bucket = s3_bucket(bucket_name)
    if requested:
        return requested
    if bucket is None:
        return None
    stored = bucket.keys.get(key)
    if stored is not None and stored.encryption == "aws:kms":
        return str(stored.kms_key_id) if stored.kms_key_id else None
    rules = (bucket.encryption or {}).get("Rule", []) if isinstance(bucket.encryption, dict) else []
    # moto keeps the configuration as parsed from XML: one rule is a dict, several a list
    for rule in [rules] if isinstance(rules, dict) else rules:
        default = rule.get("ApplyServerSideEncryptionByDefault", {})
        if default.get("SSEAlgorithm") == "aws:kms":
            return default.get("KMSMasterKeyID")
    return None


def key_policy(key_arn: str) -> dict[str, Any]:
    _service, region, account, resource = split_arn(key_arn)
    key = kms_backends[account][region].keys[resource.split("/", 1)[1]]
    managed_by = [alias[len("alias/aws/") :] for alias in key.aliases if alias.startswith("alias/aws/")]
    if managed_by:
        via = f"{managed_by[0]}.{region}.amazonaws.com"
        text = json.dumps(_AWS_MANAGED_KEY_POLICY).replace("{account}", account).replace("{via}", via)
        return json.loads(text)
    return json.loads(key.policy)


def key_arn(key_id_or_alias: str, region: str, account: str) -> str:
    """The ARN of the key a KeyId names (a key id, key ARN, alias name or alias ARN)."""
    backend = kms_backends[account][region]
    key_id = backend.any_id_to_key_id(key_id_or_alias)
    if key_id not in backend.keys:
        raise LookupError(f"KMS key {key_id_or_alias!r} does not exist")
    return backend.keys[key_id].arn


def secure_string_key(name: str, region: str, account: str) -> str | None:
    """The KMS KeyId of a SecureString parameter (None for String parameters or unknown names)."""
    parameter = ssm_backends[account][region].get_parameter(name)
    if parameter is None or parameter.parameter_type != "SecureString":
        return None
    return parameter.keyid or "alias/aws/ssm"


def asg_arn_of_instance(instance_id: str, region: str, account: str) -> str | None:
    for group in autoscaling_backends[account][region].autoscaling_groups.values():
        if any(state.instance.id == instance_id for state in group.instance_states):
            return group.arn
    return None


def asg_arn(name: str, region: str, account: str) -> str | None:
    group = autoscaling_backends[account][region].autoscaling_groups.get(name)
    return group.arn if group else None
