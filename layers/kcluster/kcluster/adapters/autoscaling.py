"""Auto Scaling lifecycle actions: complete, heartbeat, and list our groups' instances."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.exceptions import ClientError

from kcluster.core.models import AsgInstance

# DescribeAutoScalingInstances takes at most this many instance ids per call.
MAX_DESCRIBE_INSTANCE_IDS = 50


class Lifecycle:
    def __init__(self, client: Any = None) -> None:
        self._client = client or boto3.client("autoscaling")

    def complete(
        self, asg_name: str, hook_name: str, instance_id: str, token: str | None, result: str
    ) -> bool:
        """True if completed; False if no action was pending (already completed or timed out)."""
        return self._call(
            self._client.complete_lifecycle_action,
            asg_name,
            hook_name,
            instance_id,
            token,
            LifecycleActionResult=result,
        )

    def heartbeat(self, asg_name: str, hook_name: str, instance_id: str, token: str | None) -> bool:
        return self._call(
            self._client.record_lifecycle_action_heartbeat, asg_name, hook_name, instance_id, token
        )

    def mark_unhealthy(self, instance_id: str) -> bool:
        """SetInstanceHealth Unhealthy, now (no grace period): the group replaces the instance through
        its hooks. False if the instance is no longer in a group (already gone)."""
        try:
            self._client.set_instance_health(
                InstanceId=instance_id, HealthStatus="Unhealthy", ShouldRespectGracePeriod=False
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ValidationError":
                return False
            raise
        return True

    def instances(self, asg_names: list[str]) -> list[AsgInstance]:
        found = []
        paginator = self._client.get_paginator("describe_auto_scaling_groups")
        for page in paginator.paginate(AutoScalingGroupNames=asg_names):
            for group in page["AutoScalingGroups"]:
                for instance in group.get("Instances", []):
                    found.append(
                        AsgInstance(
                            instance["InstanceId"],
                            group["AutoScalingGroupName"],
                            instance["LifecycleState"],
                            _template_version(instance),
                        )
                    )
        return found

    def describe(self, instance_ids: list[str]) -> dict[str, AsgInstance]:
        """What Auto Scaling says of each instance (its group and lifecycle state), in calls of at most
        50 ids; an id it does not list is absent from the result. Used to check an event's claim."""
        found: dict[str, AsgInstance] = {}
        unique = list(dict.fromkeys(instance_ids))
        for start in range(0, len(unique), MAX_DESCRIBE_INSTANCE_IDS):
            chunk = unique[start : start + MAX_DESCRIBE_INSTANCE_IDS]
            # MaxRecords as large as the chunk: one page per call.
            response = self._client.describe_auto_scaling_instances(
                InstanceIds=chunk, MaxRecords=MAX_DESCRIBE_INSTANCE_IDS
            )
            for instance in response["AutoScalingInstances"]:
                found[instance["InstanceId"]] = AsgInstance(
                    instance["InstanceId"],
                    instance["AutoScalingGroupName"],
                    instance["LifecycleState"],
                    _template_version(instance),
                )
        return found

    @staticmethod
    def _call(
        operation: Any, asg_name: str, hook_name: str, instance_id: str, token: str | None, **extra: str
    ) -> bool:
        target = {"LifecycleActionToken": token} if token else {"InstanceId": instance_id}
        try:
            operation(AutoScalingGroupName=asg_name, LifecycleHookName=hook_name, **target, **extra)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ValidationError":
                return False  # "No active Lifecycle Action found": nothing pending any more
            raise
        return True


def _template_version(instance: dict[str, Any]) -> int | None:
    """The numbered launch template version an instance was launched from, as Auto Scaling reports it
    (a string); None for an instance without a template or with a version that is not a number."""
    version = str((instance.get("LaunchTemplate") or {}).get("Version") or "")
    return int(version) if version.isdigit() else None
