"""Real Terraform checks the module: init, validate, plan, apply and a clean second plan of the root
module and of examples/complete, against a provider serving hashicorp/aws 5.99.1's real schema; and
the check fails, with Terraform's own message, on each kind of mistake it is there to catch.

All offline: the provider is a local process (gRPC on a unix socket) installed from a filesystem
mirror; nothing is written into the repository (every run works on a copy under pytest's tmp dir)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.iac.real_terraform import (
    EXAMPLE_VARIABLES,
    OTHER_VPC_SUBNET,
    ROOT_VARIABLES,
    SAME_ZONE_SUBNET,
    SCHEMA,
    SUBNETS,
    RealTerraform,
)


@pytest.fixture(scope="module")
def tf(tmp_path_factory) -> RealTerraform:
    # A missing tool environment is a broken check, not a passed one: RealTerraform fails, it does not skip.
    return RealTerraform(tmp_path_factory.mktemp("real-terraform"))


def test_served_schema_is_hashicorp_aws_as_the_module_uses_it(tf):
    # GIVEN the schema rebuilt from the cdktf bindings of hashicorp/aws 5.99.1 (made by the tf fixture)
    schema = json.loads(SCHEMA.read_text())
    assert len(schema["resource_schemas"]) > 1500
    assert len(schema["data_source_schemas"]) > 600
    asg = schema["resource_schemas"]["aws_autoscaling_group"]["block"]

    # THEN it says what the provider says: required and computed-only attributes, nesting and counts
    assert asg["attributes"]["max_size"] == {"type": "number", "required": True}
    assert asg["attributes"]["arn"] == {"type": "string", "computed": True}
    assert asg["attributes"]["vpc_zone_identifier"]["type"] == ["set", "string"]
    assert asg["attributes"]["termination_policies"]["type"] == ["list", "string"]
    assert asg["block_types"]["initial_lifecycle_hook"]["nesting_mode"] == "set"
    assert asg["block_types"]["launch_template"]["max_items"] == 1
    assert asg["block_types"]["instance_refresh"]["block"]["attributes"]["strategy"]["required"]
    assert asg["block_types"]["timeouts"]["nesting_mode"] == "single"
    lt = schema["resource_schemas"]["aws_launch_template"]["block"]
    assert lt["attributes"]["latest_version"] == {"type": "number", "computed": True}
    assert lt["block_types"]["metadata_options"]["max_items"] == 1
    policy = schema["data_source_schemas"]["aws_iam_policy_document"]["block"]
    assert policy["attributes"]["json"] == {"type": "string", "computed": True}
    assert policy["block_types"]["statement"]["block"]["block_types"]["principals"]["nesting_mode"] == "set"


def _plan_json(tf: RealTerraform, cwd: Path, plan: Path) -> dict:
    shown = tf.run(cwd, "show", "-json", str(plan))
    assert shown.ok, shown.output
    return json.loads(shown.output)


def _full_cycle(tf: RealTerraform, cwd: Path, variables: dict) -> dict:
    """init, validate, plan, apply the saved plan, plan again: the first plan's JSON."""
    plan = cwd / "first.tfplan"
    result = tf.check(cwd, variables, plan_out=plan)
    assert result.ok, f"{result.step} failed:\n{result.output}"
    planned = _plan_json(tf, cwd, plan)
    applied = tf.run(cwd, "apply", "-input=false", "-no-color", str(plan))
    assert applied.ok, applied.output
    again = tf.run(cwd, "plan", "-input=false", "-no-color", "-detailed-exitcode")
    # 0: no changes (2 would be changes, 1 an error).
    assert again.returncode == 0, again.output
    assert "No changes." in again.output
    return planned


def _creates(planned: dict) -> dict[str, dict]:
    return {
        change["address"]: change["change"]["after"]
        for change in planned["resource_changes"]
        if change["change"]["actions"] == ["create"]
    }


def test_root_module_plans_applies_and_replans_clean(tf):
    # GIVEN a copy of the root module and an operator's inputs (an existing VPC, three subnets in three zones)
    cwd = tf.copy_module("root")

    # WHEN real Terraform runs init, validate, plan, apply and plan again
    planned = _full_cycle(tf, cwd, ROOT_VARIABLES)

    # THEN the plan creates the cluster's infrastructure, with the values the module computes
    creates = _creates(planned)
    assert len(creates) >= 50
    for address in (
        'aws_autoscaling_group.node["control_plane"]',
        'aws_autoscaling_group.node["worker"]',
        'aws_launch_template.node["control_plane"]',
        "aws_lb.control_plane",
        "aws_ssm_parameter.config",
        "aws_kms_key.secrets[0]",
    ):
        assert address in creates, sorted(creates)
    control_plane = creates['aws_autoscaling_group.node["control_plane"]']
    assert control_plane["name"] == "kcluster-prod-eu-control-plane"
    assert control_plane["desired_capacity"] == 3
    assert sorted(control_plane["vpc_zone_identifier"]) == sorted(SUBNETS)
    hooks = {hook["name"]: hook for hook in control_plane["initial_lifecycle_hook"]}
    assert hooks["kcluster-launch"]["lifecycle_transition"] == "autoscaling:EC2_INSTANCE_LAUNCHING"
    assert hooks["kcluster-launch"]["default_result"] == "ABANDON"
    assert creates['aws_autoscaling_group.node["worker"]']["desired_capacity"] == 4


def test_complete_example_plans_applies_and_replans_clean(tf):
    # GIVEN a copy of the module with examples/complete as the root (it calls the module as ../..)
    cwd = tf.copy_module("example") / "examples" / "complete"

    # WHEN real Terraform runs init, validate, plan, apply and plan again
    planned = _full_cycle(tf, cwd, EXAMPLE_VARIABLES)

    # THEN the example's cluster is planned with its own settings
    creates = _creates(planned)
    assert creates['module.kcluster.aws_autoscaling_group.node["worker"]']["desired_capacity"] == 3
    assert creates['module.kcluster.aws_autoscaling_group.node["control_plane"]']["tag"]


def _inject(tf: RealTerraform, name: str, file: str, old: str, new: str) -> Path:
    cwd = tf.copy_module(name)
    path = cwd / file
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not once in {file}"
    path.write_text(text.replace(old, new))
    return cwd


# (file, the text replaced, its replacement, the step that fails, Terraform's own messages)
MISTAKES = {
    "unsupported argument": (
        "nodes.tf",
        '    http_tokens                 = "required"\n',
        '    http_tokens                 = "required"\n    http_protocol_ipv7          = "enabled"\n',
        "validate",
        ["Error: Unsupported argument", 'An argument named "http_protocol_ipv7" is not expected here.'],
    ),
    "misspelt block": (
        "nodes.tf",
        "  metadata_options {\n",
        "  metadata_option {\n",
        "validate",
        [
            "Error: Unsupported block type",
            'Blocks of type "metadata_option" are not expected here. Did you mean "metadata_options"?',
        ],
    ),
    "missing required nested argument": (
        "nodes.tf",
        "      lifecycle_transition = initial_lifecycle_hook.value.lifecycle_transition\n",
        "",
        "validate",
        [
            "Error: Missing required argument",
            'The argument "lifecycle_transition" is required, but no definition was found.',
        ],
    ),
    "wrong type through a local": (
        "main.tf",
        '      heartbeat_timeout    = 900\n      default_result       = "ABANDON"\n',
        '      heartbeat_timeout    = "fifteen minutes"\n      default_result       = "ABANDON"\n',
        "validate",
        ["Error: Incorrect attribute value type", "a number is required"],
    ),
    "reference to an attribute that does not exist": (
        "main.tf",
        "${aws_lb.control_plane.dns_name}:",
        "${aws_lb.control_plane.dns_names}:",
        "validate",
        [
            "Error: Unsupported attribute",
            'This object has no argument, nested block, or exported attribute named "dns_names".',
            'Did you mean "dns_name"?',
        ],
    ),
    # Through for_each instances validate cannot know the object's type: the plan reads it.
    "reference to an attribute that does not exist, through for_each": (
        "nodes.tf",
        "    version = aws_launch_template.node[each.key].latest_version\n",
        "    version = aws_launch_template.node[each.key].latest_versions\n",
        "plan",
        ["Error: Unsupported attribute", 'This object does not have an attribute named "latest_versions".'],
    ),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_check_fails_on_a_mistake_with_terraforms_message(tf, mistake):
    file, old, new, step, messages = MISTAKES[mistake]
    # GIVEN a copy of the module with the mistake injected
    cwd = _inject(tf, re.sub(r"[^a-z0-9]+", "-", mistake), file, old, new)

    # WHEN the check runs
    result = tf.check(cwd, ROOT_VARIABLES)

    # THEN it fails at the step that should catch it, saying what Terraform says
    assert not result.ok, result.output
    assert result.step == step, result.output
    output = re.sub(r"\s+", " ", result.output)
    for message in messages:
        assert message in output, result.output


@pytest.fixture(scope="module")
def validated_copy(tf) -> Path:
    cwd = tf.copy_module("inputs")
    (cwd / "fixture.auto.tfvars.json").write_text(json.dumps(ROOT_VARIABLES))
    for args in (("init", "-input=false", "-no-color"), ("validate", "-no-color")):
        result = tf.run(cwd, *args)
        assert result.ok, result.output
    return cwd


@pytest.mark.parametrize(
    ("variables", "messages"),
    [
        pytest.param(
            {"subnet_ids": [*list(SUBNETS)[:2], OTHER_VPC_SUBNET]},
            ["Error: Resource precondition failed", "Every subnet in subnet_ids must belong to vpc_id."],
            id="precondition: a subnet of another VPC",
        ),
        pytest.param(
            {"subnet_ids": [*list(SUBNETS)[:2], SAME_ZONE_SUBNET]},
            [
                "Error: Resource precondition failed",
                "subnet_ids must span at least three availability zones.",
            ],
            id="precondition: two subnets in one zone",
        ),
        pytest.param(
            {"cluster_name": "Prod_EU"},
            ["Error: Invalid value for variable", "cluster_name must match ^[a-z][a-z0-9-]{1,30}[a-z0-9]$"],
            id="variable validation: cluster_name",
        ),
    ],
)
def test_check_fails_on_a_failing_precondition_or_validation(
    tf, validated_copy, request, variables, messages
):
    # GIVEN an unchanged copy of the module (init and validate do not read the inputs: they ran once, and
    # passed) and inputs the module refuses
    var_file = validated_copy / f"{re.sub(r'[^a-z0-9]+', '-', request.node.callspec.id.lower())}.tfvars.json"
    var_file.write_text(json.dumps({**ROOT_VARIABLES, **variables}))

    # WHEN the check's plan runs with them
    result = tf.run(validated_copy, "plan", "-input=false", "-no-color", f"-var-file={var_file}")

    # THEN the plan fails with the module's own message
    assert not result.ok, result.output
    assert result.step == "plan", result.output
    output = re.sub(r"\s+", " ", result.output)
    for message in messages:
        assert message in output, result.output


# What users get wrong, per variable; a round gives each variable its next value (Terraform reports every
# refused variable of a plan at once, so three plans check them all).
REFUSED = {
    "cluster_name": ["Demo_Cluster", "a", "x" * 33],
    "kubernetes_version": ["v1.33.5", "1.33"],
    "control_plane_desired_capacity": [2, 0],
    "worker_desired_capacity": [0],
    "control_plane_min_size": [0],
    "pod_cidr": ["10.244.0.1/16"],
    "service_cidr": ["not-a-cidr"],
    "api_allowed_cidrs": [["10.0.0.0/8", "300.0.0.0/8"]],
    "subnet_ids": [list(SUBNETS)[:2], [*list(SUBNETS)[:2], next(iter(SUBNETS))]],
    "vpc_id": ["my-vpc"],
    "cni_version": ["3.29.1"],
    "cni_manifest_url": ["http://example.com/calico.yaml"],
    "join_token_ttl": ["15s"],
    "max_attempts": [0],
    "worker_batch_size": [51],
    "architecture": ["x86_64"],
    "timeouts": [{"heartbeat_interval_seconds": 900}, {"lease_seconds": 60}],
    "kms_key_arn": [
        "1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:us-east-1:123456789012:alias/kcluster-demo",
        "alias/kcluster-demo",
    ],
    "permissions_boundary_arn": ["PowerUserAccess", "arn:aws:iam::123456789012:role/boundary"],
    "admin_principal_arns": [["*"], ["arn:aws:iam::123456789012:root"], ["platform-admins"]],
}
# Sensible values of the same variables, given beside the refused ones: Terraform must not refuse them.
ACCEPTED = {
    "kms_key_arn": "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef",
    "permissions_boundary_arn": "arn:aws:iam::aws:policy/PowerUserAccess",
    "admin_principal_arns": ["arn:aws:iam::123456789012:role/platform-admins"],
    "api_allowed_cidrs": ["203.0.113.0/24"],
    "timeouts": {"drain_seconds": 600},
    "kubernetes_version": "1.32.10",
    "control_plane_desired_capacity": 5,
}


def _round(index: int) -> tuple[dict, set[str]]:
    refused = {name: values[index] for name, values in REFUSED.items() if index < len(values)}
    accepted = {name: value for name, value in ACCEPTED.items() if name not in refused}
    return {**ROOT_VARIABLES, **accepted, **refused}, set(refused)


@pytest.mark.parametrize("index", range(max(len(values) for values in REFUSED.values())))
def test_variable_validations_refuse_what_users_get_wrong_and_only_that(tf, validated_copy, index):
    # GIVEN inputs where some variables have a value users get wrong and the others sensible ones
    variables, refused = _round(index)
    var_file = validated_copy / f"round-{index}.tfvars.json"
    var_file.write_text(json.dumps(variables))

    # WHEN the check's plan runs with them
    result = tf.run(validated_copy, "plan", "-input=false", "-no-color", f"-var-file={var_file}")

    # THEN exactly the wrong ones are refused, each by its own validation
    assert not result.ok and result.step == "plan", result.output
    assert "Error: Invalid value for variable" in result.output, result.output
    assert set(re.findall(r"var\.([a-z_]+)[a-z_.]* is ", result.output)) == refused, result.output
