"""End to end on the local twin: the real functions, template and node scripts against moto + emulation.

Each test drives a whole scale-out and judges the outcome from the world (the kube model, the ASG
emulation, the recorded traffic), never from what kcluster's own state says.
"""

from __future__ import annotations

import json

import boto3
import pytest

from twin import scenarios
from twin.node.fleet import ScriptResult
from twin.world import Twin

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def run(prepare=None, *, control_planes=3, workers=2, seed=7) -> scenarios.ScenarioResult:
    return scenarios.run(
        "scale-out", control_planes=control_planes, workers=workers, seed=seed, prepare=prepare
    )


def failed_invariants(report: dict) -> dict:
    return {name: inv["detail"] for name, inv in report["invariants"].items() if not inv["ok"]}


@pytest.fixture
def finished():
    """Close every twin a test ran."""
    results: list[scenarios.ScenarioResult] = []
    yield results
    for result in results:
        result.twin.close()


def test_demo_size_scale_out_holds_every_invariant(finished):
    result = run(workers=5)
    finished.append(result)
    report = result.report
    assert failed_invariants(report) == {}
    assert report["counters"]["kubeadm_init"] == 1
    assert report["counters"]["control_plane_joins"] == 2
    assert report["counters"]["worker_joins"] == 5
    assert report["counters"]["lifecycle_continue"] == 8
    assert len(report["nodes"]) == 8 and all(n["ready"] for n in report["nodes"])
    assert len(report["etcd_members"]) == 3
    # completion is driven by status events: the functions never poll command status in a loop
    assert report["api_calls"]["ssm:GetCommandInvocation"] <= report["api_calls"]["ssm:SendCommand"] * 3


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_three_control_planes_launched_at_once_init_exactly_once(finished, seed):
    result = run(control_planes=3, workers=0, seed=seed)
    finished.append(result)
    assert result.twin.model.init_count_by_epoch() == {1: 1}
    assert failed_invariants(result.report) == {}


def report_of(seed: int) -> dict:
    result = run(seed=seed, workers=1)
    result.twin.close()  # one twin at a time: moto's state is the process's
    return result.report


def test_a_seed_replays_exactly_and_seeds_differ():
    first, again, other = report_of(11), report_of(11), report_of(12)
    assert first == again
    assert first["virtual_seconds"] != other["virtual_seconds"]


def duplicate_delay_and_reorder(twin: Twin) -> None:
    """Every event delivered twice; a third of them also late, so they arrive out of order."""

    def interceptor(event):
        late = twin.rng.random() < 0.33
        return [(0.0, event), (twin.rng.uniform(5, 90) if late else 0.5, event)]

    twin.bus.interceptors.append(interceptor)


def test_duplicate_late_and_reordered_events_change_nothing(finished):
    result = run(duplicate_delay_and_reorder, workers=3)
    finished.append(result)
    report = result.report
    assert failed_invariants(report) == {}
    assert report["counters"]["kubeadm_init"] == 1
    assert report["counters"]["worker_joins"] == 3
    assert report["counters"]["lifecycle_continue"] == 6
    assert report["counters"]["lifecycle_abandon"] == 0


def late_agents(twin: Twin) -> None:
    """SSM agents register long after user data signalled "provisioned"."""
    twin.latency.overrides["agent_registration"] = 400.0


def test_unregistered_agent_is_waited_for_without_a_sleeping_lambda(finished):
    result = run(late_agents, control_planes=1, workers=1)
    finished.append(result)
    twin, report = result.twin, result.report
    assert failed_invariants(report) == {}
    refused = [line for line in twin.recorder.log_lines if "refused; will retry" in line]
    assert refused and all("InvalidInstanceId" in line for line in refused)
    # each invocation returned at once: nothing in the functions waits for the agent
    assert all(inv.ok for inv in twin.functions.invocations)
    assert report["counters"]["kubeadm_init"] == 1


def broken_first_worker(twin: Twin) -> None:
    """The first worker has the wrong kubeadm installed: every join on it fails (version-mismatch)."""
    broken: list[str] = []
    add_instance = twin.fleet.add_instance

    def add(instance_id, **facts):
        add_instance(instance_id, **facts)
        if facts["role"] == "worker" and not broken:
            broken.append(instance_id)
            twin.model.set_kubeadm_version(instance_id, "v1.30.0")

    twin.fleet.add_instance = add
    twin.broken_instances = broken


def test_failed_join_retries_then_abandons_and_the_asg_replaces_the_instance(finished):
    result = run(broken_first_worker, control_planes=1, workers=2)
    finished.append(result)
    twin, report = result.twin, result.report
    (broken,) = twin.broken_instances
    assert failed_invariants(report) == {}
    abandoned = [o for o in twin.lifecycle.outcomes if o.result == "ABANDON"]
    assert [(o.instance_id, o.how) for o in abandoned] == [(broken, "completed")]
    attempts = [run for run in twin.fleet.runs if run.instance_id == broken]
    assert len(attempts) == 3 and all(run.exit_code != 0 for run in attempts)  # max_attempts from config
    live = {n["instance_id"] for n in report["nodes"]}
    assert broken not in live  # terminated and replaced
    assert sum(1 for n in report["nodes"] if n["role"] == "worker" and n["ready"]) == 2


def _init_result(error: str) -> str:
    return json.dumps({"ok": False, "step": "init", "changed": False, "error": error, "message": "x"}) + "\n"


def intercept_init(twin: Twin, outcome) -> None:
    """Every `init` run goes through `outcome(instance_id, run_it)`, which returns its ScriptResult
    (`run_it()` runs the real script); the instances init ran on, in order, are in twin.init_runs."""
    run_script = twin.fleet.run_script
    twin.init_runs = []

    def run(instance_id, script, env, **kwargs):
        if "SSM_PodCidr" not in env:
            return run_script(instance_id, script, env, **kwargs)
        twin.init_runs.append(instance_id)
        return outcome(instance_id, lambda: run_script(instance_id, script, env, **kwargs))

    twin.fleet.run_script = run


def init_owner_cannot_init(twin: Twin) -> None:
    """Every `init` on the first control plane that gets one fails in kubeadm (a broken instance)."""

    def outcome(instance_id, run_it):
        if instance_id == twin.init_runs[0]:
            return ScriptResult(1, _init_result("kubeadm-failed"), "")
        return run_it()

    intercept_init(twin, outcome)


def test_an_owner_that_cannot_init_is_abandoned_and_another_control_plane_inits(finished):
    result = run(init_owner_cannot_init, control_planes=2, workers=1)
    finished.append(result)
    twin, report = result.twin, result.report
    assert failed_invariants(report) == {}
    failed_on = twin.init_runs[0]
    # the owner alone retried init, up to max_attempts, before anyone else tried
    assert twin.init_runs[:3] == [failed_on] * 3 and failed_on not in twin.init_runs[3:]
    abandoned = [o.instance_id for o in twin.lifecycle.outcomes if o.result == "ABANDON"]
    assert abandoned == [failed_on]
    inits = [e for e in twin.model.history if e.operation == "kubeadm-init"]
    assert len(inits) == 1 and inits[0].instance_id != failed_on
    assert failed_on not in {n["instance_id"] for n in report["nodes"]}  # terminated and replaced
    assert len(report["nodes"]) == 3 and all(n["ready"] for n in report["nodes"])


def init_owner_has_the_wrong_kubeadm(twin: Twin) -> None:
    """The first control plane has the wrong kubeadm: init refuses before running it (version-mismatch)."""
    add_instance = twin.fleet.add_instance
    broken: list[str] = []

    def add(instance_id, **facts):
        add_instance(instance_id, **facts)
        if facts["role"] == "control-plane" and not broken:
            broken.append(instance_id)
            twin.model.set_kubeadm_version(instance_id, "v1.30.0")

    twin.fleet.add_instance = add
    twin.broken_instances = broken
    intercept_init(twin, lambda instance_id, run_it: run_it())


def test_an_init_refused_before_kubeadm_ran_lets_another_control_plane_init_at_once(finished):
    result = run(init_owner_has_the_wrong_kubeadm, control_planes=2, workers=1)
    finished.append(result)
    twin, report = result.twin, result.report
    assert failed_invariants(report) == {}
    (broken,) = twin.broken_instances
    inits = [e for e in twin.model.history if e.operation == "kubeadm-init"]
    assert len(inits) == 1 and inits[0].instance_id != broken
    assert twin.init_runs.count(broken) <= 1  # the claim went elsewhere after the first refusal
    assert all(n["ready"] for n in report["nodes"]) and broken not in {
        n["instance_id"] for n in report["nodes"]
    }


def init_reports_failure_after_it_ran(twin: Twin) -> None:
    """The first `init` really initializes the cluster, then reports a failure (its CNI apply failed,
    say): the shape of chaos seed 19's split brain."""

    def outcome(instance_id, run_it):
        result = run_it()
        if len(twin.init_runs) == 1:
            return ScriptResult(1, _init_result("cni-failed"), result.stderr)
        return result

    intercept_init(twin, outcome)


def test_an_init_that_failed_after_kubeadm_ran_is_never_repeated_elsewhere(finished):
    result = run(init_reports_failure_after_it_ran, control_planes=3, workers=1)
    finished.append(result)
    twin, report = result.twin, result.report
    assert failed_invariants(report) == {}
    owner = twin.init_runs[0]
    assert twin.model.init_count_by_epoch() == {1: 1}
    assert twin.init_runs == [owner, owner]  # the retry on the owner only re-published the join material
    assert report["counters"]["lifecycle_abandon"] == 0
    assert len(report["nodes"]) == 4 and all(n["ready"] for n in report["nodes"])


def foreign_and_malformed_events(twin: Twin) -> None:
    """Before scaling: an event of a look-alike cluster's ASG and a launch event missing its fields."""
    lookalike = {
        "LifecycleActionToken": "87654321-4321-4321-4321-210987654321",
        "AutoScalingGroupName": "kcluster-demo-2-workers",  # passes the rule's prefix, not the config
        "LifecycleHookName": "kcluster-launch",
        "EC2InstanceId": "i-0123456789abcdef0",
        "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
    }
    malformed = {"AutoScalingGroupName": "kcluster-demo-workers", "EC2InstanceId": "i-0fedcba9876543210"}
    twin.bus.put_events(
        [
            {
                "Source": "aws.autoscaling",
                "DetailType": "EC2 Instance-launch Lifecycle Action",
                "Detail": json.dumps(detail),
                "Resources": [],
            }
            for detail in (lookalike, malformed)
        ]
    )
    twin.run_until_settled(limit_seconds=4000, quiet_seconds=60)
    twin.items_before_scaling = twin.state_items()


def test_foreign_and_malformed_events_are_refused_with_a_log_line_and_no_state_change(finished):
    result = run(foreign_and_malformed_events, control_planes=1, workers=1)
    finished.append(result)
    twin = result.twin
    assert twin.items_before_scaling == []  # neither event changed any state
    lines = [json.loads(line) for line in twin.recorder.log_lines if line.startswith("{")]
    # the look-alike cluster's event matches no rule: the rules name this cluster's groups exactly
    (lookalike,) = [
        event
        for event in twin.recorder.events
        if event.get("detail", {}).get("AutoScalingGroupName") == "kcluster-demo-2-workers"
    ]
    assert twin.bus.matching_rules(lookalike) == []
    assert any(
        line.get("message") == "event refused" and "does not fit" in line.get("reason", "") for line in lines
    )
    # the malformed one was retried and then dead-lettered, where an alarm watches it
    dlq = twin.stack.physical_id("EventsDeadLetterQueue")
    with twin.operator():
        depth = boto3.client("sqs").get_queue_attributes(
            QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"]
        )
    assert depth["Attributes"]["ApproximateNumberOfMessages"] == "1"
    assert failed_invariants(result.report) == {}


def test_no_secret_appears_anywhere_in_a_whole_run(finished):
    result = run(workers=2)
    finished.append(result)
    twin = result.twin
    secrets = twin.model.issued_secrets()
    assert len(secrets) >= 4  # tokens, certificate keys, the admin client key: there was something to leak
    haystack = "\n".join([*twin.recorder.texts(), *(json.dumps(i) for i in twin.state_items())])
    assert not [s for s in secrets if s in haystack]
    assert result.report["invariants"]["no_secret_leaked"]["ok"]
