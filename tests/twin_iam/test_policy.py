"""The twin's IAM evaluator against AWS's documented evaluation logic."""

from __future__ import annotations

from typing import Any

import pytest

from twin.iam import catalog
from twin.iam.policy import (
    Decision,
    NamedPolicy,
    Principal,
    Request,
    StatementRef,
    UnsupportedPolicy,
    evaluate,
)

ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/kcluster-node"
SESSION_ARN = f"arn:aws:sts::{ACCOUNT}:assumed-role/kcluster-node/i-0abc"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
NODE = Principal(arn=SESSION_ARN, account=ACCOUNT, role_arn=ROLE_ARN)
USER = Principal(arn=f"arn:aws:iam::{ACCOUNT}:user/alice", account=ACCOUNT)
EVENTS = Principal(arn="events.amazonaws.com", account=ACCOUNT, service="events.amazonaws.com")

PARAM = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/kcluster/demo/join"
INSTANCE = f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0abc"
QUEUE = f"arn:aws:sqs:us-east-1:{ACCOUNT}:kcluster-demo-events"
RULE = f"arn:aws:events:us-east-1:{ACCOUNT}:rule/kcluster-demo-lifecycle"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def stmt(
    effect: str = "Allow", action: Any = "ssm:GetParameter", resource: Any = PARAM, **extra: Any
) -> dict:
    return {"Effect": effect, "Action": action, "Resource": resource, **extra}


def pol(name: str, *statements: dict, version: str = "2012-10-17") -> NamedPolicy:
    return NamedPolicy(name, {"Version": version, "Statement": list(statements)})


def req(
    action: str = "ssm:GetParameter",
    resource: str = PARAM,
    principal: Principal = NODE,
    **context: Any,
) -> Request:
    return Request(principal, action, resource, context)


def ctx_req(context: dict[str, Any], action: str = "ssm:GetParameter", resource: str = PARAM) -> Request:
    """Context keys with ":" and "/" cannot be keyword arguments."""
    return Request(NODE, action, resource, context)


def allowed_by(condition: dict, context: dict[str, Any]) -> bool:
    return evaluate(ctx_req(context), [pol("p", stmt(Condition=condition))]).allowed


# --- basic allow / deny -----------------------------------------------------------------------


def test_identity_allow():
    decision = evaluate(req(), [pol("node", stmt(Sid="ReadJoin"))])
    assert decision.allowed
    assert decision.reason == "allowed"
    assert decision.allowing == (StatementRef("node", "ReadJoin"),)


def test_implicit_deny_when_nothing_allows():
    decision = evaluate(req(), [pol("node", stmt(action="ssm:PutParameter"))])
    assert not decision.allowed
    assert decision.reason == "implicit-deny"
    assert decision.message() == (
        f"User: {SESSION_ARN} is not authorized to perform: ssm:GetParameter on resource: {PARAM} "
        "because no identity-based policy allows the ssm:GetParameter action"
    )


def test_explicit_deny_in_another_policy_beats_allow():
    # GIVEN one policy allowing everything and another denying the parameter path
    admin = pol("admin", stmt(action="*", resource="*"))
    fence = pol("fence", stmt("Deny", action="ssm:*", resource="arn:aws:ssm:*:*:parameter/kcluster/*"))
    # WHEN the node reads a parameter under the fence
    decision = evaluate(req(), [admin, fence])
    # THEN the deny wins, and both matching statements are reported
    assert not decision.allowed
    assert decision.reason == "explicit-deny"
    assert decision.allowing == (StatementRef("admin", "0"),)
    assert decision.denying == (StatementRef("fence", "0"),)
    assert decision.message().endswith("with an explicit deny in an identity-based policy")


def test_every_allowing_statement_is_reported_for_coverage():
    decision = evaluate(req(), [pol("a", stmt(Sid="One"), stmt(action="ssm:Get*")), pol("b", stmt())])
    assert decision.allowing == (StatementRef("a", "One"), StatementRef("a", "1"), StatementRef("b", "0"))


def test_single_statement_object_and_string_values():
    document = {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "ssm:*", "Resource": "*"}}
    assert evaluate(req(), [NamedPolicy("p", document)]).allowed


def test_not_action_allows_everything_else():
    policy = pol("p", {"Effect": "Allow", "NotAction": ["iam:*", "kms:*"], "Resource": "*"})
    assert evaluate(req(), [policy]).allowed
    assert not evaluate(req("kms:Decrypt", KEY), [policy]).allowed


def test_not_resource_with_deny_protects_all_but_one_path():
    admin = pol("admin", stmt(action="ssm:*", resource="*"))
    only_demo = pol("fence", {"Effect": "Deny", "Action": "ssm:*", "NotResource": PARAM})
    assert evaluate(req(), [admin, only_demo]).allowed
    other = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/other"
    assert evaluate(req(resource=other), [admin, only_demo]).reason == "explicit-deny"


def test_action_wildcards_are_case_insensitive():
    for pattern in ("SSM:getparam*", "ssm:Get?arameter", "*", "ssm:*"):
        assert evaluate(req(), [pol("p", stmt(action=pattern))]).allowed, pattern
    assert not evaluate(req(), [pol("p", stmt(action="ssm:GetParameters"))]).allowed
    assert not evaluate(req(), [pol("p", stmt(action="ssm:Get?"))]).allowed


def test_resource_wildcards_are_case_sensitive_and_span_separators():
    assert evaluate(req(), [pol("p", stmt(resource="arn:aws:ssm:*/join"))]).allowed  # crosses ":" and "/"
    assert evaluate(req(), [pol("p", stmt(resource="arn:aws:ssm:us-east-?:*:parameter/kcluster/*"))]).allowed
    assert not evaluate(req(), [pol("p", stmt(resource="arn:aws:ssm:*:*:parameter/KCLUSTER/*"))]).allowed


def test_an_action_without_resource_types_needs_star():
    # GIVEN ssm:ListCommands, which the SAR lists without resource types: the request resource is "*"
    scoped = pol("p", stmt(action="ssm:ListCommands", resource=f"arn:aws:ssm:*:{ACCOUNT}:*"))
    assert not evaluate(req("ssm:ListCommands", "*"), [scoped]).allowed
    assert evaluate(
        req("ssm:ListCommands", "*"), [pol("p", stmt(action="ssm:ListCommands", resource="*"))]
    ).allowed


def test_unknown_request_action_raises():
    with pytest.raises(catalog.UnknownAction):
        evaluate(req("ssm:GetParam"), [])


# --- conditions: string, set and missing-key semantics ---------------------------------------------


@pytest.mark.parametrize(
    ("operator", "policy_value", "actual", "expected"),
    [
        ("StringEquals", "demo", "demo", True),
        ("StringEquals", "demo", "Demo", False),
        ("StringEquals", ["a", "demo"], "demo", True),  # values of one key are ORed
        ("StringNotEquals", "demo", "demo", False),
        ("StringNotEquals", ["a", "b"], "demo", True),
        ("StringNotEquals", ["a", "demo"], "demo", False),
        ("StringEqualsIgnoreCase", "DEMO", "demo", True),
        ("StringNotEqualsIgnoreCase", "DEMO", "demo", False),
        ("StringLike", "de*", "demo", True),
        ("StringLike", "d?mo", "demo", True),
        ("StringLike", "D*", "demo", False),
        ("StringNotLike", "prod-*", "demo", True),
        ("StringNotLike", "de*", "demo", False),
    ],
)
def test_string_operators(operator, policy_value, actual, expected):
    condition = {operator: {"aws:ResourceTag/kcluster:cluster": policy_value}}
    assert allowed_by(condition, {"aws:ResourceTag/kcluster:cluster": actual}) is expected


def test_condition_key_and_tag_key_names_are_case_insensitive():
    condition = {"StringEquals": {"AWS:resourcetag/KCluster:Cluster": "demo"}}
    assert allowed_by(condition, {"aws:ResourceTag/kcluster:cluster": "demo"})


def test_blocks_and_keys_are_anded():
    condition = {
        "StringEquals": {"aws:ResourceTag/kcluster:cluster": "demo", "aws:RequestedRegion": "us-east-1"},
        "Bool": {"aws:SecureTransport": "true"},
    }
    full = {
        "aws:ResourceTag/kcluster:cluster": "demo",
        "aws:RequestedRegion": "us-east-1",
        "aws:SecureTransport": True,
    }
    assert allowed_by(condition, full)
    assert not allowed_by(condition, {**full, "aws:RequestedRegion": "eu-west-1"})
    assert not allowed_by(condition, {**full, "aws:SecureTransport": False})


@pytest.mark.parametrize(
    ("operator", "expected"),
    [
        ("StringEquals", False),
        ("StringLike", False),
        ("ArnLike", False),
        ("StringNotEquals", True),  # AWS: negated operators match an absent key
        ("StringNotLike", True),
        ("StringNotEqualsIgnoreCase", True),
        ("ArnNotLike", True),
        ("ArnNotEquals", True),
        ("StringEqualsIfExists", True),
        ("StringNotEqualsIfExists", True),
        ("ForAnyValue:StringEquals", False),
        ("ForAnyValue:StringNotEquals", False),
        ("ForAllValues:StringEquals", True),
        ("ForAllValues:StringNotEquals", True),
    ],
)
def test_missing_key(operator, expected):
    # GIVEN a condition on aws:SourceArn, and a request without that key
    assert allowed_by({operator: {"aws:SourceArn": RULE}}, {}) is expected


def test_if_exists_applies_the_operator_when_the_key_is_present():
    condition = {"StringEqualsIfExists": {"aws:ResourceTag/kcluster:cluster": "demo"}}
    assert allowed_by(condition, {"aws:ResourceTag/kcluster:cluster": "demo"})
    assert not allowed_by(condition, {"aws:ResourceTag/kcluster:cluster": "prod"})


def test_for_any_value_and_for_all_values_on_a_multivalued_key():
    any_value = {"ForAnyValue:StringEquals": {"aws:TagKeys": ["kcluster:cluster", "Name"]}}
    all_values = {"ForAllValues:StringEquals": {"aws:TagKeys": ["kcluster:cluster", "Name"]}}
    none_of = {"ForAllValues:StringNotEquals": {"aws:TagKeys": ["owner"]}}
    assert allowed_by(any_value, {"aws:TagKeys": ["Name", "extra"]})
    assert not allowed_by(any_value, {"aws:TagKeys": ["extra"]})
    assert allowed_by(all_values, {"aws:TagKeys": ["Name", "kcluster:cluster"]})
    assert not allowed_by(all_values, {"aws:TagKeys": ["Name", "extra"]})
    assert allowed_by(all_values, {"aws:TagKeys": []})  # empty counts as missing: vacuously true
    assert not allowed_by(any_value, {"aws:TagKeys": []})
    assert allowed_by(none_of, {"aws:TagKeys": ["Name"]})
    assert not allowed_by(none_of, {"aws:TagKeys": ["Name", "owner"]})


def test_for_any_value_string_like_over_called_via():
    condition = {"ForAnyValue:StringLike": {"aws:CalledVia": "cloudformation.*"}}
    assert allowed_by(condition, {"aws:CalledVia": ["athena.amazonaws.com", "cloudformation.amazonaws.com"]})
    assert not allowed_by(condition, {"aws:CalledVia": ["athena.amazonaws.com"]})


def test_null():
    tagged = {"aws:ResourceTag/kcluster:cluster": "demo"}
    assert allowed_by({"Null": {"aws:ResourceTag/kcluster:cluster": "false"}}, tagged)
    assert not allowed_by({"Null": {"aws:ResourceTag/kcluster:cluster": "true"}}, tagged)
    assert allowed_by({"Null": {"aws:ResourceTag/kcluster:cluster": True}}, {})
    assert not allowed_by({"Null": {"aws:ResourceTag/kcluster:cluster": "false"}}, {})


@pytest.mark.parametrize(
    ("operator", "policy_value", "actual", "expected"),
    [
        ("NumericEquals", "3", 3, True),
        ("NumericEquals", "3", "3.0", True),
        ("NumericNotEquals", "3", 4, True),
        ("NumericLessThan", "10", 9, True),
        ("NumericLessThan", "10", 10, False),
        ("NumericLessThanEquals", "10", 10, True),
        ("NumericGreaterThan", "10", 11, True),
        ("NumericGreaterThan", "10", 10, False),
        ("NumericGreaterThanEquals", 10, 10, True),
        ("NumericLessThan", "10", "not-a-number", False),
    ],
)
def test_numeric_operators(operator, policy_value, actual, expected):
    condition = {operator: {"aws:MultiFactorAuthAge": policy_value}}
    assert allowed_by(condition, {"aws:MultiFactorAuthAge": actual}) is expected


@pytest.mark.parametrize(
    ("operator", "policy_value", "actual", "expected"),
    [
        ("DateEquals", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00+00:00", True),
        ("DateEquals", "2026-01-01T00:00:00Z", 1767225600, True),  # epoch seconds on the request side
        ("DateNotEquals", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", True),
        ("DateLessThan", "2026-06-01T00:00:00Z", "2026-01-01T00:00:00Z", True),
        ("DateLessThan", "1767225600", "2026-01-01T00:00:00Z", False),  # epoch on the policy side
        ("DateLessThanEquals", "1767225600", "2026-01-01T00:00:00Z", True),
        ("DateGreaterThan", "2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z", True),
        ("DateGreaterThanEquals", "2026-01-01", "2026-01-01T00:00:00Z", True),
    ],
)
def test_date_operators(operator, policy_value, actual, expected):
    assert allowed_by({operator: {"aws:CurrentTime": policy_value}}, {"aws:CurrentTime": actual}) is expected


def test_bool_accepts_json_and_string_values():
    assert allowed_by({"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": True})
    assert allowed_by({"Bool": {"aws:SecureTransport": False}}, {"aws:SecureTransport": "False"})
    assert not allowed_by({"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": False})
    assert not allowed_by({"Bool": {"aws:SecureTransport": "true"}}, {})
    assert allowed_by({"BoolIfExists": {"aws:SecureTransport": "true"}}, {})


def test_binary_equals_compares_the_base64_text():
    assert allowed_by({"BinaryEquals": {"aws:userid": "QmluYXJ5"}}, {"aws:userid": "QmluYXJ5"})
    assert not allowed_by({"BinaryEquals": {"aws:userid": "QmluYXJ5"}}, {"aws:userid": "Qmlu"})


def test_ip_address_operators():
    office = {"IpAddress": {"aws:SourceIp": ["203.0.113.0/24", "2001:db8::/32"]}}
    outside = {"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}
    assert allowed_by(office, {"aws:SourceIp": "203.0.113.9"})
    assert allowed_by(office, {"aws:SourceIp": "2001:db8::1"})
    assert not allowed_by(office, {"aws:SourceIp": "198.51.100.1"})
    assert allowed_by(outside, {"aws:SourceIp": "198.51.100.1"})
    assert not allowed_by(outside, {"aws:SourceIp": "203.0.113.9"})


@pytest.mark.parametrize(
    ("operator", "policy_value", "expected"),
    [
        ("ArnEquals", RULE, True),
        ("ArnLike", f"arn:aws:events:*:{ACCOUNT}:rule/kcluster-*", True),
        ("ArnEquals", f"arn:aws:events:*:{ACCOUNT}:rule/kcluster-*", True),  # ArnEquals takes wildcards too
        ("ArnLike", "arn:aws:*:rule/kcluster-demo-lifecycle", False),  # "*" stays within one ARN field
        ("ArnLike", "arn:aws:events:us-east-1:*:rule/*", True),
        ("ArnLike", "arn:aws:events:us-east-1:*:RULE/*", False),
        ("ArnLike", "*", True),
        ("ArnNotEquals", RULE, False),
        ("ArnNotLike", "arn:aws:events:*:*:rule/other-*", True),
        ("ArnNotLike", "arn:aws:events:*:*:rule/kcluster-*", False),
    ],
)
def test_arn_operators(operator, policy_value, expected):
    assert allowed_by({operator: {"aws:SourceArn": policy_value}}, {"aws:SourceArn": RULE}) is expected


def test_ssm_resource_tag_on_an_instance_scopes_send_command():
    # GIVEN a control-plane policy that may run commands only on instances of its own cluster
    policy = pol(
        "control-plane",
        stmt(action="ssm:SendCommand", resource="arn:aws:ssm:us-east-1::document/kcluster-*"),
        stmt(
            action="ssm:SendCommand",
            resource="arn:aws:ec2:*:*:instance/*",
            Condition={"StringEquals": {"ssm:resourceTag/kcluster:cluster": "demo"}},
        ),
    )
    doc = "arn:aws:ssm:us-east-1::document/kcluster-join"
    ours = {"ssm:resourceTag/kcluster:cluster": "demo"}
    theirs = {"ssm:resourceTag/kcluster:cluster": "prod"}
    # THEN the document is allowed, our instance too, another cluster's instance not
    assert evaluate(Request(NODE, "ssm:SendCommand", doc, ours), [policy]).allowed
    assert evaluate(Request(NODE, "ssm:SendCommand", INSTANCE, ours), [policy]).allowed
    assert not evaluate(Request(NODE, "ssm:SendCommand", INSTANCE, theirs), [policy]).allowed
    assert not evaluate(Request(NODE, "ssm:SendCommand", INSTANCE, {}), [policy]).allowed


# --- policy variables -----------------------------------------------------------------------------


def test_policy_variable_in_resource():
    policy = pol("p", stmt(resource="arn:aws:ssm:*:*:parameter/home/${aws:username}/*"))
    mine = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/home/alice/token"
    theirs = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/home/bob/token"
    # aws:username comes from the IAM user's ARN when the caller does not set it
    assert evaluate(req(resource=mine, principal=USER), [policy]).allowed
    assert not evaluate(req(resource=theirs, principal=USER), [policy]).allowed


def test_missing_policy_variable_makes_the_statement_not_match():
    # GIVEN a role session: no aws:username in its context
    allow = pol("p", stmt(resource="arn:aws:ssm:*:*:parameter/home/${aws:username}/*"))
    home = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/home/alice/token"
    assert not evaluate(req(resource=home), [allow]).allowed
    # AND a Deny with the variable does not apply either
    admin = pol("admin", stmt(action="ssm:*", resource="*"))
    deny = pol("deny", stmt("Deny", resource="arn:aws:ssm:*:*:parameter/home/${aws:username}/*"))
    assert evaluate(req(resource=home), [admin, deny]).allowed


def test_policy_variable_default_value():
    allow = pol("p", stmt(resource="arn:aws:ssm:*:*:parameter/home/${aws:username, 'nobody'}/*"))
    assert evaluate(req(resource=f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/home/nobody/x"), [allow]).allowed


def test_policy_variable_in_condition_value():
    condition = {"StringEquals": {"aws:ResourceTag/owner": "${aws:PrincipalTag/team}"}}
    assert allowed_by(condition, {"aws:ResourceTag/owner": "infra", "aws:PrincipalTag/team": "infra"})
    assert not allowed_by(condition, {"aws:ResourceTag/owner": "infra", "aws:PrincipalTag/team": "web"})
    assert not allowed_by(condition, {"aws:ResourceTag/owner": "infra"})


def test_variable_values_are_literal_even_with_wildcard_characters():
    # GIVEN a tag value "*" substituted into a StringLike pattern
    condition = {"StringLike": {"aws:ResourceTag/owner": "team-${aws:PrincipalTag/team}"}}
    assert not allowed_by(condition, {"aws:ResourceTag/owner": "team-infra", "aws:PrincipalTag/team": "*"})
    assert allowed_by(condition, {"aws:ResourceTag/owner": "team-*", "aws:PrincipalTag/team": "*"})


def test_escape_variables_are_literal_characters():
    literal_star = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/odd*name"
    policy = pol("p", stmt(resource="arn:aws:ssm:*:*:parameter/odd${*}name"))
    assert evaluate(req(resource=literal_star), [policy]).allowed
    assert not evaluate(req(resource=f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/oddXname"), [policy]).allowed
    dollar = pol("p", stmt(resource="arn:aws:ssm:*:*:parameter/${$}x${?}"))
    assert evaluate(req(resource=f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/$x?"), [dollar]).allowed


def test_variables_are_plain_text_in_old_policy_versions():
    # AWS only substitutes variables in Version 2012-10-17 policies
    policy = pol("p", stmt(resource="arn:aws:ssm:*:*:parameter/home/${aws:username}/*"), version="2008-10-17")
    home = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/home/alice/x"
    assert not evaluate(req(resource=home, principal=USER), [policy]).allowed
    literal = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/home/${{aws:username}}/x"
    assert evaluate(req(resource=literal, principal=USER), [policy]).allowed


# --- permissions boundaries ----------------------------------------------------------------------


def test_boundary_cuts_an_identity_allow():
    identity = [pol("node", stmt(action="ssm:*", resource="*"))]
    boundary = pol("boundary", stmt(action="ssm:PutParameter", resource="*"))
    decision = evaluate(req(), identity, boundary=boundary)
    assert not decision.allowed
    assert decision.reason == "boundary-deny"
    assert decision.message().endswith("because no permissions boundary allows the ssm:GetParameter action")
    assert evaluate(req("ssm:PutParameter"), identity, boundary=boundary).allowed


def test_boundary_alone_grants_nothing():
    decision = evaluate(req(), [], boundary=pol("boundary", stmt(action="*", resource="*")))
    assert decision.reason == "implicit-deny"


def test_explicit_deny_in_boundary():
    decision = evaluate(
        req(), [pol("node", stmt())], boundary=pol("b", stmt("Deny", action="*", resource="*"))
    )
    assert decision.reason == "explicit-deny"
    assert decision.message().endswith("with an explicit deny in a permissions boundary")


# --- resource policies --------------------------------------------------------------------------


def _queue_policy(principal: Any, **extra: Any) -> NamedPolicy:
    return pol("queue", {"Principal": principal, **stmt(action="sqs:SendMessage", resource=QUEUE), **extra})


def test_service_principal_with_source_arn_reaches_the_queue():
    # GIVEN the EventBridge rule -> SQS queue policy kcluster writes
    queue = _queue_policy(
        {"Service": "events.amazonaws.com"}, Condition={"ArnEquals": {"aws:SourceArn": RULE}}
    )
    # WHEN EventBridge delivers for our rule, THEN the queue policy alone allows it
    ours = Request(EVENTS, "sqs:SendMessage", QUEUE, {"aws:SourceArn": RULE})
    decision = evaluate(ours, [], resource_policy=queue)
    assert decision.allowed
    assert decision.allowing == (StatementRef("queue", "0"),)
    # AND another rule's delivery, or one without a source, is refused
    other = Request(EVENTS, "sqs:SendMessage", QUEUE, {"aws:SourceArn": RULE + "-other"})
    assert not evaluate(other, [], resource_policy=queue).allowed
    assert not evaluate(Request(EVENTS, "sqs:SendMessage", QUEUE, {}), [], resource_policy=queue).allowed
    # AND an IAM role cannot use the service grant
    as_role = Request(NODE, "sqs:SendMessage", QUEUE, {"aws:SourceArn": RULE})
    assert not evaluate(as_role, [], resource_policy=queue).allowed


def test_account_root_principal_grants_nothing_alone():
    for principal in ({"AWS": ROOT}, {"AWS": ACCOUNT}):
        queue = _queue_policy(principal)
        # WHEN the role has no identity policy, THEN denied: the root principal only delegates to IAM
        decision = evaluate(req("sqs:SendMessage", QUEUE), [], resource_policy=queue)
        assert decision.reason == "implicit-deny"
        assert decision.allowing == (StatementRef("queue", "0"),)
        # AND with an identity allow, allowed
        identity = [pol("node", stmt(action="sqs:SendMessage", resource=QUEUE))]
        assert evaluate(req("sqs:SendMessage", QUEUE), identity, resource_policy=queue).allowed


def test_resource_policy_naming_the_session_or_user_allows_alone_even_past_a_boundary():
    boundary = pol("boundary", stmt(action="ssm:*", resource="*"))
    session_grant = _queue_policy({"AWS": SESSION_ARN})
    assert evaluate(
        req("sqs:SendMessage", QUEUE), [], boundary=boundary, resource_policy=session_grant
    ).allowed
    user_grant = _queue_policy({"AWS": [USER.arn]})
    assert evaluate(req("sqs:SendMessage", QUEUE, principal=USER), [], resource_policy=user_grant).allowed


def test_resource_policy_naming_the_role_is_limited_by_the_boundary():
    role_grant = _queue_policy({"AWS": ROLE_ARN})
    # GIVEN no boundary: the role ARN grant covers its sessions
    assert evaluate(req("sqs:SendMessage", QUEUE), [], resource_policy=role_grant).allowed
    # GIVEN a boundary without sqs: the implicit deny in the boundary limits the role-ARN grant
    boundary = pol("boundary", stmt(action="ssm:*", resource="*"))
    decision = evaluate(req("sqs:SendMessage", QUEUE), [], boundary=boundary, resource_policy=role_grant)
    assert decision.reason == "boundary-deny"


def test_resource_policy_for_someone_else_does_not_apply():
    queue = _queue_policy({"AWS": f"arn:aws:iam::{ACCOUNT}:role/other"})
    decision = evaluate(req("sqs:SendMessage", QUEUE), [], resource_policy=queue)
    assert decision.reason == "implicit-deny"
    assert decision.allowing == ()


def test_explicit_deny_in_resource_policy_wins_and_account_principal_denies_everyone_in_it():
    identity = [pol("node", stmt(action="sqs:*", resource="*"))]
    queue = pol("queue", {"Principal": {"AWS": ROOT}, **stmt("Deny", action="sqs:*", resource=QUEUE)})
    decision = evaluate(req("sqs:SendMessage", QUEUE), identity, resource_policy=queue)
    assert decision.reason == "explicit-deny"
    assert decision.message().endswith("with an explicit deny in a resource-based policy")


def test_star_principal_with_source_account_condition():
    queue = _queue_policy("*", Condition={"StringEquals": {"aws:SourceAccount": ACCOUNT}})
    delivery = Request(EVENTS, "sqs:SendMessage", QUEUE, {"aws:SourceAccount": ACCOUNT})
    assert evaluate(delivery, [], resource_policy=queue).allowed
    assert not evaluate(Request(EVENTS, "sqs:SendMessage", QUEUE, {}), [], resource_policy=queue).allowed


# --- KMS key policies ----------------------------------------------------------------------------


def _key_policy(*statements: dict) -> NamedPolicy:
    return pol("key", *statements)


def _kms(principal: Any, **extra: Any) -> dict:
    return {
        "Principal": principal,
        **stmt(action=["kms:Decrypt", "kms:GenerateDataKey*"], resource="*"),
        **extra,
    }


def _decrypt(identity: list[NamedPolicy], key_policy: NamedPolicy | None, **context: Any) -> Decision:
    request = Request(NODE, "kms:Decrypt", KEY, context)
    return evaluate(request, identity, resource_policy=key_policy, resource_policy_kind="kms-key-policy")


def test_key_policy_granting_the_role_directly():
    assert _decrypt([], _key_policy(_kms({"AWS": ROLE_ARN}))).allowed


def test_key_policy_root_delegation_requires_an_identity_allow():
    key = _key_policy(_kms({"AWS": ROOT}))
    decision = _decrypt([], key)
    assert decision.reason == "implicit-deny"
    identity = [pol("node", stmt(action="kms:Decrypt", resource=KEY))]
    assert _decrypt(identity, key).allowed


def test_key_policy_without_a_grant_denies_even_with_an_identity_allow():
    identity = [pol("node", stmt(action="kms:*", resource="*"))]
    other = _key_policy(_kms({"AWS": f"arn:aws:iam::{ACCOUNT}:role/other"}))
    for key in (other, None):
        decision = _decrypt(identity, key)
        assert decision.reason == "kms-key-policy-deny"
        assert decision.message() == (
            f"User: {SESSION_ARN} is not authorized to perform: kms:Decrypt on resource: {KEY} "
            "because no resource-based policy allows the kms:Decrypt action"
        )


def test_identity_deny_beats_a_direct_key_grant():
    deny = [pol("node", stmt("Deny", action="kms:Decrypt", resource="*"))]
    assert _decrypt(deny, _key_policy(_kms({"AWS": ROLE_ARN}))).reason == "explicit-deny"


def test_kms_via_service_condition():
    # GIVEN a key policy letting anyone in the account decrypt only through SSM
    key = _key_policy(
        _kms(
            {"AWS": "*"},
            Condition={
                "StringEquals": {
                    "kms:CallerAccount": ACCOUNT,
                    "kms:ViaService": "ssm.us-east-1.amazonaws.com",
                }
            },
        )
    )
    via_ssm = {"kms:CallerAccount": ACCOUNT, "kms:ViaService": "ssm.us-east-1.amazonaws.com"}
    assert _decrypt([], key).reason == "kms-key-policy-deny"
    assert evaluate(
        Request(NODE, "kms:Decrypt", KEY, via_ssm),
        [],
        resource_policy=key,
        resource_policy_kind="kms-key-policy",
    ).allowed
    direct = {"kms:CallerAccount": ACCOUNT}
    assert not evaluate(
        Request(NODE, "kms:Decrypt", KEY, direct),
        [],
        resource_policy=key,
        resource_policy_kind="kms-key-policy",
    ).allowed


# --- loud failures -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        {"Version": "2012-10-17", "Statement": [{"Action": "ssm:*", "Resource": "*"}]},  # no Effect
        {"Version": "2012-10-17", "Statement": [{"Effect": "allow", "Action": "ssm:*", "Resource": "*"}]},
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "NotAction": "x:*", "Resource": "*"}],
        },
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*"}]},
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*"}]},
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Extra": 1}],
        },
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [], "Resource": "*"}]},
        {
            "Version": "2012-10-17",
            "Statement": [{**stmt(), "Principal": "*"}],
        },  # Principal in an identity policy
        {"Version": "2020-01-01", "Statement": [stmt()]},
        {"Statements": [stmt()]},
    ],
)
def test_malformed_policies_raise(document):
    with pytest.raises(UnsupportedPolicy):
        evaluate(req(), [NamedPolicy("bad", document)])


def test_unknown_operator_raises_naming_it():
    with pytest.raises(UnsupportedPolicy, match="StringEqualz"):
        allowed_by({"StringEqualz": {"aws:SourceArn": RULE}}, {"aws:SourceArn": RULE})
    with pytest.raises(UnsupportedPolicy, match="NullIfExists"):
        allowed_by({"NullIfExists": {"aws:SourceArn": "true"}}, {})


def test_unknown_condition_key_raises_naming_it():
    # A misspelt key would be "absent" in AWS, silently turning a restriction into a no-op
    with pytest.raises(UnsupportedPolicy, match="aws:SourceArnn"):
        allowed_by({"StringNotEquals": {"aws:SourceArnn": RULE}}, {})
    with pytest.raises(UnsupportedPolicy, match="ssm:resourceTagg"):
        allowed_by({"StringEquals": {"ssm:resourceTagg/kcluster:cluster": "demo"}}, {})


def test_unknown_policy_variable_raises():
    with pytest.raises(UnsupportedPolicy, match="aws:usrname"):
        evaluate(req(), [pol("p", stmt(resource="arn:aws:ssm:*:*:parameter/${aws:usrname}"))])


def test_bad_operator_values_raise():
    with pytest.raises(UnsupportedPolicy):
        allowed_by({"NumericLessThan": {"aws:MultiFactorAuthAge": "ten"}}, {})
    with pytest.raises(UnsupportedPolicy):
        allowed_by({"IpAddress": {"aws:SourceIp": "not-an-ip"}}, {})
    with pytest.raises(UnsupportedPolicy):
        allowed_by({"Bool": {"aws:SecureTransport": "yes"}}, {})
    with pytest.raises(UnsupportedPolicy):
        allowed_by({"DateLessThan": {"aws:CurrentTime": "tomorrow"}}, {})


def test_not_principal_and_unsupported_principal_types_raise():
    not_principal = pol(
        "q", {"NotPrincipal": {"AWS": ROLE_ARN}, **stmt("Deny", action="sqs:*", resource=QUEUE)}
    )
    with pytest.raises(UnsupportedPolicy, match="NotPrincipal"):
        evaluate(req("sqs:SendMessage", QUEUE), [], resource_policy=not_principal)
    federated = _queue_policy({"Federated": "cognito-identity.amazonaws.com"})
    with pytest.raises(UnsupportedPolicy, match="Federated"):
        evaluate(req("sqs:SendMessage", QUEUE), [], resource_policy=federated)
    missing = pol("q", stmt(action="sqs:SendMessage", resource=QUEUE))
    with pytest.raises(UnsupportedPolicy, match="Principal"):
        evaluate(req("sqs:SendMessage", QUEUE), [], resource_policy=missing)
