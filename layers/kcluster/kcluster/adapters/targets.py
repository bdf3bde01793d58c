"""The control-plane NLB's target health: which API servers fail their health check."""

from __future__ import annotations

from typing import Any

import boto3


class TargetHealth:
    def __init__(self, client: Any = None) -> None:
        self._client = client or boto3.client("elbv2")

    def unhealthy(self, target_group_arn: str) -> tuple[str, ...]:
        """Instance ids of the targets the load balancer found unhealthy (not those still starting up
        or draining: "initial" and "draining" are not failures)."""
        response = self._client.describe_target_health(TargetGroupArn=target_group_arn)
        return tuple(
            sorted(
                description["Target"]["Id"]
                for description in response["TargetHealthDescriptions"]
                if description["TargetHealth"]["State"] == "unhealthy"
            )
        )


class ApiTargets:
    """Membership of the control-plane NLB's target group for the instances kcluster registers itself."""

    def __init__(self, client: Any = None) -> None:
        self._client = client or boto3.client("elbv2")

    def register(self, target_group_arn: str, instance_id: str) -> None:
        """RegisterTargets: idempotent, the NLB health-checks the target from now on (the group's port)."""
        self._client.register_targets(TargetGroupArn=target_group_arn, Targets=[{"Id": instance_id}])

    def deregister(self, target_group_arn: str, instance_id: str) -> None:
        """DeregisterTargets: idempotent; the target drains for the group's deregistration delay."""
        self._client.deregister_targets(TargetGroupArn=target_group_arn, Targets=[{"Id": instance_id}])
