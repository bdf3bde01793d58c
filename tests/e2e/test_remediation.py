"""End to end on the twin: alarm-driven remediation, judged from the world.

The kubelet and API server faults are the model's; the alarms are evaluated by the twin's CloudWatch
emulation from the metrics the functions really published (EMF) and the NLB's emulated health checks;
the remediator runs from the template's EventBridge rule.
"""

from __future__ import annotations

import pytest
from moto.sns.models import sns_backends

from twin import scenarios
from twin.account import ACCOUNT_ID

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def failed_invariants(report: dict) -> dict:
    return {name: inv["detail"] for name, inv in report["invariants"].items() if not inv["ok"]}


def people_were_told(twin) -> list[str]:
    topic = twin.stack.physical_id("AlertsTopic")
    return [
        message
        for _, message, *_ in sns_backends[ACCOUNT_ID][twin.stack.region].topics[topic].sent_notifications
    ]


def replaced_by_health(twin) -> list[tuple[float, str]]:
    return [
        (e.at, e.text.split()[0])
        for e in twin.recorder.timeline
        if e.text.endswith("Terminating (unhealthy)")
    ]


@pytest.fixture(scope="module")
def remediation():
    result = scenarios.run("remediation", control_planes=3, workers=5, seed=7)
    yield result
    result.twin.close()


def test_a_dead_kubelet_and_a_dead_api_server_are_both_replaced_one_after_the_other(remediation):
    twin, report = remediation.twin, remediation.report
    assert failed_invariants(report) == {}
    broken = {
        e.instance_id for e in twin.model.history if e.operation in ("kubelet-stopped", "apiserver-stopped")
    }
    assert len(broken) == 2
    assert report["counters"]["remediations"] == 2
    replaced = replaced_by_health(twin)
    assert {iid for _, iid in replaced} == broken
    # one after the other: the second was marked only after the first had left and been replaced
    (_, first), (second_at, _) = sorted(replaced)
    first_gone = next(
        o.at for o in twin.lifecycle.outcomes if o.instance_id == first and "TERMINATING" in o.transition
    )
    assert second_at > first_gone
    # through the hooks: drained, Node deleted; the control plane's etcd member removed
    assert report["counters"]["nodes_deleted"] == 2 and report["counters"]["etcd_members_removed"] == 1
    live = {n["instance_id"] for n in report["nodes"]}
    assert not broken & live and len(live) == 8 and all(n["ready"] for n in report["nodes"])


def test_remediated_and_healed_is_a_metric_not_a_page(remediation):
    assert remediation.report["counters"]["notifications"] == 0
    assert people_were_told(remediation.twin) == []


def test_the_alarms_fired_and_cleared_from_the_published_metrics(remediation):
    states: dict[str, list[str]] = {}
    for transition in remediation.twin.alarms.transitions:
        states.setdefault(transition.alarm.split("-remediate-")[-1], []).append(transition.new)
    for alarm in ("nodes-not-ready", "api-servers-unhealthy"):
        assert "ALARM" in states[alarm] and states[alarm][-1] == "OK", (alarm, states[alarm])
