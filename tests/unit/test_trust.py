"""Events are believed only when Auto Scaling confirms them (core/trust.py): instance in one of the
cluster's groups, in the lifecycle state the event implies; the role comes from the group."""

from __future__ import annotations

import pytest

from kcluster.core.models import AsgInstance, LifecycleLaunch, LifecycleTerminate, NodeProvisioned
from kcluster.core.trust import Disbelieved, verdict

from .conftest import CP_ASG, WORKER_ASG

IID = "i-0123456789abcdef0"


def launch(asg: str = WORKER_ASG, role: str = "worker") -> LifecycleLaunch:
    return LifecycleLaunch(IID, asg, role, "kcluster-launch", "token")


def terminate(asg: str = WORKER_ASG, destination: str | None = "EC2") -> LifecycleTerminate:
    return LifecycleTerminate(IID, asg, "worker", "kcluster-terminate", "token", destination)


def test_forged_node_provisioned_for_an_unlisted_instance_is_not_believed(config):
    assert isinstance(verdict(NodeProvisioned(IID, "control-plane"), None, config), Disbelieved)


def test_node_provisioned_takes_its_role_from_the_group_not_from_the_event(config):
    seen = AsgInstance(IID, WORKER_ASG, "Pending:Wait")
    assert verdict(NodeProvisioned(IID, "control-plane"), seen, config) == NodeProvisioned(IID, "worker")


@pytest.mark.parametrize("asg", ["kcluster-demo-x-workers", "someone-elses-group"])
def test_an_instance_of_another_group_is_not_believed(config, asg):
    seen = AsgInstance(IID, asg, "Pending:Wait")
    assert isinstance(verdict(NodeProvisioned(IID, "worker"), seen, config), Disbelieved)
    assert isinstance(verdict(launch(), seen, config), Disbelieved)


def test_forged_terminate_of_an_in_service_node_is_not_believed(config):
    seen = AsgInstance(IID, WORKER_ASG, "InService")
    assert isinstance(verdict(terminate(), seen, config), Disbelieved)


@pytest.mark.parametrize("state", ["Terminating:Wait", "Terminating:Proceed", "Terminating"])
def test_terminate_of_a_terminating_instance_is_believed(config, state):
    assert verdict(terminate(), AsgInstance(IID, WORKER_ASG, state), config) == terminate()


def test_terminate_into_a_warm_pool_is_believed_while_it_returns_there(config):
    seen = AsgInstance(IID, WORKER_ASG, "Warmed:Pending:Wait")
    assert verdict(terminate(destination="WarmPool"), seen, config) == terminate(destination="WarmPool")
    assert isinstance(verdict(terminate(), seen, config), Disbelieved)


def test_launch_is_believed_only_while_pending_wait_in_the_group_it_names(config):
    assert verdict(launch(), AsgInstance(IID, WORKER_ASG, "Pending:Wait"), config) == launch()
    assert isinstance(verdict(launch(), AsgInstance(IID, WORKER_ASG, "InService"), config), Disbelieved)
    # the event names the worker group, Auto Scaling the control-plane group: the token is not ours
    assert isinstance(verdict(launch(), AsgInstance(IID, CP_ASG, "Pending:Wait"), config), Disbelieved)
    # the role comes from the group
    cp = verdict(launch(CP_ASG, "worker"), AsgInstance(IID, CP_ASG, "Pending:Wait"), config)
    assert cp == launch(CP_ASG, "control-plane")
