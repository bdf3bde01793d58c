"""IAM enforced on every call in the twin, before moto sees it.

A botocore hook stashes each call's API parameters (`before-parameter-build`) and, at `before-call`,
finds the caller from the access key that signs the request (`twin.iam.principals`), turns the call
into the evaluations AWS makes (`twin.iam.requests`, from the Service Authorization Reference),
evaluates each against the caller's identity policies, permissions boundary and the resource's own
policy (`twin.iam.policy`), and answers a denied call with AccessDenied in the service's own error
shape, as AWS does, without moto ever seeing it. What AWS services do on a caller's behalf is
authorized too: SSM calling KMS for a SecureString (kms:ViaService, the PARAMETER_ARN encryption
context), and service principals (EventBridge delivering to SQS, CloudWatch publishing to SNS) through
`authorize_service`.

A policy the evaluator cannot read (an unknown condition key or operator) is never an allow: the call
fails with UnsupportedPolicy, and the run with it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.handlers
from botocore.awsrequest import AWSResponse

from twin.iam import policy, requests, resources, s3_kms
from twin.iam.principals import Directory, Identity, service_principal

_ERROR_CODES = {"ec2": "UnauthorizedOperation"}
_QUERY_PROTOCOLS = {"query", "ec2"}


@dataclass(frozen=True)
class Denial:
    label: str
    action: str
    resource: str
    message: str


@dataclass
class Authorizer:
    directory: Directory
    account: str
    calls: int = 0
    denials: list[Denial] = field(default_factory=list)
    used: set[tuple[str, policy.StatementRef]] = field(default_factory=set)
    # Allow statements some call was denied without (see _find_necessary).
    necessary: set[tuple[str, policy.StatementRef]] = field(default_factory=set)
    by_action: Counter[str] = field(default_factory=Counter)
    on_denial: Callable[[Denial], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ----- boto3 calls

    def check_call(self, identity: Identity, call: requests.Call) -> Denial | None:
        """The first evaluation of `call` that AWS would refuse, or None when every one allows."""
        with self._lock:
            self.calls += 1
        checks = requests.checks_for(call)
        checks += _via_service_checks(call)
        for check in checks:
            denial = self.evaluate(identity, check.action, check.resource, check.context)
            if denial is not None:
                return denial
        return None

    def evaluate(
        self, identity: Identity, action: str, resource: str, context: Mapping[str, Any]
    ) -> Denial | None:
        document, kind = resources.resource_policy(resource) if resource != "*" else (None, "ordinary")
        resource_policy = policy.NamedPolicy(f"resource-policy:{resource}", document) if document else None
        full_context = {**_principal_keys(identity.principal), **context}
        request = policy.Request(identity.principal, action, resource, full_context)
        decision = policy.evaluate(
            request,
            identity.policies,
            boundary=identity.boundary,
            resource_policy=resource_policy,
            resource_policy_kind=kind,
        )
        if decision.allowed:
            self._find_necessary(identity, request, decision, resource_policy, kind)
        return self._record(identity.label, action, resource, decision)

    def _find_necessary(
        self,
        identity: Identity,
        request: policy.Request,
        decision: policy.Decision,
        resource_policy: policy.NamedPolicy | None,
        kind: policy.ResourcePolicyKind,
    ) -> None:
        """Which of the identity's own Allow statements this call could not do without: the call is
        evaluated again without each one that allowed it, and without AWS managed policies (AWS may
        change those; AmazonSSMManagedInstanceCore's GetParameter on "*" is not what kcluster relies on).
        A statement never found necessary in any run is one whose removal no run would notice."""
        own = tuple(named for named in identity.policies if not named.name.startswith("aws-managed:"))
        for ref in decision.allowing:
            if (identity.label, ref) in self.necessary or ref.policy.startswith("aws-managed:"):
                continue
            without = tuple(without_statement(named, ref) for named in own)
            if without == own:
                continue  # a resource policy's statement, not the identity's
            again = policy.evaluate(
                request,
                without,
                boundary=identity.boundary,
                resource_policy=resource_policy,
                resource_policy_kind=kind,
            )
            if not again.allowed:
                with self._lock:
                    self.necessary.add((identity.label, ref))

    # ----- what AWS services do on the account's behalf

    def authorize_service(
        self, service: str, action: str, resource: str, context: Mapping[str, Any]
    ) -> Denial | None:
        """A service principal (events.amazonaws.com, cloudwatch.amazonaws.com) acting on a resource:
        only the resource's own policy can allow it (and, for an encrypted target, the key's policy)."""
        principal = service_principal(service, self.account)
        identity = Identity(principal, f"service:{service}", ())
        return self.evaluate(identity, action, resource, {"aws:SourceAccount": self.account, **context})

    # ----- bookkeeping

    def _record(self, label: str, action: str, resource: str, decision: policy.Decision) -> Denial | None:
        with self._lock:
            self.by_action[action] += 1
            for statement in decision.allowing:
                self.used.add((label, statement))
            if decision.allowed:
                return None
            denial = Denial(label, action, resource, decision.message())
            self.denials.append(denial)
        if self.on_denial is not None:
            self.on_denial(denial)
        return denial

    def unused_statements(self, identities: Iterable[Identity]) -> list[str]:
        """Allow statements of these identities' own policies that allowed nothing in this run."""
        unused = []
        for identity in identities:
            for named in identity.policies:
                if named.name.startswith("aws-managed:"):
                    continue
                for ref in allow_statements(named):
                    if (identity.label, ref) not in self.used:
                        unused.append(f"{identity.label} {ref.policy} {ref.sid_or_index}")
        return sorted(set(unused))


def without_statement(named: policy.NamedPolicy, ref: policy.StatementRef) -> policy.NamedPolicy:
    if named.name != ref.policy:
        return named
    statements = named.document.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    kept = [
        statement
        for index, statement in enumerate(statements)
        if str(statement.get("Sid") or index) != ref.sid_or_index
    ]
    return policy.NamedPolicy(named.name, {**named.document, "Statement": kept})


def allow_statements(named: policy.NamedPolicy) -> list[policy.StatementRef]:
    statements = named.document.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    return [
        policy.StatementRef(named.name, str(statement.get("Sid") or index))
        for index, statement in enumerate(statements)
        if statement.get("Effect") == "Allow"
    ]


def _principal_keys(principal: policy.Principal) -> dict[str, Any]:
    keys: dict[str, Any] = {"aws:PrincipalAccount": principal.account}
    if principal.service is not None:
        keys["aws:PrincipalServiceName"] = principal.service
        return keys
    keys["aws:PrincipalArn"] = principal.role_arn or principal.arn
    keys["aws:PrincipalType"] = "AssumedRole" if principal.role_arn else "User"
    return keys


def _via_service_checks(call: requests.Call) -> list[requests.Check]:
    """KMS calls SSM makes with the caller's permissions for a SecureString (kms:ViaService = SSM), and
    S3 for an object encrypted with a KMS key (twin/iam/s3_kms.py)."""
    if call.service == "s3":
        return s3_kms.checks(call)
    if call.service != "ssm":
        return []
    match call.operation:
        case "GetParameter" | "GetParameters" if call.params.get("WithDecryption"):
            names = requests._strings(call.params.get("Name")) + requests._strings(call.params.get("Names"))
            keyed = [(name, resources.secure_string_key(name, call.region, call.account)) for name in names]
            return [_kms_check(call, "kms:Decrypt", name, key) for name, key in keyed if key]
        case "PutParameter" if call.params.get("Type") == "SecureString":
            action = "kms:GenerateDataKey" if call.params.get("Tier") == "Advanced" else "kms:Encrypt"
            key = call.params.get("KeyId") or "alias/aws/ssm"
            return [_kms_check(call, action, str(call.params["Name"]), key)]
    return []


def _kms_check(call: requests.Call, action: str, name: str, key: str) -> requests.Check:
    parameter_arn = f"arn:aws:ssm:{call.region}:{call.account}:parameter/{name.lstrip('/')}"
    context = requests.request_context(call, action, {}) | {
        "kms:ViaService": f"ssm.{call.region}.amazonaws.com",
        "kms:CallerAccount": call.account,
        "kms:EncryptionContext:PARAMETER_ARN": parameter_arn,
        "kms:EncryptionContextKeys": ["PARAMETER_ARN"],
    }
    return requests.Check(action, resources.key_arn(key, call.region, call.account), context)


# ----- the botocore hook


_active: Authorizer | None = None
_STASH = "kcluster_iam_params"


def _stash_params(params: Any = None, context: Any = None, **_: Any) -> None:
    if _active is not None and context is not None:
        context[_STASH] = dict(params or {})


def _check_before_call(model: Any = None, request_signer: Any = None, context: Any = None, **_: Any) -> Any:
    authorizer = _active
    if authorizer is None or model is None or request_signer is None:
        return None
    credentials = request_signer._credentials
    access_key = credentials.access_key if credentials is not None else None
    identity = authorizer.directory.identity(access_key) if access_key else None
    if identity is None:
        return None
    service_model = model.service_model
    call = requests.Call(
        service=service_model.service_name,
        operation=model.name,
        params=(context or {}).get(_STASH, {}),
        region=request_signer._region_name,
        account=authorizer.account,
    )
    denial = authorizer.check_call(identity, call)
    if denial is None:
        return None
    return _access_denied(service_model, denial)


def _access_denied(service_model: Any, denial: Denial) -> tuple[AWSResponse, dict[str, Any]]:
    protocol = service_model.metadata.get("protocol", "json")
    code = _ERROR_CODES.get(service_model.service_name) or (
        "AccessDenied" if protocol in _QUERY_PROTOCOLS else "AccessDeniedException"
    )
    http = AWSResponse("https://iam.twin.invalid/", 403, {}, None)
    parsed = {
        "Error": {"Code": code, "Message": denial.message},
        "ResponseMetadata": {"HTTPStatusCode": 403, "HTTPHeaders": {}},
    }
    return http, parsed


_HANDLERS = (("before-parameter-build", _stash_params), ("before-call", _check_before_call))


def install(authorizer: Authorizer) -> Callable[[], None]:
    """Enforce with `authorizer` on every botocore session (new ones via BUILTIN_HANDLERS); returns undo."""
    global _active
    _active = authorizer
    for entry in _HANDLERS:
        if entry not in botocore.handlers.BUILTIN_HANDLERS:
            botocore.handlers.BUILTIN_HANDLERS.append(entry)
    restore_bucket_check = s3_kms.defer_bucket_policies_to_the_twin()
    default_session = boto3.DEFAULT_SESSION
    if default_session is not None:
        events = default_session._session.get_component("event_emitter")
        for name, handler in _HANDLERS:
            events.unregister(name, handler)
            events.register(name, handler)

    def undo() -> None:
        global _active
        if _active is authorizer:
            _active = None
            restore_bucket_check()

    return undo
