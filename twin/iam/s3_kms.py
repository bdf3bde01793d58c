"""S3 as the twin authorizes it: what S3 asks KMS on the caller's behalf for an object encrypted with a
customer managed key (SSE-KMS), and the bucket policy evaluated by the twin's evaluator instead of moto's.

AWS authorizes these with the caller's own permissions: PutObject needs kms:GenerateDataKey, GetObject
kms:Decrypt, on the object's key, with kms:ViaService = s3.<region>.amazonaws.com and the encryption
context S3 uses: the bucket's ARN when the bucket uses an S3 Bucket Key (terraform/backup.tf does), else
the object's. HeadObject reads only metadata and needs no key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.iam.access_control import PermissionResult
from moto.s3.models import FakeBucket

from twin.iam import requests, resources

_ACTIONS = {"PutObject": "kms:GenerateDataKey", "GetObject": "kms:Decrypt"}


def checks(call: requests.Call) -> list[requests.Check]:
    action = _ACTIONS.get(call.operation)
    bucket_name, key = str(call.params.get("Bucket", "")), str(call.params.get("Key", ""))
    if action is None or not bucket_name or not key:
        return []
    requested = call.params.get("SSEKMSKeyId") if call.operation == "PutObject" else None
    kms_key = resources.s3_object_key(bucket_name, key, str(requested) if requested else None)
    if kms_key is None:
        return []
    bucket = resources.s3_bucket(bucket_name)
    bucket_key = bucket is not None and _bucket_key_enabled(bucket.encryption)
    arn = f"arn:aws:s3:::{bucket_name}" if bucket_key else f"arn:aws:s3:::{bucket_name}/{key}"
    context = requests.request_context(call, action, {}) | {
        "kms:ViaService": f"s3.{call.region}.amazonaws.com",
        "kms:CallerAccount": call.account,
        "kms:EncryptionContext:aws:s3:arn": arn,
        "kms:EncryptionContextKeys": ["aws:s3:arn"],
    }
    return [requests.Check(action, resources.key_arn(kms_key, call.region, call.account), context)]


def _bucket_key_enabled(encryption: object) -> bool:
    rules = encryption.get("Rule", []) if isinstance(encryption, dict) else []
    return any(
        str(rule.get("BucketKeyEnabled", "")).lower() == "true"
        for rule in ([rules] if isinstance(rules, dict) else rules)
    )


def defer_bucket_policies_to_the_twin() -> Callable[[], None]:
    """moto 5.2 checks a bucket policy itself and takes a statement with a Condition as matching
    whatever the condition says (a TLS-only Deny refuses every request). While the twin's IAM is
    installed it evaluates bucket policies as AWS does (resources.resource_policy), so moto's own check
    stands aside; returns the undo."""
    original = FakeBucket.get_permission

    def neutral(self: FakeBucket, action: str, resource: str) -> Any:
        return PermissionResult.NEUTRAL

    FakeBucket.get_permission = neutral  # type: ignore[method-assign]

    def restore() -> None:
        FakeBucket.get_permission = original  # type: ignore[method-assign]

    return restore
