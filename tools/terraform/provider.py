"""A hashicorp/aws stand-in that serves the real provider's schema over Terraform's plugin protocol 6.

Terraform starts it like any provider (go-plugin handshake on stdout, gRPC with mTLS on a unix
socket; nothing leaves the machine). It answers with the schema `aws_schema.py` rebuilt from the CDK
for Terraform bindings, so Terraform core does the real work: argument names, block nesting and
counts, required arguments, types, references, expressions, validations and preconditions.

What the provider itself does is minimal and deterministic:
- plan: the proposed state, with every computed attribute left unset planned as unknown on create;
  an update keeps what Terraform proposes (computed values carried over), so a second plan is clean.
- apply: the planned state with the unknowns filled with realistic values (ids, ARNs, names).
- data sources: realistic values, taken from a fixture file ($KCLUSTER_TF_FIXTURES) where given
  (subnets' availability zones, the VPC, the AMI parameter), and aws_iam_policy_document rendered the
  way the real provider renders it.
It checks none of the provider's own value rules (enums, ARN formats, conflicting arguments).

Usage (as the provider executable): provider.py --schema SCHEMA.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from tf.gen import grpc_controller_pb2 as controller_pb
from tf.gen import grpc_controller_pb2_grpc as controller_rpc
from tf.gen import grpc_stdio_pb2_grpc as stdio_rpc
from tf.gen import tfplugin_pb2 as pb
from tf.gen import tfplugin_pb2_grpc as rpc
from tf.types import Unknown
from tf.utils import read_dynamic_value, to_dynamic_value

ACCOUNT = "123456789012"
NESTING = {
    "list": pb.Schema.NestedBlock.LIST,
    "set": pb.Schema.NestedBlock.SET,
    "single": pb.Schema.NestedBlock.SINGLE,
}
ARN_ID = {"aws_lb", "aws_lb_target_group", "aws_lb_listener", "aws_lb_listener_rule", "aws_sns_topic"}
ID_PREFIX = {
    "aws_security_group": "sg-",
    "aws_launch_template": "lt-",
    "aws_vpc_security_group_ingress_rule": "sgr-",
    "aws_vpc_security_group_egress_rule": "sgr-",
    "aws_security_group_rule": "sgrule-",
    "aws_instance": "i-",
    "aws_subnet": "subnet-",
    "aws_vpc": "vpc-",
}
NAMED_ID = {
    "aws_iam_role",
    "aws_iam_instance_profile",
    "aws_iam_policy",
    "aws_ssm_parameter",
    "aws_ssm_document",
    "aws_autoscaling_group",
    "aws_s3_bucket",
    "aws_kms_alias",
}
EC2_ARN = {
    "aws_security_group": "security-group",
    "aws_launch_template": "launch-template",
    "aws_vpc_security_group_ingress_rule": "security-group-rule",
    "aws_vpc_security_group_egress_rule": "security-group-rule",
    "aws_instance": "instance",
}
SERVICE = {"lb": "elasticloadbalancing", "autoscaling": "autoscaling", "vpc": "ec2", "launch": "ec2"}


def _hex(seed: str, n: int = 17) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


def _block_pb(block: dict) -> pb.Schema.Block:
    attrs = [
        pb.Schema.Attribute(
            name=name,
            type=json.dumps(a["type"]).encode(),
            required=bool(a.get("required")),
            optional=bool(a.get("optional")),
            computed=bool(a.get("computed")),
        )
        for name, a in sorted(block["attributes"].items())
    ]
    blocks = [
        pb.Schema.NestedBlock(
            type_name=name,
            block=_block_pb(b["block"]),
            nesting=NESTING[b["nesting_mode"]],
            min_items=b.get("min_items") or 0,
            max_items=b.get("max_items") or 0,
        )
        for name, b in sorted(block["block_types"].items())
    ]
    return pb.Schema.Block(attributes=attrs, block_types=blocks)


def _empty(cty: Any) -> Any:
    if isinstance(cty, list) and cty[0] in ("list", "set"):
        return []
    if isinstance(cty, list) and cty[0] == "map":
        return {}
    return None


def conform(value: Any, block: dict) -> Any:
    """Every attribute and block of the schema present (null, or no blocks, where absent)."""
    if value is None or value is Unknown:
        return value
    out = {}
    for name in block["attributes"]:
        out[name] = value.get(name)
    for name, nested in block["block_types"].items():
        v = value.get(name)
        if nested["nesting_mode"] == "single":
            out[name] = conform(v, nested["block"])
        elif v is Unknown:
            out[name] = v
        else:
            out[name] = [conform(e, nested["block"]) for e in (v or [])]
    return out


def mark_unknown(value: Any, block: dict) -> Any:
    """A create's plan: computed attributes the configuration leaves unset become unknown."""
    if value is None or value is Unknown:
        return value
    out = dict(value)
    for name, a in block["attributes"].items():
        if a.get("computed") and out.get(name) is None:
            out[name] = Unknown
    for name, nested in block["block_types"].items():
        v = out.get(name)
        if nested["nesting_mode"] == "single":
            out[name] = mark_unknown(v, nested["block"])
        elif isinstance(v, list):
            out[name] = [mark_unknown(e, nested["block"]) for e in v]
    return out


class Faker:
    """Realistic values for what AWS would have filled in."""

    def __init__(self, region: str, fixtures: dict):
        self.region = region
        self.fixtures = fixtures
        self.account = fixtures.get("account_id", ACCOUNT)

    def arn(self, type_name: str, name: str, ident: str = "") -> str:
        parts = type_name.split("_")
        service = SERVICE.get(parts[1], parts[1])
        resource = "_".join(parts[2:]) or parts[1]
        if service == "iam":
            return f"arn:aws:iam::{self.account}:{resource.replace('_', '-')}/{name}"
        if service == "s3":
            return f"arn:aws:s3:::{name}"
        elb = f"arn:aws:elasticloadbalancing:{self.region}:{self.account}"
        if type_name == "aws_lb":
            return f"{elb}:loadbalancer/net/{name}/{_hex(name, 16)}"
        if type_name == "aws_lb_target_group":
            return f"{elb}:targetgroup/{name}/{_hex(name, 16)}"
        here = f"{self.region}:{self.account}"
        if type_name == "aws_kms_key":
            return f"arn:aws:kms:{here}:key/{name}"
        if type_name == "aws_kms_alias":
            return f"arn:aws:kms:{here}:{name}"
        if type_name == "aws_ssm_parameter":
            return f"arn:aws:ssm:{here}:parameter/{name.lstrip('/')}"
        if type_name == "aws_autoscaling_group":
            group = uuid.UUID(_hex(name, 32))
            return f"arn:aws:autoscaling:{here}:autoScalingGroup:{group}:autoScalingGroupName/{name}"
        if type_name in EC2_ARN:
            return f"arn:aws:ec2:{here}:{EC2_ARN[type_name]}/{ident}"
        return f"arn:aws:{service}:{here}:{resource.replace('_', '-')}/{name}"

    def resource(self, type_name: str, planned: dict, block: dict, seed: str) -> dict:
        state = dict(planned)
        name = state.get("name") if isinstance(state.get("name"), str) else None
        if "name" in state and state["name"] is Unknown:
            prefix = state.get("name_prefix") if isinstance(state.get("name_prefix"), str) else "terraform-"
            name = prefix + str(int(_hex(seed, 12), 16)).zfill(26)[:26]
            if type_name in ("aws_lb", "aws_lb_target_group"):
                name = name[:32]  # what ELB accepts
            state["name"] = name
        if type_name == "aws_kms_key":
            key_id = str(uuid.UUID(_hex(seed, 32)))
            state["key_id"] = key_id
            name = key_id
        if type_name == "aws_s3_bucket" and state.get("bucket") is Unknown:
            prefix = state.get("bucket_prefix")
            prefix = prefix if isinstance(prefix, str) else "terraform-"
            state["bucket"] = prefix + str(int(_hex(seed, 12), 16)).zfill(26)[:26]
        if type_name == "aws_s3_bucket":
            name = state["bucket"]
        ident = self.ident(type_name, name, state, seed)
        arn = self.arn(type_name, name or ident, ident)
        if type_name == "aws_lb_listener" and isinstance(state.get("load_balancer_arn"), str):
            arn = state["load_balancer_arn"].replace(":loadbalancer/", ":listener/") + "/" + _hex(seed, 16)
        if state.get("id") is Unknown:
            state["id"] = arn if type_name in ARN_ID else ident
        if state.get("arn") is Unknown:
            state["arn"] = arn
        if state.get("tags_all") is Unknown:
            state["tags_all"] = state.get("tags") if isinstance(state.get("tags"), dict) else {}
        if type_name == "aws_lb" and state.get("dns_name") is Unknown:
            state["dns_name"] = f"{name}-{_hex(seed, 16)}.elb.{self.region}.amazonaws.com"
        if type_name == "aws_launch_template":
            for key in ("latest_version", "default_version"):
                if state.get(key) is Unknown:
                    state[key] = 1
        return self.fill(state, block, seed, top=True)

    def ident(self, type_name: str, name: str | None, state: dict, seed: str) -> str:
        if type_name in ID_PREFIX:
            return ID_PREFIX[type_name] + _hex(seed)
        if type_name == "aws_kms_key":
            return state["key_id"]
        if name and type_name in NAMED_ID:
            return name
        for key in ("bucket", "role", "name"):
            if isinstance(state.get(key), str):
                return state[key]
        return f"{type_name.removeprefix('aws_').replace('_', '-')}-{_hex(seed)}"

    def fill(self, value: dict, block: dict, seed: str, top: bool = False) -> dict:
        """Unknowns left: computed-only attributes get a plausible value, optional ones null."""
        out = dict(value)
        for name, a in block["attributes"].items():
            if out.get(name) is not Unknown:
                continue
            if a.get("optional"):
                out[name] = None
            elif a["type"] == "string":
                out[name] = f"{name.replace('_', '-')}-{_hex(seed + name, 12)}"
            elif a["type"] == "number":
                out[name] = 0
            elif a["type"] == "bool":
                out[name] = False
            else:
                out[name] = _empty(a["type"])
        for name, nested in block["block_types"].items():
            v = out.get(name)
            if nested["nesting_mode"] == "single":
                if isinstance(v, dict):
                    out[name] = self.fill(v, nested["block"], seed + name)
            elif isinstance(v, list):
                out[name] = [self.fill(e, nested["block"], f"{seed}{name}{i}") for i, e in enumerate(v)]
        return out

    def data(self, type_name: str, config: dict, block: dict) -> dict:
        key = config.get("id") or config.get("name")
        fixture = self.fixtures.get("data", {}).get(type_name, {}).get(key or "", {})
        state = dict(config)
        region = self.region
        if type_name == "aws_region":
            region = config.get("name") or region
            state.update(name=region, id=region, endpoint=f"ec2.{region}.amazonaws.com", description=region)
        elif type_name == "aws_caller_identity":
            state.update(
                id=self.account,
                account_id=self.account,
                arn=f"arn:aws:iam::{self.account}:user/operator",
                user_id="AIDA" + _hex("user", 17).upper(),
            )
        elif type_name == "aws_partition":
            state.update(
                id="aws", partition="aws", dns_suffix="amazonaws.com", reverse_dns_prefix="com.amazonaws"
            )
        elif type_name == "aws_iam_policy_document":
            doc = policy_document(config)
            state.update(
                json=json.dumps(doc, indent=2),
                minified_json=json.dumps(doc, separators=(",", ":")),
                id=str(int(_hex(json.dumps(doc), 8), 16)),
            )
        elif type_name == "aws_ssm_parameter":
            state.update(
                id=config["name"],
                arn=f"arn:aws:ssm:{region}:{self.account}:parameter{config['name']}",
                type="String",
                value="ami-0" + _hex(config["name"], 16),
                insecure_value="ami-0" + _hex(config["name"], 16),
                version=1,
            )
        state.update(fixture)
        if "arn" in block["attributes"] and state.get("arn") is None and key:
            state["arn"] = self.arn(type_name, key)
        if "owner_id" in block["attributes"] and state.get("owner_id") is None:
            state["owner_id"] = self.account
        state = conform(state, block)
        if "tags" in state and state["tags"] is None:
            state["tags"] = {}
        return state


def _one_or_list(values: Any) -> Any:
    values = sorted(values) if values is not None else []
    return values[0] if len(values) == 1 else values


def policy_document(config: dict) -> dict:
    """aws_iam_policy_document's rendering: single values as strings, sets sorted, Allow by default."""
    statements = []
    for s in config.get("statement") or []:
        out: dict = {}
        if s.get("sid"):
            out["Sid"] = s["sid"]
        out["Effect"] = s.get("effect") or "Allow"
        for key, field in (("Action", "actions"), ("NotAction", "not_actions")):
            if s.get(field):
                out[key] = _one_or_list(s[field])
        for key, field in (("Resource", "resources"), ("NotResource", "not_resources")):
            if s.get(field):
                out[key] = _one_or_list(s[field])
        for key, field in (("Principal", "principals"), ("NotPrincipal", "not_principals")):
            if s.get(field):
                principals = {}
                for p in s[field]:
                    if p["type"] == "*" and set(p["identifiers"]) == {"*"}:
                        principals = "*"
                        break
                    principals.setdefault(p["type"], []).extend(p["identifiers"])
                if principals != "*":
                    principals = {k: _one_or_list(v) for k, v in principals.items()}
                out[key] = principals
        if s.get("condition"):
            conditions: dict = {}
            for c in s["condition"]:
                values = c["values"]
                value = values[0] if len(values) == 1 else values
                conditions.setdefault(c["test"], {})[c["variable"]] = value
            out["Condition"] = conditions
        statements.append(out)
    doc: dict = {"Version": config.get("version") or "2012-10-17"}
    if config.get("policy_id"):
        doc["Id"] = config["policy_id"]
    doc["Statement"] = statements
    return doc


class Servicer(rpc.ProviderServicer):
    def __init__(self, schema_path: Path, schema_response: pb.GetProviderSchema.Response, fixtures: dict):
        self.schema_path = schema_path
        self.response = schema_response
        self.fixtures = fixtures
        self.faker = Faker(os.environ.get("AWS_DEFAULT_REGION", "us-east-1"), fixtures)
        self._schema: dict | None = None
        self._lock = threading.Lock()

    def _block(self, kind: str, type_name: str) -> dict:
        # Read on first use: most provider processes Terraform starts only validate.
        with self._lock:
            if self._schema is None:
                self._schema = json.loads(self.schema_path.read_text())
        return self._schema[kind][type_name]["block"]

    def GetMetadata(self, request, context):
        meta = pb.GetMetadata
        return meta.Response(
            # Terraform then asks for the schema once per command, not once per provider process.
            server_capabilities=pb.ServerCapabilities(plan_destroy=True, get_provider_schema_optional=True),
            resources=[meta.ResourceMetadata(type_name=t) for t in self.response.resource_schemas],
            data_sources=[meta.DataSourceMetadata(type_name=t) for t in self.response.data_source_schemas],
        )

    def GetProviderSchema(self, request, context):
        return self.response

    def ValidateProviderConfig(self, request, context):
        return pb.ValidateProviderConfig.Response()

    def ValidateResourceConfig(self, request, context):
        return pb.ValidateResourceConfig.Response()

    def ValidateDataResourceConfig(self, request, context):
        return pb.ValidateDataResourceConfig.Response()

    def ConfigureProvider(self, request, context):
        config = read_dynamic_value(request.config) or {}
        if isinstance(config.get("region"), str):
            self.faker.region = config["region"]
        return pb.ConfigureProvider.Response()

    def UpgradeResourceState(self, request, context):
        state = json.loads(request.raw_state.json)
        block = self._block("resource_schemas", request.type_name)
        return pb.UpgradeResourceState.Response(upgraded_state=to_dynamic_value(conform(state, block)))

    def ReadResource(self, request, context):
        return pb.ReadResource.Response(new_state=request.current_state, private=request.private)

    def PlanResourceChange(self, request, context):
        block = self._block("resource_schemas", request.type_name)
        prior = read_dynamic_value(request.prior_state)
        proposed = read_dynamic_value(request.proposed_new_state)
        planned = mark_unknown(proposed, block) if prior is None and proposed is not None else proposed
        return pb.PlanResourceChange.Response(planned_state=to_dynamic_value(planned))

    def ApplyResourceChange(self, request, context):
        planned = read_dynamic_value(request.planned_state)
        if planned is None:
            return pb.ApplyResourceChange.Response(new_state=to_dynamic_value(None))
        block = self._block("resource_schemas", request.type_name)
        config = json.dumps(read_dynamic_value(request.config), sort_keys=True, default=str)
        state = self.faker.resource(request.type_name, planned, block, request.type_name + config)
        return pb.ApplyResourceChange.Response(new_state=to_dynamic_value(state))

    def ImportResourceState(self, request, context):
        return pb.ImportResourceState.Response(
            diagnostics=[pb.Diagnostic(severity=pb.Diagnostic.ERROR, summary="import is not supported here")]
        )

    def ReadDataSource(self, request, context):
        block = self._block("data_source_schemas", request.type_name)
        config = read_dynamic_value(request.config)
        state = self.faker.data(request.type_name, config, block)
        return pb.ReadDataSource.Response(state=to_dynamic_value(state))

    def StopProvider(self, request, context):
        return pb.StopProvider.Response()


def schema_response(schema_path: Path) -> pb.GetProviderSchema.Response:
    """The GetProviderSchema answer, serialized once beside the schema (building it takes seconds)."""
    cached = schema_path.with_suffix(".pb")
    if cached.exists() and cached.stat().st_mtime >= schema_path.stat().st_mtime:
        return pb.GetProviderSchema.Response.FromString(cached.read_bytes())
    schema = json.loads(schema_path.read_text())
    response = pb.GetProviderSchema.Response(
        provider=pb.Schema(version=0, block=_block_pb(schema["provider"]["block"])),
        provider_meta=pb.Schema(version=0, block=pb.Schema.Block()),
        resource_schemas={
            t: pb.Schema(version=s["version"], block=_block_pb(s["block"]))
            for t, s in schema["resource_schemas"].items()
        },
        data_source_schemas={
            t: pb.Schema(version=s["version"], block=_block_pb(s["block"]))
            for t, s in schema["data_source_schemas"].items()
        },
        server_capabilities=pb.ServerCapabilities(plan_destroy=True),
    )
    tmp = cached.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(response.SerializeToString())
    tmp.replace(cached)
    return response


def server_certificate(cache: Path) -> tuple[bytes, grpc.ServerCredentials]:
    """go-plugin's server certificate (AutoMTLS): made once a week, kept beside the schema."""
    path = cache / "server-cert.json"
    try:
        cert = json.loads(path.read_text())
        if cert["expires"] < time.time() + 86400:
            raise ValueError("expiring")
    except (OSError, ValueError, KeyError):
        from tf.runner import _self_signed_cert  # imports cryptography: only when making one

        _self_signed_cert()
        made = json.loads((Path.home() / ".cache" / "tf-python-provider" / "ssl_cert.json").read_text())
        cert = {**made, "expires": time.time() + 6 * 86400}
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cert))
        tmp.replace(path)
    import base64

    credentials = grpc.ssl_server_credentials(
        [(cert["key_pem"].encode(), cert["cert_pem"].encode())], require_client_auth=False
    )
    return base64.b64decode(cert["cert_chain"]), credentials


def serve(servicer: Servicer) -> None:
    """go-plugin's handshake: one line on stdout naming the socket and the server's certificate."""
    import base64

    stopped = futures.Future()

    class Controller(controller_rpc.GRPCControllerServicer):
        def Shutdown(self, request, context):
            stopped.set_result(True)
            return controller_pb.Empty()

    class Stdio(stdio_rpc.GRPCStdioServicer):
        def StreamStdio(self, request, context):
            return iter([])

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        options=[("grpc.max_send_message_length", 512 << 20), ("grpc.max_receive_message_length", 512 << 20)],
    )
    rpc.add_ProviderServicer_to_server(servicer, server)
    controller_rpc.add_GRPCControllerServicer_to_server(Controller(), server)
    stdio_rpc.add_GRPCStdioServicer_to_server(Stdio(), server)
    with tempfile.TemporaryDirectory() as tmp:
        sock = f"{tmp}/plugin.sock"
        chain, credentials = server_certificate(servicer.schema_path.parent)
        server.add_secure_port(f"unix://{sock}", credentials)
        server.start()
        cert = base64.b64encode(chain).decode().rstrip("=")
        print(f"1|6|unix|{sock}|grpc|{cert}", flush=True)
        stopped.result()
        server.stop(grace=0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schema", type=Path, required=True)
    args, _ = parser.parse_known_args(argv)
    fixtures_path = os.environ.get("KCLUSTER_TF_FIXTURES")
    fixtures = json.loads(Path(fixtures_path).read_text()) if fixtures_path else {}
    serve(Servicer(args.schema, schema_response(args.schema), fixtures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
