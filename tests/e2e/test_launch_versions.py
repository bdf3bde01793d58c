"""End to end on the twin: node records learn what their instance was launched from (the numbered
launch template version Auto Scaling reports, and the Kubernetes version it installs), which a
rollout compares with its target. Judged against the world: Auto Scaling's own answer."""

from __future__ import annotations

import boto3
import pytest

from twin import scenarios, versions

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def test_joined_nodes_carry_their_launch_template_version_and_kubernetes_version():
    result = scenarios.run("scale-out", control_planes=1, workers=1, seed=11)
    twin = result.twin
    try:
        with twin.operator():
            groups = boto3.client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
        launched = {i["InstanceId"]: i["LaunchTemplate"]["Version"] for g in groups for i in g["Instances"]}
        nodes = {
            item["instance_id"]["S"]: item
            for item in twin.state_items()
            if item["kind"]["S"] == "node" and item["phase"]["S"] == "joined"
        }
        assert sorted(nodes) == sorted(launched) and len(nodes) == 2
        for instance_id, item in nodes.items():
            assert item["launch_template_version"]["N"] == launched[instance_id]
            assert item["kubernetes_version"]["S"] == versions.kubernetes_version()
        assert all(inv["ok"] for inv in result.report["invariants"].values()), result.report["invariants"]
    finally:
        twin.close()
