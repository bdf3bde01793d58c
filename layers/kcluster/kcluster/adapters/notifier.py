"""Messages to the people on call: the alerts topic (SNS), only where a person must act."""

from __future__ import annotations

from typing import Any

import boto3

# SNS refuses a subject longer than 100 characters.
MAX_SUBJECT = 100


class Notifier:
    def __init__(self, topic_arn: str | None, client: Any = None) -> None:
        self.topic_arn = topic_arn
        self._client = client or boto3.client("sns")

    def publish(self, subject: str, message: str) -> bool:
        """False when no topic is configured (the message is then only logged by the caller)."""
        if not self.topic_arn:
            return False
        self._client.publish(TopicArn=self.topic_arn, Subject=subject[:MAX_SUBJECT], Message=message)
        return True
