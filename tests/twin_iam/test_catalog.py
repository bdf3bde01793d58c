"""Facts from AWS's Service Authorization Reference that kcluster's policies rely on."""

from __future__ import annotations

import pytest

from twin.iam import catalog


def _resource_types(action: str) -> dict[str, catalog.ResourceTypeRef]:
    return {ref.name: ref for ref in catalog.action_info(action).resource_types}


@pytest.mark.parametrize("action", ["ssm:CancelCommand", "ssm:ListCommands", "ssm:GetCommandInvocation"])
def test_run_command_bookkeeping_actions_have_no_resource_level_permissions(action):
    # THEN only "Resource": "*" can grant them
    assert catalog.action_info(action).resource_types == ()


def test_action_lookup_is_case_insensitive_and_returns_canonical_name():
    assert catalog.action_info("SSM:sendcommand").name == "ssm:SendCommand"


def test_send_command_requires_document_and_optionally_targets_an_instance():
    types = _resource_types("ssm:SendCommand")
    assert types["document"].required is True
    assert types["instance"].required is False
    assert (
        types["instance"].arn_template == "arn:${Partition}:ec2:${Region}:${Account}:instance/${InstanceId}"
    )
    assert "ssm:resourceTag/${TagKey}" in types["instance"].condition_keys


def test_get_parameter_scopes_to_a_parameter_arn():
    types = _resource_types("ssm:GetParameter")
    assert list(types) == ["parameter"]
    assert types["parameter"].required is True
    expected = "arn:${Partition}:ssm:${Region}:${Account}:parameter/${ParameterNameWithoutLeadingSlash}"
    assert types["parameter"].arn_template == expected
    assert catalog.arn_template("ssm", "parameter") == expected


def test_complete_lifecycle_action_scopes_to_the_group_with_its_tag_key():
    types = _resource_types("autoscaling:CompleteLifecycleAction")
    group = types["autoScalingGroup"]
    assert group.required is True
    assert group.arn_template.startswith(
        "arn:${Partition}:autoscaling:${Region}:${Account}:autoScalingGroup:"
    )
    assert "autoscaling:ResourceTag/${TagKey}" in group.condition_keys
    assert catalog.condition_key_type("autoscaling:ResourceTag/kcluster:cluster") == "String"


def test_kms_decrypt_scopes_to_a_key_and_knows_via_service():
    info = catalog.action_info("kms:Decrypt")
    assert [ref.name for ref in info.resource_types] == ["key"]
    assert "kms:ViaService" in info.condition_keys
    assert catalog.is_known_condition_key("kms:ViaService")
    assert catalog.is_known_condition_key("KMS:viaservice")  # key names are case-insensitive
    assert catalog.condition_key_type("kms:ViaService") == "String"


def test_resource_type_keys_are_merged_with_action_specific_ones():
    # GIVEN a resource type whose own keys and the action's keys are listed separately in the SAR
    # THEN the ref carries both, without duplicates
    group = _resource_types("autoscaling:CompleteLifecycleAction")["autoScalingGroup"]
    assert len(group.condition_keys) == len(set(group.condition_keys))
    assert "aws:ResourceTag/${TagKey}" in group.condition_keys


def test_unknown_action_raises():
    with pytest.raises(catalog.UnknownAction):
        catalog.action_info("ssm:SendCommands")
    with pytest.raises(catalog.UnknownAction):
        catalog.action_info("nosuchservice:Get")
    with pytest.raises(catalog.UnknownAction):
        catalog.action_info("no-colon")


def test_unknown_resource_type_raises():
    with pytest.raises(catalog.UnknownResourceType):
        catalog.arn_template("ssm", "nope")


@pytest.mark.parametrize(
    ("key", "key_type"),
    [
        ("aws:SourceArn", "ARN"),
        ("aws:sourcearn", "ARN"),
        ("aws:SourceAccount", "String"),
        ("aws:PrincipalArn", "ARN"),
        ("aws:PrincipalTag/team", "String"),
        ("aws:ResourceTag/kcluster:cluster", "String"),
        ("AWS:RESOURCETAG/Kcluster:Cluster", "String"),
        ("aws:RequestTag/x", "String"),
        ("aws:TagKeys", "ArrayOfString"),
        ("aws:SecureTransport", "Bool"),
        ("aws:CalledVia", "ArrayOfString"),
        ("aws:ViaAWSService", "Bool"),
        ("aws:username", "String"),
        ("aws:CurrentTime", "Date"),
        ("aws:SourceIp", "IPAddress"),
        ("aws:SourceVpce", "String"),
        ("ssm:resourceTag/kcluster:cluster", "String"),
        ("kms:EncryptionContext:aws:lambda:FunctionArn", "String"),
        ("autoscaling:TargetGroupARNs", "ArrayOfARN"),
        ("autoscaling:MaxSize", "Numeric"),
    ],
)
def test_condition_key_types(key, key_type):
    assert catalog.is_known_condition_key(key)
    assert catalog.condition_key_type(key) == key_type


@pytest.mark.parametrize(
    "key", ["aws:usrname", "aws:ResourceTag", "ssm:NoSuchKey", "nosuch:Key", "kms:ViaServices"]
)
def test_unknown_condition_keys(key):
    assert not catalog.is_known_condition_key(key)
    with pytest.raises(catalog.UnknownConditionKey):
        catalog.condition_key_type(key)


def test_data_version_names_the_pinned_release():
    assert catalog.data_version() == "0.1.202610271"
