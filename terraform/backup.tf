################################################################################
# etcd backups: the bucket the `backup` document uploads to (an etcd snapshot, the cluster's PKI and a
# manifest per backup, under frequent/<id>/ or daily/<id>/). The PKI is what a restored cluster needs to
# keep its identity, so DESIGN.md section 4's secrets rules hold here too: objects are encrypted with the
# cluster's own KMS key, whose policy (kms.tf) lets only the control-plane role use it, and only through
# S3 for this bucket; only the control-plane role may put or get objects, and the bucket policy refuses
# every other principal even where an identity policy of the account would allow it. Versioned, so a
# mistaken delete or overwrite can be undone for noncurrent_version_days; frequent copies are kept
# backup_frequent_retention_days, daily ones backup_daily_retention_days.
################################################################################

locals {
  backup_object_prefixes = { frequent = "frequent/", daily = "daily/" }
  # Object reads and writes the control planes make; everyone else is refused them by the bucket policy.
  backup_object_actions = ["s3:GetObject", "s3:PutObject"]
  # S3 asks KMS for a data key to encrypt (PutObject, each part of a multipart upload) and to decrypt
  # (GetObject, completing a multipart upload); with a bucket key the encryption context is the bucket.
  backup_kms_actions  = ["kms:GenerateDataKey", "kms:Decrypt"]
  s3_service          = "s3.${local.region}.amazonaws.com"
  backup_arn_context  = "kms:EncryptionContext:aws:s3:arn"
  control_plane_arn   = aws_iam_role.node["control_plane"].arn
}

resource "aws_s3_bucket" "backup" {
  #checkov:skip=CKV_AWS_144:A replica in another region would need the cluster key there as well; the bucket is versioned and a cluster lives in one region.
  #checkov:skip=CKV_AWS_18:Access logs need a bucket the operator owns; CloudTrail data events cover who fetched what if the account wants it.
  #checkov:skip=CKV2_AWS_62:Nothing reacts to a new backup; the control loop reads the backup document's own result.
  bucket_prefix = "kc-${var.cluster_name}-backup-"
  tags          = merge(local.tags, { "kcluster:purpose" = "etcd-backup" })
}

resource "aws_s3_bucket_versioning" "backup" {
  bucket = aws_s3_bucket.backup.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_public_access_block" "backup" {
  bucket                  = aws_s3_bucket.backup.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "backup" {
  bucket = aws_s3_bucket.backup.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "backup" {
  bucket = aws_s3_bucket.backup.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = local.kms_key_arn
    }
    # One data key per bucket and key, not per object: fewer KMS calls, and the encryption context is
    # the bucket's ARN, which the key policy names.
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "backup" {
  bucket = aws_s3_bucket.backup.id

  dynamic "rule" {
    for_each = {
      frequent = var.backup_frequent_retention_days
      daily    = var.backup_daily_retention_days
    }

    content {
      id     = "${rule.key}-backups-expire"
      status = "Enabled"

      filter {
        prefix = local.backup_object_prefixes[rule.key]
      }

      expiration {
        days = rule.value
      }
    }
  }

  # Versions an expiry or a mistaken delete left behind go after backup_noncurrent_version_days; the
  # delete markers left with no version behind them go too.
  rule {
    id     = "noncurrent-versions-expire"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.backup_noncurrent_version_days
    }

    expiration {
      expired_object_delete_marker = true
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.backup]
}

data "aws_iam_policy_document" "backup_bucket" {
  statement {
    sid       = "TlsOnly"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.backup.arn, "${aws_s3_bucket.backup.arn}/*"]

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

  # The PKI is in here: nothing but a control plane reads or writes an object, whatever else the
  # account's identity policies allow (an administrator can still list, and delete through versions).
  statement {
    sid       = "ObjectsForControlPlanesOnly"
    effect    = "Deny"
    actions   = local.backup_object_actions
    resources = ["${aws_s3_bucket.backup.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "ArnNotEquals"
      variable = "aws:PrincipalArn"
      values   = [local.control_plane_arn]
    }
  }
}

resource "aws_s3_bucket_policy" "backup" {
  bucket = aws_s3_bucket.backup.id
  policy = data.aws_iam_policy_document.backup_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.backup]
}

# The control planes' grants on the bucket, by its exact ARN (workers get none).
data "aws_iam_policy_document" "control_plane_backup" {
  statement {
    sid       = "ListBackups"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.backup.arn]
  }

  statement {
    sid       = "WriteAndReadBackups"
    actions   = local.backup_object_actions
    resources = ["${aws_s3_bucket.backup.arn}/*"]
  }

  # For a key the user brings (kms_key_arn); the module's own key policy names the role itself (kms.tf).
  dynamic "statement" {
    for_each = local.create_kms_key ? [] : ["BackupKeyThroughS3"]
    content {
      sid       = statement.value
      actions   = local.backup_kms_actions
      resources = [local.kms_key_arn]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = [local.s3_service]
      }

      condition {
        test     = "StringEquals"
        variable = local.backup_arn_context
        values   = [aws_s3_bucket.backup.arn]
      }
    }
  }
}

resource "aws_iam_role_policy" "control_plane_backup" {
  name   = "kcluster-backup"
  role   = aws_iam_role.node["control_plane"].id
  policy = data.aws_iam_policy_document.control_plane_backup.json
}
