"""End to end on the twin: a new node image published as `terraform apply` does it is rolled through
the cluster by the control loop (preflight, control planes one at a time, then the workers with their
minimum healthy share kept), by instance refresh. Judged against the world: Auto Scaling's own
records of its refreshes and instances, the Kubernetes model, and the invariants."""

from __future__ import annotations

import boto3
import pytest

from twin import scenarios

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def test_a_new_node_image_is_rolled_through_every_group_with_every_invariant_holding():
    # WHEN the image-rollout scenario runs on 3 control planes and 5 workers
    result = scenarios.run("image-rollout", control_planes=3, workers=5, seed=7)
    twin = result.twin
    try:
        invariants = result.report["invariants"]
        # THEN every invariant holds, the rollout's own among them
        assert all(inv["ok"] for inv in invariants.values()), invariants
        assert {"all_at_target", "min_healthy_respected", "version_skew_ok"} <= set(invariants)
        assert "at each of 0 steps" not in invariants["min_healthy_respected"]["detail"]
        # AND Auto Scaling ran one successful refresh per group, control planes first, that the control
        # loop started with the preferences of docs/upgrades.md
        with twin.operator():
            autoscaling = boto3.client("autoscaling")
            refreshes = {
                group: autoscaling.describe_instance_refreshes(AutoScalingGroupName=group)[
                    "InstanceRefreshes"
                ]
                for group in (twin.control_plane_asg, twin.worker_asg)
            }
            groups = autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"]
        (control_planes,), (workers,) = refreshes[twin.control_plane_asg], refreshes[twin.worker_asg]
        assert control_planes["Status"] == workers["Status"] == "Successful"
        assert control_planes["EndTime"] <= workers["StartTime"]
        assert control_planes["Preferences"]["MinHealthyPercentage"] == 100
        assert control_planes["Preferences"]["MaxHealthyPercentage"] == 134  # room for one more of 3
        assert workers["Preferences"]["MinHealthyPercentage"] == 90
        # AND every instance now runs version 2, 3 control planes and 5 workers, all Ready members
        launched = [i["LaunchTemplate"]["Version"] for g in groups for i in g["Instances"]]
        assert launched == ["2"] * 8
        assert len(twin.model.etcd_members()) == 3
        # AND the rollout record says it succeeded
        (record,) = [item for item in twin.state_items() if item["kind"]["S"] == "rollout"]
        assert record["phase"]["S"] == "succeeded" and record["cluster_step"]["BOOL"] is False
    finally:
        twin.close()
