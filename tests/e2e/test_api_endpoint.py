"""The control-plane endpoint is the NLB, in the twin as on AWS: API calls reach only its targets.

kubeadm init runs while its instance waits in Pending:Wait, and Auto Scaling registers an instance with
the group's target groups only once the launch action completes. Unless kcluster registers the first
control plane itself before init, the NLB has no target while every kubeconfig init writes points at
it: init times out, again on every replacement.
"""

from __future__ import annotations

import json

import pytest

from kcluster import contract
from twin import scenarios
from twin.aws.targets import INITIAL, UNUSED
from twin.world import Twin

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


TWIN_SEED = 5


def _history(twin: Twin, operation: str) -> list:
    return [entry for entry in twin.model.history if entry.operation == operation]


def test_the_first_control_plane_is_a_target_before_kubeadm_init_runs(twin):
    scenarios.scale_out(twin, 1, 1)
    (init,) = _history(twin, "kubeadm-init")
    registered = [
        t
        for t in twin.targets.transitions
        if t.target_id == init.instance_id and (t.old, t.new) == (UNUSED, INITIAL)
    ]
    # registered once, by kcluster, before init; Auto Scaling's own registration at CONTINUE changes nothing
    assert len(registered) == 1 and registered[0].at < init.time
    assert twin.targets.state_of(twin.deployment.target_group_arn, init.instance_id) == "healthy"
    # the worker joined through the endpoint, so the API was reachable there
    assert len(_history(twin, "kubeadm-join")) == 1
    assert _history(twin, "kubeadm-init-endpoint-unreachable") == []


def test_without_registering_it_init_times_out_through_the_empty_endpoint(twin):
    # GIVEN a configuration that names no target group: kcluster registers nothing before init, which is
    # what it did before this was fixed
    name = contract.config_parameter_name(twin.cluster)
    ssm = twin.operator_client("ssm")
    config = json.loads(ssm.get_parameter(Name=name)["Parameter"]["Value"])
    config.pop("api_target_group_arn")
    ssm.put_parameter(Name=name, Value=json.dumps(config), Type="String", Overwrite=True)
    # WHEN the first control plane launches
    twin.set_desired(contract.ROLE_CONTROL_PLANE, 1)
    twin.run_until_settled(limit_seconds=1800)
    # THEN no init ever finishes: each attempt times out calling the API through the NLB, and the
    # instance is abandoned (and its replacement fares no better)
    assert twin.model.init_count_by_epoch() == {}
    assert len(_history(twin, "kubeadm-init-endpoint-unreachable")) >= 2
    abandoned = [o for o in twin.lifecycle.outcomes if o.result == "ABANDON"]
    assert abandoned, "the instance whose init kept failing was abandoned"
