"""The one AWS account and region the twin's world lives in (moto's default account).

Every module of the twin that names an ARN, a backend (`moto_backends[ACCOUNT_ID][REGION]`) or a client's
region takes them from here, so the world cannot disagree with itself.
"""

from __future__ import annotations

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"


def instance_arn(instance_id: str) -> str:
    """An EC2 instance's ARN, as events name it in `resources`."""
    return f"arn:aws:ec2:{REGION}:{ACCOUNT_ID}:instance/{instance_id}"
