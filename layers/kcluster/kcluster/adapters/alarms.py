"""The remediation alarms' states as CloudWatch holds them (DescribeAlarms), for the reconciler."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import boto3

from kcluster.core.remediation import AlarmRead


class AlarmStates:
    def __init__(self, client: Any = None) -> None:
        self._client = client or boto3.client("cloudwatch")

    def read(self, alarm_names: Iterable[str]) -> dict[str, AlarmRead]:
        """These metric alarms' states and when each began (an alarm that does not exist is left out)."""
        found: dict[str, AlarmRead] = {}
        paginator = self._client.get_paginator("describe_alarms")
        for page in paginator.paginate(AlarmNames=sorted(alarm_names), AlarmTypes=["MetricAlarm"]):
            for alarm in page.get("MetricAlarms", []):
                since = alarm["StateUpdatedTimestamp"].timestamp()
                found[alarm["AlarmName"]] = AlarmRead(alarm["StateValue"], since)
        return found
