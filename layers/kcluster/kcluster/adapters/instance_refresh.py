"""Auto Scaling instance refresh: start one toward a group's launch template version, read the latest
of each group, cancel one. What the rollout (core/rollout.py) asks for and reads."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.exceptions import ClientError

from kcluster.core.rollout_model import RefreshSeen, StartRefresh


class InstanceRefreshes:
    def __init__(self, client: Any = None) -> None:
        self._client = client or boto3.client("autoscaling")

    def start(self, step: StartRefresh) -> str:
        """The id of the refresh started; when one is already active for the group (a start whose answer
        was lost, or a second decider), that one's id: Auto Scaling runs one refresh per group."""
        preferences: dict[str, Any] = {
            "MinHealthyPercentage": step.min_healthy_percent,
            "MaxHealthyPercentage": step.max_healthy_percent,
            "InstanceWarmup": step.instance_warmup_seconds,
            "SkipMatching": step.skip_matching,
        }
        try:
            response = self._client.start_instance_refresh(
                AutoScalingGroupName=step.asg_name, Strategy="Rolling", Preferences=preferences
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "InstanceRefreshInProgress":
                raise
            active = self.latest([step.asg_name]).get(step.asg_name)
            if active is None:
                raise
            return active.refresh_id
        return str(response["InstanceRefreshId"])

    def latest(self, asg_names: list[str]) -> dict[str, RefreshSeen]:
        """The newest refresh of each group that has one (DescribeInstanceRefreshes lists newest first)."""
        found: dict[str, RefreshSeen] = {}
        for name in asg_names:
            refreshes = self._client.describe_instance_refreshes(AutoScalingGroupName=name, MaxRecords=1)
            for refresh in refreshes.get("InstanceRefreshes", [])[:1]:
                found[name] = RefreshSeen(
                    name,
                    refresh["InstanceRefreshId"],
                    refresh["Status"],
                    int(refresh.get("PercentageComplete") or 0),
                    str(refresh.get("StatusReason") or ""),
                )
        return found

    def cancel(self, asg_name: str) -> str | None:
        """The id of the refresh cancelled; None when none was active."""
        try:
            response = self._client.cancel_instance_refresh(AutoScalingGroupName=asg_name)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ActiveInstanceRefreshNotFound":
                return None
            raise
        return str(response["InstanceRefreshId"])
