################################################################################
# The operator's side: the S3 bucket Ansible's Session Manager connection (amazon.aws.aws_ssm) moves
# files through, so `kcluster inventory` can hand Ansible nodes it reaches without SSH. The plugin
# uploads with the operator's credentials and the node fetches through presigned URLs, so no node role
# needs S3. Private, TLS-only, owner-enforced, and every object gone after a day: nothing lives here.
################################################################################

resource "aws_s3_bucket" "ssm_transfer" {
  #checkov:skip=CKV_AWS_144:Files in transit between Ansible and a node for minutes; a replica elsewhere would only keep them longer.
  #checkov:skip=CKV_AWS_18:Access logs need a bucket the operator owns; CloudTrail data events cover who fetched what if the account wants it.
  #checkov:skip=CKV_AWS_21:Objects live for minutes and expire after a day; versions would keep deleted transfers around.
  #checkov:skip=CKV2_AWS_62:Nothing reacts to a transfer file; event notifications would have no consumer.
  #checkov:skip=CKV_AWS_145:SSE-S3, not the cluster key: the key's policy allows SSM only, and presigned transfers would need the operator granted through S3 as well; objects expire within a day.
  bucket_prefix = "kc-${var.cluster_name}-"
  force_destroy = true
  tags          = merge(local.tags, { "kcluster:purpose" = "ssm-transfer" })
}

resource "aws_s3_bucket_public_access_block" "ssm_transfer" {
  bucket                  = aws_s3_bucket.ssm_transfer.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "ssm_transfer" {
  bucket = aws_s3_bucket.ssm_transfer.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "ssm_transfer" {
  bucket = aws_s3_bucket.ssm_transfer.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "ssm_transfer" {
  bucket = aws_s3_bucket.ssm_transfer.id

  rule {
    id     = "transfers-expire"
    status = "Enabled"

    filter {}

    expiration {
      days = 1
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

data "aws_iam_policy_document" "ssm_transfer" {
  statement {
    sid       = "TlsOnly"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.ssm_transfer.arn, "${aws_s3_bucket.ssm_transfer.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "ssm_transfer" {
  bucket = aws_s3_bucket.ssm_transfer.id
  policy = data.aws_iam_policy_document.ssm_transfer.json

  depends_on = [aws_s3_bucket_public_access_block.ssm_transfer]
}
