"""The first control plane is a target of the API endpoint before `kubeadm init` runs on it.

kubeadm's kubeconfigs (admin.conf, super-admin.conf, kubelet.conf) point at controlPlaneEndpoint, the
NLB; Auto Scaling registers an instance with its group's target groups only after the launch lifecycle
action completes, and that is after init. So the core registers init's node itself, before init, and
withdraws it only where the instance stays without running a control plane (Auto Scaling deregisters a
terminating instance by itself).
"""

from __future__ import annotations

import pytest

from kcluster import contract
from kcluster.core import workflow
from kcluster.core.models import DeregisterApiTarget, RegisterApiTarget, SendCommand
from tests.unit.conftest import Harness, make_config

TARGET_GROUP = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/kc-demo-api/0123456789abcdef"


@pytest.fixture
def registering() -> Harness:
    return Harness(make_config(api_target_group_arn=TARGET_GROUP))


def test_init_node_is_registered_with_the_api_target_group_before_init_is_sent(registering):
    registering.launch("i-00000001", "control-plane")
    registering.launch("i-00000002", "control-plane")
    actions = registering.dispatch()
    # THEN the init owner alone is registered, and before the SendCommand that starts init
    (register,) = [a for a in actions if isinstance(a, RegisterApiTarget)]
    (init,) = registering.sends(actions)
    assert init.document == contract.DOC_INIT
    assert register == RegisterApiTarget(init.targets[0], TARGET_GROUP)
    assert actions.index(register) < actions.index(init)


def test_joins_register_nothing_themselves(registering):
    registering.launch("i-00000001", "control-plane")
    (init,) = registering.sends(registering.dispatch())
    registering.finish(registering.send(init), "i-00000001")
    registering.launch("i-00000002", "control-plane")
    registering.launch("i-00000003", "worker")
    actions = registering.dispatch()
    (refresh,) = {s.document for s in registering.sends(actions)}
    assert refresh == contract.DOC_REFRESH_JOIN
    for command in registering.sends(actions):
        registering.finish(registering.send(command), command.targets[0])
    joins = [a for a in registering.actions if isinstance(a, SendCommand) and "join" in a.document]
    assert joins, "the joins were sent"
    # a joined control plane becomes a target when Auto Scaling completes its launch action
    registered = [a.instance_id for a in registering.actions if isinstance(a, RegisterApiTarget)]
    assert registered == ["i-00000001"]


def test_init_retried_by_its_owner_registers_it_again(registering):
    registering.launch("i-00000001", "control-plane")
    (init,) = registering.sends(registering.dispatch())
    # WHEN init fails after kubeadm ran (the owner keeps its claim and retries)
    registering.finish(
        registering.send(init), "i-00000001", "Failed", {"ok": False, "error": "kubeadm-failed"}
    )
    assert not [a for a in registering.actions if isinstance(a, DeregisterApiTarget)]
    registering.now += 3600
    actions = registering.dispatch()
    # THEN the retry registers it again first (RegisterTargets of a registered target changes nothing)
    assert [type(a) for a in actions] == [RegisterApiTarget, SendCommand]


def test_released_claim_withdraws_the_target_and_the_next_owner_is_registered(registering):
    registering.launch("i-00000001", "control-plane")
    registering.launch("i-00000002", "control-plane")
    (init,) = registering.sends(registering.dispatch())
    owner = init.targets[0]
    # WHEN init fails before kubeadm ran: the claim is released, the instance stays
    result = {"ok": False, "error": "version-mismatch"}
    actions = registering.finish(registering.send(init), owner, "Failed", result)
    # THEN it stops being a target (it would only fail the health checks), and the next owner is one
    assert DeregisterApiTarget(owner, TARGET_GROUP) in actions
    (again,) = registering.sends(registering.dispatch())
    other = again.targets[0]
    assert other != owner
    assert RegisterApiTarget(other, TARGET_GROUP) in registering.actions


def test_refused_init_send_withdraws_the_target(registering):
    registering.launch("i-00000001", "control-plane")
    (init,) = registering.sends(registering.dispatch())
    plan = workflow.on_send_failed(
        registering.view, init, "InvalidInstanceId", registering.config, registering.now
    )
    assert DeregisterApiTarget("i-00000001", TARGET_GROUP) in registering.apply(plan)


def test_abandoned_init_owner_is_left_to_auto_scaling(registering):
    registering.launch("i-00000001", "control-plane")
    for _ in range(registering.config.max_attempts):
        registering.now += 3600
        (init,) = registering.sends(registering.dispatch())
        result = {"ok": False, "error": "version-mismatch"}
        registering.finish(registering.send(init), "i-00000001", "Failed", result)
    assert registering.phase("i-00000001") == "abandoned"
    # the last failure abandons the instance: Auto Scaling deregisters it as it terminates
    withdrawn = [a for a in registering.actions if isinstance(a, DeregisterApiTarget)]
    assert len(withdrawn) == registering.config.max_attempts - 1


def test_without_a_target_group_nothing_is_registered(harness):
    harness.launch("i-00000001", "control-plane")
    actions = harness.dispatch()
    assert [type(a) for a in actions] == [SendCommand]
