"""Coverage the other way: every Allow statement of the functions' and the nodes' own policies is needed.

The authorizer evaluates each allowed call again without each statement that allowed it (and without
AWS managed policies, whose breadth is AWS's to change): a statement some call was then denied without
is necessary (`Authorizer.necessary`). Removing a statement nothing needs would go unnoticed by every
run, so it must not exist. The exercises are the scenarios plus the rare paths they do not reach.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from moto.sns.models import sns_backends

from kcluster import contract
from twin import scenarios
from twin.iam import coverage
from twin.iam.enforce import allow_statements, without_statement
from twin.iam.policy import StatementRef
from twin.node.fleet import ScriptResult
from twin.world import Twin

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def _statement_names(twin: Twin, refs: Any) -> set[str]:
    return {f"{label} {ref.policy} {ref.sid_or_index}" for label, ref in refs}


def _own_allow_statements(twin: Twin) -> set[str]:
    names = set()
    for identity in twin.iam.identities():
        for named in identity.policies:
            if not named.name.startswith("aws-managed:"):
                names |= {
                    f"{identity.label} {ref.policy} {ref.sid_or_index}" for ref in allow_statements(named)
                }
    return names


# Longer than a reconciler period (1 minute) plus event delays; shorter than the join's 600 s timeout.
_JOIN_OUTLASTS_A_TICK_SECONDS = 300.0


def _terminate_a_joining_control_plane(twin: Twin, *, lose_the_event: bool) -> None:
    """A control plane terminated by hand while its join runs; with `lose_the_event` its terminate event
    never arrives, so the reconciler finds the waiting action itself.

    The join is pinned to run longer than a reconciler period, so it still runs when the terminate is
    found (and cancelled: CancelJoinOfLeavingInstance) whatever the seeded draws before it (a backup's
    duration, say) left for its own; left to chance, a quick join had finished by the next tick."""
    twin.latency.command_overrides[contract.DOC_JOIN_CONTROL_PLANE] = _JOIN_OUTLASTS_A_TICK_SECONDS
    scenarios.scale_out(twin, 1, 0)
    if lose_the_event:
        twin.bus.interceptors.append(
            lambda event: (
                []
                if event.get("detail-type") == "EC2 Instance-terminate Lifecycle Action"
                else [(0.0, event)]
            )
        )
    twin.set_desired(contract.ROLE_CONTROL_PLANE, 2)
    twin.scheduler.run_until(
        lambda: any(cmd.key == contract.DOC_JOIN_CONTROL_PLANE for cmd in twin.runcommand.commands.values()),
        3600,
    )
    joining = next(
        inv_id
        for cmd in twin.runcommand.commands.values()
        if cmd.key == contract.DOC_JOIN_CONTROL_PLANE
        for inv_id in cmd.invocations
    )
    twin.terminate(joining, decrement=True)
    assert twin.run_until_settled()


def _remediator_fails_three_times(twin: Twin) -> None:
    """The remediator dies on every attempt for one alarm: Lambda's async retries end in its
    dead-letter queue, written with the function's own role."""
    original = twin.functions.handler
    doomed: set[str] = set()  # the id of the first alarm event: every attempt at it fails

    def handler(logical_id: str) -> Callable[[Any, Any], Any]:
        real = original(logical_id)
        if logical_id != "RemediatorFunction":
            return real

        def failing(event: Any, context: Any) -> Any:
            if not doomed:
                doomed.add(event["id"])
            if event["id"] in doomed:
                raise RuntimeError("remediator down (test)")
            return real(event, context)

        return failing

    twin.functions.handler = handler
    scenarios.remediation(twin, 3, 5)


def _remediation_that_does_not_heal(twin: Twin) -> None:
    """A worker's kubelet dies and every replacement fails to join: remediation is held and the
    reconciler tells people (the reconciler's own sns:Publish)."""
    scenarios.scale_out(twin, 1, 2)
    original = twin.fleet.run_script

    def run_script(instance_id: str, script: str, env: dict[str, str], **kwargs: Any) -> ScriptResult:
        if "KC_STEP=join-worker" in script:
            line = (
                '{"ok":false,"step":"join-worker","changed":false,"error":"kubeadm-failed","message":"test"}'
            )
            return ScriptResult(1, line + "\n", "kubeadm join failed (test)\n")
        return original(instance_id, script, env, **kwargs)

    twin.fleet.run_script = run_script  # type: ignore[method-assign]
    worker = next(i["instance_id"] for i in twin.instances() if i["role"] == contract.ROLE_WORKER)
    twin.model.stop_kubelet(worker)

    def reconciler_told_people() -> bool:
        return any(
            label == "function:ReconcilerFunction" and ref.sid_or_index == "TellPeople"
            for label, ref in twin.iam.authorizer.used
        )

    twin.scheduler.run_until(reconciler_told_people, 6 * 3600)
    topic = sns_backends[twin.stack.account_id][twin.stack.region].topics[
        twin.stack.physical_id("AlertsTopic")
    ]
    assert reconciler_told_people() and topic.sent_notifications


def _init_refused_before_kubeadm_ran(twin: Twin) -> None:
    """The first init stops before kubeadm runs (a version mismatch): the claim is released and the node
    withdrawn from the API target group by the reactor; the retry, after its backoff, is the
    reconciler's dispatch, which registers the node again before sending init."""
    original = twin.fleet.run_script
    failures = {"left": 1}

    def run_script(instance_id: str, script: str, env: dict[str, str], **kwargs: Any) -> ScriptResult:
        if "KC_STEP=init" in script and failures["left"] > 0:
            failures["left"] -= 1
            line = '{"ok":false,"step":"init","changed":false,"error":"version-mismatch","message":"test"}'
            return ScriptResult(1, line + "\n", "kubeadm version mismatch (test)\n")
        return original(instance_id, script, env, **kwargs)

    twin.fleet.run_script = run_script  # type: ignore[method-assign]
    scenarios.scale_out(twin, 1, 1)


def _quorum_held_then_let_go(twin: Twin) -> None:
    scenarios.scale_out(twin, 3, 0)
    _first, second, third = (i["instance_id"] for i in twin.instances())
    twin.model.remove_host(second)
    twin.terminate(third, decrement=True)
    assert twin.run_until_settled(limit_seconds=4 * 3600)


def _scenario(name: str, control_planes: int = 3, workers: int = 5) -> Callable[[Twin], None]:
    return lambda twin: scenarios.SCENARIOS[name](twin, control_planes, workers)


# name -> (seed, exercise)
EXERCISES: dict[str, tuple[int, Callable[[Twin], None]]] = {
    "scale-out and in": (7, _scenario("scale-in")),
    "remediation": (7, _scenario("remediation")),
    "mass failure": (7, _scenario("mass-failure")),
    "a joining control plane terminated": (
        7,
        lambda twin: _terminate_a_joining_control_plane(twin, lose_the_event=False),
    ),
    "the same, its terminate event lost": (
        7,
        lambda twin: _terminate_a_joining_control_plane(twin, lose_the_event=True),
    ),
    "quorum at risk: held, then let go with an alert": (7, _quorum_held_then_let_go),
    "init refused before kubeadm ran": (7, _init_refused_before_kubeadm_ran),
    "the remediator failing every attempt": (7, _remediator_fails_three_times),
    "a remediation that does not heal": (7, _remediation_that_does_not_heal),
    **{f"chaos seed {seed}": (seed, _scenario("chaos", 2, 2)) for seed in (1, 2, 3)},
    "a node image rollout": (7, _scenario("image-rollout", 1, 2)),
}


def test_every_statement_of_kcluster_s_own_policies_is_needed_by_some_run():
    necessary: dict[str, list[str]] = {}
    statements: set[str] = set()
    for name, (seed, exercise) in EXERCISES.items():
        twin = Twin(seed=seed)
        try:
            exercise(twin)
            assert twin.iam.authorizer.denials == [], (name, twin.iam.authorizer.denials[:3])
            statements |= _own_allow_statements(twin)
            for statement in _statement_names(twin, twin.iam.authorizer.necessary):
                necessary.setdefault(statement, []).append(name)
        finally:
            twin.close()
    unneeded = sorted(statements - set(necessary))
    assert unneeded == [], "statements no run needs (remove them, or add the run that needs them):\n" + (
        json.dumps(unneeded, indent=1)
    )
    # What a run's report calls "exercised elsewhere" is exactly what was measured here.
    if os.environ.get("KCLUSTER_WRITE_IAM_COVERAGE"):
        coverage.write(necessary)
    assert {statement: list(runs) for statement, runs in coverage.needed_by().items()} == necessary, (
        f"{coverage.NEEDED_BY_PATH} is stale: KCLUSTER_WRITE_IAM_COVERAGE=1 pytest {__file__}"
    )


def test_the_analysis_agrees_with_a_run_without_the_statement():
    # GIVEN the reactor's role without the statement the analysis calls necessary for reading the config
    twin = Twin(seed=7)
    try:
        key = twin.iam.function_access_key("ReactorFunction")
        identity = twin.iam.directory.by_key[key]
        (policy,) = [named for named in identity.policies if named.name == "ReactorPolicy"]
        trimmed = without_statement(policy, StatementRef("ReactorPolicy", "ReadConfigOnly"))
        policies = tuple(trimmed if named is policy else named for named in identity.policies)
        twin.iam.directory.by_key[key] = replace(identity, policies=policies)
        # WHEN the cluster scales out
        twin.set_desired(contract.ROLE_CONTROL_PLANE, 1)
        twin.scheduler.run_until(lambda: bool(twin.iam.authorizer.denials), 1800)
        # THEN the reactor is refused the config read, with AWS's wording
        denial = twin.iam.authorizer.denials[0]
        assert (denial.label, denial.action) == ("function:ReactorFunction", "ssm:GetParameter")
        assert denial.resource.endswith(":parameter/kcluster/demo/config")
        assert "is not authorized to perform: ssm:GetParameter" in denial.message
    finally:
        twin.close()
