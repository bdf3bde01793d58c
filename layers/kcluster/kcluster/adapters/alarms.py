"""The remediation alarms' states as CloudWatch holds them (DescribeAlarms), for the reconciler."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import boto3


class AlarmStates:
    def __init__(self, client: Any = None) -> None:
        self._client = client or boto3.client("cloudwatch")

    def in_alarm(self, alarm_names: Iterable[str]) -> frozenset[str]:
        """Which of these metric alarms are in ALARM now (an alarm that does not exist is not)."""
        names = sorted(alarm_names)
        found: set[str] = set()
        paginator = self._client.get_paginator("describe_alarms")
        for page in paginator.paginate(AlarmNames=names, AlarmTypes=["MetricAlarm"], StateValue="ALARM"):
            found |= {alarm["AlarmName"] for alarm in page.get("MetricAlarms", [])}
        return frozenset(found)
