"""A mini CloudFormation for the twin: reads a SAM template for real and creates its resources in moto.

`load_template` parses the YAML (with CloudFormation's short-form tags) and translates it offline with
aws-sam-translator, exactly what `sam validate` / `sam deploy` start from. `deploy_template` then walks
the translated resources in dependency order, resolves the intrinsic functions, creates what moto can
hold (tables, queues, topics, alarms, dashboards) with boto3 and keeps the rest (functions, event source
mappings, rules, permissions) as data for the twin's Lambda runtime and event bus.
"""

from __future__ import annotations

import json
import os
import random
import re
import string
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml

from twin.account import ACCOUNT_ID, REGION

PARTITION = "aws"
URL_SUFFIX = "amazonaws.com"

# sam validate substitutes S3 URIs for local code folders before translating; so do we, with the
# SAM logical id as the key so the runtime can map a translated resource back to its folder.
_PLACEHOLDER_BUCKET = "kcluster-twin-local-code"

_NO_VALUE = object()


class TemplateError(Exception):
    """The template uses something this mini CloudFormation does not (or cannot) do."""


# --------------------------------------------------------------------------------------------- loading


class _CfnYamlLoader(yaml.SafeLoader):
    """YAML loader that turns `!Ref x`, `!GetAtt a.b`, `!Sub ...` into their long JSON forms."""


def _construct_short_form(loader: _CfnYamlLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if tag_suffix == "Ref":
        key = "Ref"
    elif tag_suffix == "Condition":
        key = "Condition"
    else:
        key = f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {key: value}


_CfnYamlLoader.add_multi_constructor("!", _construct_short_form)


def read_template_yaml(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_CfnYamlLoader)  # noqa: S506 - SafeLoader subclass


@dataclass
class TranslatedTemplate:
    """A SAM template translated to plain CloudFormation, plus what the translation had to hide."""

    source_path: Path
    template: dict[str, Any]
    parameters: dict[str, Any]
    # placeholder S3 key (the SAM logical id) -> local folder named by CodeUri / ContentUri
    code_paths: dict[str, Path]
    # placeholder S3 key of a layer -> Metadata.BuildMethod (sam build puts such layers on /opt/python)
    layer_build_methods: dict[str, str]


class _NoManagedPolicies:
    """Managed-policy loader for offline translation: the template names no AWS managed policy by name."""

    def load(self) -> dict[str, str]:
        return {}


def _substitute_local_code(template: dict[str, Any], base: Path) -> tuple[dict[str, Path], dict[str, str]]:
    code_paths: dict[str, Path] = {}
    build_methods: dict[str, str] = {}

    def placeholder(key: str, uri: Any) -> Any:
        if isinstance(uri, str) and not uri.startswith("s3://"):
            code_paths[key] = (base / uri).resolve()
            return f"s3://{_PLACEHOLDER_BUCKET}/{key}"
        return uri

    globals_function = template.get("Globals", {}).get("Function", {})
    if "CodeUri" in globals_function:
        globals_function["CodeUri"] = placeholder("Globals", globals_function["CodeUri"])
    for logical_id, resource in template.get("Resources", {}).items():
        properties = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function":
            if "CodeUri" in properties:
                properties["CodeUri"] = placeholder(logical_id, properties["CodeUri"])
        elif resource.get("Type") == "AWS::Serverless::LayerVersion" and "ContentUri" in properties:
            properties["ContentUri"] = placeholder(logical_id, properties["ContentUri"])
            build_method = (resource.get("Metadata") or {}).get("BuildMethod")
            if build_method:
                build_methods[logical_id] = build_method
    return code_paths, build_methods


def load_template(
    path: str | Path, parameter_overrides: Mapping[str, Any] | None = None
) -> TranslatedTemplate:
    """Parse and translate a SAM template offline; parameter values are the defaults plus the overrides."""
    from samtranslator.translator.transform import transform

    source_path = Path(path).resolve()
    template = read_template_yaml(source_path)
    code_paths, build_methods = _substitute_local_code(template, source_path.parent)

    overrides = dict(parameter_overrides or {})
    declared = template.get("Parameters") or {}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise TemplateError(f"parameter overrides for undeclared parameters: {unknown}")
    parameters: dict[str, Any] = {}
    for name, declaration in declared.items():
        if name in overrides:
            parameters[name] = overrides[name]
        elif "Default" in declaration:
            parameters[name] = declaration["Default"]
        else:
            raise TemplateError(f"parameter {name} has no default and no override")
        allowed = declaration.get("AllowedValues")
        if allowed is not None and parameters[name] not in allowed:
            raise TemplateError(f"parameter {name}={parameters[name]!r} not in AllowedValues {allowed}")
        pattern = declaration.get("AllowedPattern")
        # CloudFormation refuses a String parameter whose whole value does not match AllowedPattern.
        if pattern is not None and not re.fullmatch(pattern, str(parameters[name])):
            raise TemplateError(
                f"parameter {name}={parameters[name]!r} does not match AllowedPattern {pattern}"
            )

    # The translator wants a region (it builds ARNs for some resources); give it ours if unset.
    previous_region = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = previous_region or REGION
    try:
        translated = transform(template, dict(parameters), _NoManagedPolicies())
    finally:
        if previous_region is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
    return TranslatedTemplate(source_path, translated, parameters, code_paths, build_methods)


# --------------------------------------------------------------------------------------------- the stack


@dataclass
class Resource:
    logical_id: str
    type: str
    physical_id: str
    properties: dict[str, Any]
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    handler: str
    runtime: str
    code_path: Path
    layer_paths: list[Path]
    environment: dict[str, str]
    timeout_seconds: int
    memory_mb: int
    architectures: list[str]
    reserved_concurrency: int | None
    # EventInvokeConfig (AWS defaults: 2 retries, 6 h maximum event age)
    maximum_retry_attempts: int = 2
    maximum_event_age_seconds: int = 21600
    on_failure_destination: str | None = None


@dataclass
class EventSourceMappingSpec:
    logical_id: str
    uuid: str
    function_logical_id: str
    event_source_arn: str
    batch_size: int
    maximum_batching_window_seconds: int
    function_response_types: list[str]
    enabled: bool
    maximum_concurrency: int | None


@dataclass
class RuleSpec:
    logical_id: str
    name: str
    arn: str
    event_bus_name: str
    event_pattern: str | None
    schedule_expression: str | None
    state: str
    targets: list[dict[str, Any]]


@dataclass
class Stack:
    name: str
    region: str
    account_id: str
    resources: dict[str, Resource] = field(default_factory=dict)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    event_source_mappings: list[EventSourceMappingSpec] = field(default_factory=list)
    rules: list[RuleSpec] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    # One line per IAM statement that allows Action "*" on Resource "*" (should stay empty).
    iam_findings: list[str] = field(default_factory=list)
    skipped_by_condition: list[str] = field(default_factory=list)

    def physical_id(self, logical_id: str) -> str:
        return self.resources[logical_id].physical_id

    def function_by_arn_or_name(self, arn_or_name: str) -> FunctionSpec:
        for spec in self.functions.values():
            if arn_or_name in (spec.arn, spec.name, spec.logical_id) or arn_or_name.startswith(
                spec.arn + ":"
            ):
                return spec
        raise KeyError(f"no function {arn_or_name} in stack {self.name}")

    def queue_url_by_arn(self, arn: str) -> str:
        for resource in self.resources.values():
            if resource.type == "AWS::SQS::Queue" and resource.attributes.get("Arn") == arn:
                return resource.physical_id
        raise KeyError(f"no queue {arn} in stack {self.name}")


# --------------------------------------------------------------------------------------------- intrinsics


_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class _Resolver:
    def __init__(self, template: dict[str, Any], parameters: dict[str, Any], stack: Stack):
        self.template = template
        self.parameters = parameters
        self.stack = stack
        self.mappings = template.get("Mappings") or {}
        self._conditions_raw = template.get("Conditions") or {}
        self._conditions: dict[str, bool] = {}

    def pseudo(self, name: str) -> Any:
        values = {
            "AWS::Region": self.stack.region,
            "AWS::AccountId": self.stack.account_id,
            "AWS::StackName": self.stack.name,
            "AWS::StackId": (
                f"arn:{PARTITION}:cloudformation:{self.stack.region}:{self.stack.account_id}"
                f":stack/{self.stack.name}/00000000-0000-4000-8000-000000000000"
            ),
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": URL_SUFFIX,
            "AWS::NoValue": _NO_VALUE,
            "AWS::NotificationARNs": [],
        }
        if name not in values:
            raise TemplateError(f"unknown pseudo parameter {name}")
        return values[name]

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            if name not in self._conditions_raw:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = bool(self.resolve(self._conditions_raw[name]))
        return self._conditions[name]

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.parameters:
            value = self.parameters[name]
            declaration = (self.template.get("Parameters") or {}).get(name, {})
            if declaration.get("Type") == "CommaDelimitedList" and isinstance(value, str):
                return [item.strip() for item in value.split(",")]
            if declaration.get("Type") == "Number":
                return str(value)
            return value
        if name in self.stack.resources:
            return self.stack.resources[name].physical_id
        raise TemplateError(f"Ref to unknown or not yet created {name}")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        resource = self.stack.resources.get(logical_id)
        if resource is None:
            raise TemplateError(f"GetAtt on unknown or not yet created {logical_id}")
        if attribute not in resource.attributes:
            raise TemplateError(f"{resource.type} {logical_id} has no attribute {attribute} in the twin")
        return resource.attributes[attribute]

    def sub(self, text: str, variables: dict[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name in variables:
                value = variables[name]
            elif "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                value = self.get_att(logical_id, attribute)
            else:
                value = self.ref(name)
            return str(value)

        return _SUB_VARIABLE.sub(replace, text).replace("${!", "${")

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            items = [self.resolve(item) for item in node]
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            if key == "Ref":
                return self.ref(value)
            if key == "Condition" and isinstance(value, str):
                return self.condition(value)
            if key.startswith("Fn::"):
                return self._function(key, value)
        resolved = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not _NO_VALUE}

    def _function(self, name: str, argument: Any) -> Any:
        if name == "Fn::GetAtt":
            logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return self.get_att(logical_id, self.resolve(attribute))
        if name == "Fn::Sub":
            if isinstance(argument, str):
                return self.sub(argument, {})
            text, variables = argument
            return self.sub(text, {key: self.resolve(value) for key, value in variables.items()})
        if name == "Fn::Join":
            delimiter, items = argument
            return delimiter.join(str(item) for item in self.resolve(items))
        if name == "Fn::Select":
            index, items = self.resolve(argument)
            return items[int(index)]
        if name == "Fn::Split":
            delimiter, text = self.resolve(argument)
            return text.split(delimiter)
        if name == "Fn::If":
            condition, if_true, if_false = argument
            return self.resolve(if_true if self.condition(condition) else if_false)
        if name == "Fn::Equals":
            left, right = self.resolve(argument)
            return str(left) == str(right)
        if name == "Fn::Not":
            (value,) = self.resolve(argument)
            return not value
        if name == "Fn::And":
            return all(self.resolve(argument))
        if name == "Fn::Or":
            return any(self.resolve(argument))
        if name == "Fn::FindInMap":
            map_name, top_key, second_key = self.resolve(argument)
            return self.mappings[map_name][top_key][second_key]
        if name == "Fn::Base64":
            return self.resolve(argument)
        if name == "Fn::GetAZs":
            return [f"{self.stack.region}{zone}" for zone in "abcdef"]
        if name == "Fn::ToJsonString":
            return json.dumps(self.resolve(argument))
        raise TemplateError(f"intrinsic function {name} is not supported by the twin")


def _references(node: Any) -> set[str]:
    """Names a template fragment refers to (resources among them decide the creation order)."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= _references(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else value.split(".", 1)[0])
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                for name in _SUB_VARIABLE.findall(text):
                    found.add(name.split(".", 1)[0].strip())
                if isinstance(value, list):
                    found |= _references(value[1])
            else:
                found |= _references(value)
    return found


def _creation_order(resources: dict[str, Any]) -> list[str]:
    dependencies: dict[str, set[str]] = {}
    for logical_id, resource in resources.items():
        depends_on = resource.get("DependsOn") or []
        if isinstance(depends_on, str):
            depends_on = [depends_on]
        names = _references(resource.get("Properties") or {}) | set(depends_on)
        dependencies[logical_id] = {name for name in names if name in resources and name != logical_id}
    order: list[str] = []
    done: set[str] = set()
    visiting: set[str] = set()

    def visit(logical_id: str) -> None:
        if logical_id in done:
            return
        if logical_id in visiting:
            raise TemplateError(f"circular dependency through {logical_id}")
        visiting.add(logical_id)
        for dependency in sorted(dependencies[logical_id]):
            visit(dependency)
        visiting.discard(logical_id)
        done.add(logical_id)
        order.append(logical_id)

    for logical_id in resources:
        visit(logical_id)
    return order


# --------------------------------------------------------------------------------------------- creation


_SUFFIX_ALPHABET = string.ascii_uppercase + string.digits


class _Deployer:
    def __init__(self, translated: TranslatedTemplate, stack: Stack, rng: random.Random):
        self.translated = translated
        self.stack = stack
        self.rng = rng
        self.resolver = _Resolver(translated.template, translated.parameters, stack)
        self.dynamodb = boto3.client("dynamodb", region_name=stack.region)
        self.sqs = boto3.client("sqs", region_name=stack.region)
        self.sns = boto3.client("sns", region_name=stack.region)
        self.cloudwatch = boto3.client("cloudwatch", region_name=stack.region)
        self.ssm = boto3.client("ssm", region_name=stack.region)
        self.layer_paths_by_arn: dict[str, Path] = {}

    # CloudFormation's generated names: "<stack>-<LogicalId>-<random suffix>", cut to the service limit.
    def physical_name(self, logical_id: str, max_length: int, ending: str = "") -> str:
        suffix = "".join(self.rng.choice(_SUFFIX_ALPHABET) for _ in range(12))
        room = max_length - len(suffix) - len(ending) - 2
        prefix = f"{self.stack.name}-{logical_id}"[:room]
        return f"{prefix}-{suffix}{ending}"

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{PARTITION}:{service}:{self.stack.region}:{self.stack.account_id}:{resource}"

    def add(self, logical_id: str, type_: str, physical_id: str, properties: dict[str, Any], **attributes):
        self.stack.resources[logical_id] = Resource(logical_id, type_, physical_id, properties, attributes)

    def deploy(self) -> None:
        resources = self.translated.template.get("Resources") or {}
        unsupported = sorted({r["Type"] for r in resources.values() if r["Type"] not in _CREATORS})
        if unsupported:
            raise TemplateError(f"resource types the twin cannot deploy: {unsupported}")
        for logical_id in _creation_order(resources):
            resource = resources[logical_id]
            condition = resource.get("Condition")
            if condition and not self.resolver.condition(condition):
                self.stack.skipped_by_condition.append(logical_id)
                continue
            properties = self.resolver.resolve(resource.get("Properties") or {})
            _CREATORS[resource["Type"]](self, logical_id, properties)
        for name, output in (self.translated.template.get("Outputs") or {}).items():
            condition = output.get("Condition")
            if condition and not self.resolver.condition(condition):
                continue
            self.stack.outputs[name] = self.resolver.resolve(output["Value"])

    # ----- services moto holds

    def create_table(self, logical_id: str, properties: dict[str, Any]) -> None:
        name = properties.get("TableName") or self.physical_name(logical_id, 255)
        request: dict[str, Any] = {
            "TableName": name,
            "KeySchema": properties["KeySchema"],
            "AttributeDefinitions": properties["AttributeDefinitions"],
            "BillingMode": properties.get("BillingMode", "PROVISIONED"),
        }
        for key in ("ProvisionedThroughput", "GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if key in properties:
                request[key] = properties[key]
        if "SSESpecification" in properties:
            # CloudFormation spells the flag SSEEnabled; the API spells it Enabled.
            sse = dict(properties["SSESpecification"])
            sse["Enabled"] = bool(sse.pop("SSEEnabled", False))
            request["SSESpecification"] = sse
        if "StreamSpecification" in properties:
            request["StreamSpecification"] = {"StreamEnabled": True, **properties["StreamSpecification"]}
        if properties.get("Tags"):
            request["Tags"] = properties["Tags"]
        if "DeletionProtectionEnabled" in properties:
            request["DeletionProtectionEnabled"] = bool(properties["DeletionProtectionEnabled"])
        description = self.dynamodb.create_table(**request)["TableDescription"]
        ttl = properties.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            self.dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
        recovery = properties.get("PointInTimeRecoverySpecification")
        if recovery:
            self.dynamodb.update_continuous_backups(
                TableName=name,
                PointInTimeRecoverySpecification={
                    "PointInTimeRecoveryEnabled": bool(recovery.get("PointInTimeRecoveryEnabled"))
                },
            )
        self.add(
            logical_id,
            "AWS::DynamoDB::Table",
            name,
            properties,
            Arn=description["TableArn"],
            StreamArn=description.get("LatestStreamArn"),
        )

    def create_queue(self, logical_id: str, properties: dict[str, Any]) -> None:
        fifo = bool(properties.get("FifoQueue"))
        name = properties.get("QueueName") or self.physical_name(logical_id, 80, ".fifo" if fifo else "")
        attributes: dict[str, str] = {}
        for key in (
            "VisibilityTimeout",
            "MessageRetentionPeriod",
            "DelaySeconds",
            "MaximumMessageSize",
            "ReceiveMessageWaitTimeSeconds",
            "KmsMasterKeyId",
            "KmsDataKeyReusePeriodSeconds",
            "SqsManagedSseEnabled",
            "ContentBasedDeduplication",
            "FifoQueue",
        ):
            if key in properties:
                value = properties[key]
                attributes[key] = str(value).lower() if isinstance(value, bool) else str(value)
        if "RedrivePolicy" in properties:
            policy = dict(properties["RedrivePolicy"])
            policy["maxReceiveCount"] = int(policy["maxReceiveCount"])
            attributes["RedrivePolicy"] = json.dumps(policy)
        tags = {tag["Key"]: tag["Value"] for tag in properties.get("Tags") or []}
        request: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
        if tags:
            request["tags"] = tags
        url = self.sqs.create_queue(**request)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.add(logical_id, "AWS::SQS::Queue", url, properties, Arn=arn, QueueName=name, QueueUrl=url)

    def create_queue_policy(self, logical_id: str, properties: dict[str, Any]) -> None:
        document = json.dumps(properties["PolicyDocument"])
        for url in properties["Queues"]:
            self.sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": document})
        self.add(logical_id, "AWS::SQS::QueuePolicy", f"{self.stack.name}-{logical_id}", properties)

    def create_topic(self, logical_id: str, properties: dict[str, Any]) -> None:
        name = properties.get("TopicName") or self.physical_name(logical_id, 256)
        request: dict[str, Any] = {"Name": name}
        attributes = {
            key: str(properties[key]) for key in ("DisplayName", "KmsMasterKeyId") if key in properties
        }
        if attributes:
            request["Attributes"] = attributes
        if properties.get("Tags"):
            request["Tags"] = properties["Tags"]
        arn = self.sns.create_topic(**request)["TopicArn"]
        for subscription in properties.get("Subscription") or []:
            self.sns.subscribe(
                TopicArn=arn, Protocol=subscription["Protocol"], Endpoint=subscription["Endpoint"]
            )
        self.add(logical_id, "AWS::SNS::Topic", arn, properties, TopicArn=arn, TopicName=name)

    def create_topic_policy(self, logical_id: str, properties: dict[str, Any]) -> None:
        for topic in properties["Topics"]:
            self.sns.set_topic_attributes(
                TopicArn=topic,
                AttributeName="Policy",
                AttributeValue=json.dumps(properties["PolicyDocument"]),
            )
        self.add(logical_id, "AWS::SNS::TopicPolicy", f"{self.stack.name}-{logical_id}", properties)

    def create_kms_key(self, logical_id: str, properties: dict[str, Any]) -> None:
        kms = boto3.client("kms", region_name=self.stack.region)
        key = kms.create_key(
            Description=properties.get("Description", ""), Policy=json.dumps(properties["KeyPolicy"])
        )["KeyMetadata"]
        if properties.get("EnableKeyRotation"):
            kms.enable_key_rotation(KeyId=key["KeyId"])
        self.add(logical_id, "AWS::KMS::Key", key["KeyId"], properties, Arn=key["Arn"], KeyId=key["KeyId"])

    def create_subscription(self, logical_id: str, properties: dict[str, Any]) -> None:
        arn = self.sns.subscribe(
            TopicArn=properties["TopicArn"],
            Protocol=properties["Protocol"],
            Endpoint=properties["Endpoint"],
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        self.add(logical_id, "AWS::SNS::Subscription", arn, properties)

    def create_alarm(self, logical_id: str, properties: dict[str, Any]) -> None:
        name = properties.get("AlarmName") or self.physical_name(logical_id, 255)
        request = {key: value for key, value in properties.items() if key in _ALARM_KEYS}
        request["AlarmName"] = name
        for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
            if key in request:
                request[key] = int(request[key])
        if "Threshold" in request:
            request["Threshold"] = float(request["Threshold"])
        if "Dimensions" in request:
            request["Dimensions"] = [
                {"Name": d["Name"], "Value": str(d["Value"])} for d in request["Dimensions"]
            ]
        self.cloudwatch.put_metric_alarm(**request)
        arn = self.arn("cloudwatch", f"alarm:{name}")
        self.add(logical_id, "AWS::CloudWatch::Alarm", name, properties, Arn=arn)

    def create_dashboard(self, logical_id: str, properties: dict[str, Any]) -> None:
        name = properties.get("DashboardName") or self.physical_name(logical_id, 255)
        body = properties["DashboardBody"]
        self.cloudwatch.put_dashboard(
            DashboardName=name, DashboardBody=body if isinstance(body, str) else json.dumps(body)
        )
        self.add(logical_id, "AWS::CloudWatch::Dashboard", name, properties)

    def create_parameter(self, logical_id: str, properties: dict[str, Any]) -> None:
        name = properties.get("Name") or self.physical_name(logical_id, 1011)
        request: dict[str, Any] = {
            "Name": name,
            "Value": str(properties["Value"]),
            "Type": properties["Type"],
        }
        for key in ("Description", "Tier", "AllowedPattern", "DataType"):
            if key in properties:
                request[key] = properties[key]
        self.ssm.put_parameter(**request)
        self.add(
            logical_id,
            "AWS::SSM::Parameter",
            name,
            properties,
            Type=properties["Type"],
            Value=request["Value"],
        )

    # ----- kept as data for the twin's runtime and bus

    def create_layer(self, logical_id: str, properties: dict[str, Any]) -> None:
        key = (properties.get("Content") or {}).get("S3Key", "")
        if key not in self.translated.code_paths:
            raise TemplateError(f"layer {logical_id} has no local ContentUri the twin can load")
        content = self.translated.code_paths[key]
        # BuildMethod python3.x: sam build installs the folder itself as /opt/python; else the zip's python/.
        path = content if key in self.translated.layer_build_methods else content / "python"
        name = properties.get("LayerName") or logical_id
        arn = self.arn("lambda", f"layer:{name}:1")
        self.layer_paths_by_arn[arn] = path
        self.add(logical_id, "AWS::Lambda::LayerVersion", arn, properties, LayerVersionArn=arn)

    def create_function(self, logical_id: str, properties: dict[str, Any]) -> None:
        key = (properties.get("Code") or {}).get("S3Key", "")
        code_path = self.translated.code_paths.get(key) or self.translated.code_paths.get("Globals")
        if code_path is None:
            raise TemplateError(f"function {logical_id} has no local CodeUri the twin can load")
        name = properties.get("FunctionName") or self.physical_name(logical_id, 64)
        arn = self.arn("lambda", f"function:{name}")
        layer_paths = []
        for layer_arn in properties.get("Layers") or []:
            if layer_arn not in self.layer_paths_by_arn:
                raise TemplateError(
                    f"function {logical_id} uses layer {layer_arn} not defined in the template"
                )
            layer_paths.append(self.layer_paths_by_arn[layer_arn])
        variables = (properties.get("Environment") or {}).get("Variables") or {}
        self.stack.functions[logical_id] = FunctionSpec(
            logical_id=logical_id,
            name=name,
            arn=arn,
            handler=properties["Handler"],
            runtime=properties.get("Runtime", ""),
            code_path=code_path,
            layer_paths=layer_paths,
            environment={k: _environment_string(v) for k, v in variables.items()},
            timeout_seconds=int(properties.get("Timeout", 3)),
            memory_mb=int(properties.get("MemorySize", 128)),
            architectures=list(properties.get("Architectures") or ["x86_64"]),
            reserved_concurrency=(
                int(properties["ReservedConcurrentExecutions"])
                if "ReservedConcurrentExecutions" in properties
                else None
            ),
        )
        # A dead-letter queue (DeadLetterConfig) receives what async invocations failed with, as an
        # EventInvokeConfig OnFailure destination does (which, when both are set, is used instead).
        dead_letter = (properties.get("DeadLetterConfig") or {}).get("TargetArn")
        if dead_letter:
            self.stack.functions[logical_id].on_failure_destination = dead_letter
        self.add(logical_id, "AWS::Lambda::Function", name, properties, Arn=arn)

    def create_event_invoke_config(self, logical_id: str, properties: dict[str, Any]) -> None:
        spec = self.stack.function_by_arn_or_name(properties["FunctionName"])
        if "MaximumRetryAttempts" in properties:
            spec.maximum_retry_attempts = int(properties["MaximumRetryAttempts"])
        if "MaximumEventAgeInSeconds" in properties:
            spec.maximum_event_age_seconds = int(properties["MaximumEventAgeInSeconds"])
        on_failure = ((properties.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        spec.on_failure_destination = on_failure or spec.on_failure_destination
        self.add(logical_id, "AWS::Lambda::EventInvokeConfig", f"{spec.name}-invoke-config", properties)

    def create_event_source_mapping(self, logical_id: str, properties: dict[str, Any]) -> None:
        spec = self.stack.function_by_arn_or_name(properties["FunctionName"])
        mapping_uuid = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        source_arn = properties["EventSourceArn"]
        if ":sqs:" not in source_arn:
            raise TemplateError(
                f"event source mapping {logical_id}: only SQS sources are emulated ({source_arn})"
            )
        scaling = properties.get("ScalingConfig") or {}
        self.stack.event_source_mappings.append(
            EventSourceMappingSpec(
                logical_id=logical_id,
                uuid=mapping_uuid,
                function_logical_id=spec.logical_id,
                event_source_arn=source_arn,
                batch_size=int(properties.get("BatchSize", 10)),
                maximum_batching_window_seconds=int(properties.get("MaximumBatchingWindowInSeconds", 0)),
                function_response_types=list(properties.get("FunctionResponseTypes") or []),
                enabled=bool(properties.get("Enabled", True)),
                maximum_concurrency=(
                    int(scaling["MaximumConcurrency"]) if "MaximumConcurrency" in scaling else None
                ),
            )
        )
        self.add(logical_id, "AWS::Lambda::EventSourceMapping", mapping_uuid, properties)

    def create_rule(self, logical_id: str, properties: dict[str, Any]) -> None:
        name = properties.get("Name") or self.physical_name(logical_id, 64)
        bus = properties.get("EventBusName", "default")
        arn = self.arn("events", f"rule/{name}" if bus == "default" else f"rule/{bus}/{name}")
        pattern = properties.get("EventPattern")
        if pattern is not None and not isinstance(pattern, str):
            pattern = json.dumps(pattern)
        self.stack.rules.append(
            RuleSpec(
                logical_id=logical_id,
                name=name,
                arn=arn,
                event_bus_name=bus,
                event_pattern=pattern,
                schedule_expression=properties.get("ScheduleExpression"),
                state=properties.get("State", "ENABLED"),
                targets=list(properties.get("Targets") or []),
            )
        )
        self.add(logical_id, "AWS::Events::Rule", name, properties, Arn=arn)

    def create_permission(self, logical_id: str, properties: dict[str, Any]) -> None:
        self.add(logical_id, "AWS::Lambda::Permission", f"{self.stack.name}-{logical_id}", properties)

    def create_log_group(self, logical_id: str, properties: dict[str, Any]) -> None:
        name = properties.get("LogGroupName") or self.physical_name(logical_id, 512)
        arn = self.arn("logs", f"log-group:{name}:*")
        self.add(logical_id, "AWS::Logs::LogGroup", name, properties, Arn=arn)

    def create_role(self, logical_id: str, properties: dict[str, Any]) -> None:
        for policy in properties.get("Policies") or []:
            self.check_policy(f"{logical_id}/{policy.get('PolicyName')}", policy["PolicyDocument"])
        name = properties.get("RoleName") or self.physical_name(logical_id, 64)
        arn = f"arn:{PARTITION}:iam::{self.stack.account_id}:role/{name}"
        role_id = "AROA" + "".join(self.rng.choice(_SUFFIX_ALPHABET) for _ in range(17))
        self.add(logical_id, "AWS::IAM::Role", name, properties, Arn=arn, RoleId=role_id)

    def create_policy(self, logical_id: str, properties: dict[str, Any]) -> None:
        self.check_policy(logical_id, properties["PolicyDocument"])
        name = properties.get("PolicyName") or properties.get("ManagedPolicyName") or logical_id
        self.add(logical_id, "AWS::IAM::Policy", name, properties)

    def create_managed_policy(self, logical_id: str, properties: dict[str, Any]) -> None:
        self.check_policy(logical_id, properties["PolicyDocument"])
        name = properties.get("ManagedPolicyName") or self.physical_name(logical_id, 128)
        arn = f"arn:{PARTITION}:iam::{self.stack.account_id}:policy/{name}"
        self.add(logical_id, "AWS::IAM::ManagedPolicy", arn, properties, PolicyArn=arn)

    def check_policy(self, where: str, document: dict[str, Any]) -> None:
        statements = document.get("Statement") or []
        if isinstance(statements, dict):
            statements = [statements]
        for index, statement in enumerate(statements):
            if statement.get("Effect") != "Allow":
                continue
            actions = _as_list(statement.get("Action"))
            resources = _as_list(statement.get("Resource"))
            if "*" in actions and "*" in resources:
                self.stack.iam_findings.append(f"{where} statement {index}: Action * on Resource *")


_ALARM_KEYS = {
    "AlarmDescription",
    "ActionsEnabled",
    "AlarmActions",
    "OKActions",
    "InsufficientDataActions",
    "MetricName",
    "Namespace",
    "Statistic",
    "ExtendedStatistic",
    "Dimensions",
    "Period",
    "Unit",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "EvaluateLowSampleCountPercentile",
    "Metrics",
    "ThresholdMetricId",
    "Tags",
}

_CREATORS = {
    "AWS::DynamoDB::Table": _Deployer.create_table,
    "AWS::SQS::Queue": _Deployer.create_queue,
    "AWS::SQS::QueuePolicy": _Deployer.create_queue_policy,
    "AWS::SNS::Topic": _Deployer.create_topic,
    "AWS::SNS::Subscription": _Deployer.create_subscription,
    "AWS::SNS::TopicPolicy": _Deployer.create_topic_policy,
    "AWS::KMS::Key": _Deployer.create_kms_key,
    "AWS::CloudWatch::Alarm": _Deployer.create_alarm,
    "AWS::CloudWatch::Dashboard": _Deployer.create_dashboard,
    "AWS::SSM::Parameter": _Deployer.create_parameter,
    "AWS::Lambda::LayerVersion": _Deployer.create_layer,
    "AWS::Lambda::Function": _Deployer.create_function,
    "AWS::Lambda::EventInvokeConfig": _Deployer.create_event_invoke_config,
    "AWS::Lambda::EventSourceMapping": _Deployer.create_event_source_mapping,
    "AWS::Lambda::Permission": _Deployer.create_permission,
    "AWS::Events::Rule": _Deployer.create_rule,
    "AWS::Logs::LogGroup": _Deployer.create_log_group,
    "AWS::IAM::Role": _Deployer.create_role,
    "AWS::IAM::Policy": _Deployer.create_policy,
    "AWS::IAM::ManagedPolicy": _Deployer.create_managed_policy,
}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _environment_string(value: Any) -> str:
    # Lambda environment values are strings; CloudFormation turns booleans and numbers into text.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def deploy_template(
    translated: TranslatedTemplate,
    stack_name: str,
    *,
    rng: random.Random | None = None,
    region: str = REGION,
    account_id: str = ACCOUNT_ID,
) -> Stack:
    """Create the translated template's resources in moto (call inside `mock_aws`); returns the Stack."""
    stack = Stack(name=stack_name, region=region, account_id=account_id)
    _Deployer(translated, stack, rng or random.Random(0)).deploy()
    return stack
