################################################################################
# The cluster's own KMS key for its SecureString parameters (unless the user brings one: kms_key_arn).
# Its key policy decides who decrypts what: the account (root) only administers the key and gets no
# cryptographic use, so no identity policy in the account can grant Decrypt; each node role may use it
# only through SSM and only under the encryption context of its own parameters (SSM encrypts a
# SecureString with {"PARAMETER_ARN": "<parameter ARN>"}); admin_principal_arns may decrypt the admin
# kubeconfig.
################################################################################

locals {
  create_kms_key = var.kms_key_arn == null
  kms_key_arn    = local.create_kms_key ? aws_kms_key.secrets[0].arn : var.kms_key_arn
  account_root   = "arn:${local.partition}:iam::${local.account_id}:root"

  # Key administration without any cryptographic operation and without CreateGrant (a grant could
  # hand out Decrypt behind the key policy's back).
  kms_admin_actions = [
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListKeyRotations",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
  ]
}

data "aws_iam_policy_document" "kms_key" {
  count = local.create_kms_key ? 1 : 0

  #checkov:skip=CKV_AWS_109:A key policy's Resource "*" is this key only; the account root gets key administration (PutKeyPolicy included, as KMS's lockout check requires) and no cryptographic use.
  #checkov:skip=CKV_AWS_111:A key policy's Resource "*" is this key only; every cryptographic grant is conditioned on kms:ViaService and the parameter's encryption context.
  #checkov:skip=CKV_AWS_356:In a key policy Resource "*" means the key the policy is attached to; no other resource can be named.
  statement {
    sid       = "KeyAdministrationByTheAccount"
    actions   = local.kms_admin_actions
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [local.account_root]
    }
  }

  statement {
    sid       = "ControlPlanesJoinMaterialThroughSsm"
    actions   = ["kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.node["control_plane"].arn]
    }

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.ssm_service]
    }

    condition {
      test     = "StringLike"
      variable = local.parameter_arn_context
      values   = ["${local.parameter_arn_prefix}/join/*"]
    }
  }

  statement {
    sid       = "ControlPlanesWriteOnlyAdminKubeconfigThroughSsm"
    actions   = ["kms:Encrypt", "kms:GenerateDataKey"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.node["control_plane"].arn]
    }

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.ssm_service]
    }

    condition {
      test     = "StringLike"
      variable = local.parameter_arn_context
      values   = ["${local.parameter_arn_prefix}/admin/*"]
    }
  }

  statement {
    sid       = "WorkersJoinTokenThroughSsm"
    actions   = ["kms:Decrypt"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.node["worker"].arn]
    }

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.ssm_service]
    }

    condition {
      test     = "StringEquals"
      variable = local.parameter_arn_context
      values   = ["${local.parameter_arn_prefix}/join/token"]
    }
  }

  # etcd backups (backup.tf): control planes only, through S3 only, for the backup bucket only.
  statement {
    sid       = "ControlPlanesBackupsThroughS3"
    actions   = local.backup_kms_actions
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.node["control_plane"].arn]
    }

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

  dynamic "statement" {
    for_each = length(var.admin_principal_arns) > 0 ? [var.admin_principal_arns] : []

    content {
      sid       = "AdminsReadAdminKubeconfigThroughSsm"
      actions   = ["kms:Decrypt"]
      resources = ["*"]

      principals {
        type        = "AWS"
        identifiers = statement.value
      }

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = [local.ssm_service]
      }

      condition {
        test     = "StringLike"
        variable = local.parameter_arn_context
        values   = ["${local.parameter_arn_prefix}/admin/*"]
      }
    }
  }
}

resource "aws_kms_key" "secrets" {
  count = local.create_kms_key ? 1 : 0

  description             = "kcluster ${var.cluster_name}: SecureString parameters (join secrets, admin kubeconfig) and etcd backups"
  key_usage               = "ENCRYPT_DECRYPT"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms_key[0].json
  tags                    = local.tags
}

resource "aws_kms_alias" "secrets" {
  count = local.create_kms_key ? 1 : 0

  name          = "alias/kcluster-${var.cluster_name}"
  target_key_id = aws_kms_key.secrets[0].key_id
}
