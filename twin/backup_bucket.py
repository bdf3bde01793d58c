"""The etcd backup bucket as terraform/backup.tf makes it, created in (moto's) S3 for the twin.

Settings are read from the module where they are policy (the bucket policy is rendered from its
`aws_iam_policy_document`, the lifecycle days from the variables' defaults), so the twin does not restate
them. moto keeps every setting and answers them back; it enforces none of them (lifecycle expiry,
the bucket policy, SSE-KMS key use): the twin's IAM does the authorizing.
"""

from __future__ import annotations

import json

import boto3

from twin.iam.nodes import NodeIamInputs
from twin.terraform.evaluator import TerraformEvaluator
from twin.terraform.hcl import TERRAFORM_DIR, load_configuration
from twin.terraform.policy_documents import render_policy_document

# Terraform appends a 26-digit unique suffix to bucket_prefix.
_SUFFIX = "20261202000000000000000002"


def backup_bucket_name(cluster: str) -> str:
    return f"kc-{cluster}-backup-{_SUFFIX}"


def backup_bucket_known(cluster: str) -> dict[tuple[str, ...], str]:
    """What AWS names the bucket (Terraform address + attribute -> value); the key policy names it."""
    name = backup_bucket_name(cluster)
    return {
        ("aws_s3_bucket", "backup", "id"): name,
        ("aws_s3_bucket", "backup", "arn"): f"arn:aws:s3:::{name}",
    }


def create_backup_bucket(
    region: str, tags: list[dict[str, str]], inputs: NodeIamInputs, kms_key_arn: str
) -> str:
    """Bucket, versioning, public access block, SSE-KMS with the cluster's key (bucket key on), the
    lifecycle rules and the bucket policy, as backup.tf declares them for the module's inputs."""
    s3 = boto3.client("s3", region_name=region)
    evaluator = TerraformEvaluator(load_configuration(TERRAFORM_DIR), dict(inputs.variables))
    name = backup_bucket_name(str(inputs.variables["cluster_name"]))
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": kms_key_arn,
                    },
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration=_lifecycle(evaluator))
    policy = render_policy_document(evaluator, "backup_bucket", inputs.known)
    s3.put_bucket_policy(Bucket=name, Policy=json.dumps(policy))
    s3.put_bucket_tagging(
        Bucket=name, Tagging={"TagSet": [*tags, {"Key": "kcluster:purpose", "Value": "etcd-backup"}]}
    )
    return name


def _lifecycle(evaluator: TerraformEvaluator) -> dict[str, object]:
    rules: list[dict[str, object]] = [
        {
            "ID": f"{tier}-backups-expire",
            "Status": "Enabled",
            "Filter": {"Prefix": f"{tier}/"},
            "Expiration": {"Days": int(evaluator.variable(f"backup_{tier}_retention_days"))},
        }
        for tier in ("frequent", "daily")
    ]
    rules.append(
        {
            "ID": "noncurrent-versions-expire",
            "Status": "Enabled",
            "Filter": {},
            "NoncurrentVersionExpiration": {
                "NoncurrentDays": int(evaluator.variable("backup_noncurrent_version_days"))
            },
            "Expiration": {"ExpiredObjectDeleteMarker": True},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        }
    )
    return {"Rules": rules}
