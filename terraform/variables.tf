################################################################################
# Cluster
################################################################################

variable "cluster_name" {
  description = "Name of the cluster: lower-case letters, digits and dashes, 3 to 32 characters, starting with a letter. Prefixes every resource name and the /kcluster/<name>/ parameter path."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.cluster_name))
    error_message = "cluster_name must match ^[a-z][a-z0-9-]{1,30}[a-z0-9]$ (the pattern the functions and SSM documents accept)."
  }
}

variable "kubernetes_version" {
  description = "Kubernetes version installed from pkgs.k8s.io (kubeadm, kubelet and kubectl pinned to it), MAJOR.MINOR.PATCH."
  type        = string
  default     = "1.37.2"

  validation {
    condition     = can(regex("^1\\.[0-9]{2}\\.[0-9]{1,2}$", var.kubernetes_version))
    error_message = "kubernetes_version must look like 1.37.2."
  }
}

variable "containerd_version" {
  description = "containerd version installed on every node from the upstream release archive (Kubernetes 1.36 and newer need containerd 2.x; Ubuntu 24.04 packages 1.7), MAJOR.MINOR.PATCH."
  type        = string
  default     = "2.4.2"

  validation {
    condition     = can(regex("^2\\.[0-9]+\\.[0-9]+$", var.containerd_version))
    error_message = "containerd_version must look like 2.4.2 (a containerd 2.x release)."
  }
}

variable "pod_cidr" {
  description = "Pod network CIDR given to kubeadm init (Calico takes its IP pool from it)."
  type        = string
  default     = "10.244.0.0/16"

  validation {
    condition     = can(cidrhost(var.pod_cidr, 0)) && cidrsubnet(var.pod_cidr, 0, 0) == var.pod_cidr
    error_message = "pod_cidr must be an IPv4 network in CIDR notation with no host bits set, e.g. 10.244.0.0/16."
  }
}

variable "service_cidr" {
  description = "Service network CIDR given to kubeadm init."
  type        = string
  default     = "10.96.0.0/12"

  validation {
    condition     = can(cidrhost(var.service_cidr, 0)) && cidrsubnet(var.service_cidr, 0, 0) == var.service_cidr
    error_message = "service_cidr must be an IPv4 network in CIDR notation with no host bits set, e.g. 10.96.0.0/12."
  }
}

variable "cni_version" {
  description = "Calico version; the manifest applied by the init document is pinned to it."
  type        = string
  default     = "v3.33.0"

  validation {
    condition     = can(regex("^v[0-9]+\\.[0-9]+\\.[0-9]+$", var.cni_version))
    error_message = "cni_version must look like v3.33.0."
  }
}

variable "cni_manifest_url" {
  description = "HTTPS URL of the Calico manifest to apply; null means the upstream manifest of cni_version."
  type        = string
  default     = null

  validation {
    condition     = var.cni_manifest_url == null || can(regex("^https://[A-Za-z0-9./_-]{1,400}\\.ya?ml$", var.cni_manifest_url))
    error_message = "cni_manifest_url must be an https:// URL of a .yaml or .yml file."
  }
}

variable "cni_image_registry" {
  description = "Registry (host[:port]/path, no scheme, no tag) the nodes pull Calico's images from in place of the manifest's docker.io/calico: Calico publishes them at quay.io/calico; a pull-through mirror (e.g. an ECR pull-through cache) keeps nodes off public registries. Anonymous Docker Hub pulls are rate-limited per IP, shared by every node behind one NAT gateway."
  type        = string
  default     = "quay.io/calico"

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9._-]+)*$", var.cni_image_registry)) && !can(regex("^(docker\\.io|index\\.docker\\.io|registry-1\\.docker\\.io)(/|$)", var.cni_image_registry))
    error_message = "cni_image_registry must be a registry host and path such as quay.io/calico (no https://, no tag), and not Docker Hub."
  }
}

variable "join_token_ttl" {
  description = "TTL of the bootstrap tokens the refresh-join document creates (kubeadm duration in minutes or hours, e.g. 15m)."
  type        = string
  default     = "15m"

  validation {
    condition     = can(regex("^[1-9][0-9]{0,3}[mh]$", var.join_token_ttl))
    error_message = "join_token_ttl must be a number of minutes or hours, e.g. 15m or 2h."
  }
}

variable "max_attempts" {
  description = "How many times the functions run a failing idempotent step on a node before abandoning its lifecycle action."
  type        = number
  default     = 3

  validation {
    condition     = var.max_attempts >= 1 && var.max_attempts <= 10 && floor(var.max_attempts) == var.max_attempts
    error_message = "max_attempts must be a whole number from 1 to 10."
  }
}

variable "worker_batch_size" {
  description = "Most worker instances joined by one SSM SendCommand (AWS accepts at most 50)."
  type        = number
  default     = 50

  validation {
    condition     = var.worker_batch_size >= 1 && var.worker_batch_size <= 50 && floor(var.worker_batch_size) == var.worker_batch_size
    error_message = "worker_batch_size must be a whole number from 1 to 50."
  }
}

variable "timeouts" {
  description = "Seconds the functions allow each step (see kcluster.config.Timeouts); omitted attributes keep their defaults."
  type = object({
    provision_seconds          = optional(number, 900)
    init_seconds               = optional(number, 900)
    join_seconds               = optional(number, 600)
    refresh_seconds            = optional(number, 120)
    drain_seconds              = optional(number, 300)
    lease_seconds              = optional(number, 1200)
    heartbeat_interval_seconds = optional(number, 300)
    quorum_wait_seconds        = optional(number, 1800)
  })
  default = {}

  validation {
    condition = (
      var.timeouts.provision_seconds >= 60 && var.timeouts.init_seconds >= 60 && var.timeouts.join_seconds >= 60 &&
      var.timeouts.refresh_seconds >= 30 && var.timeouts.drain_seconds >= 30 && var.timeouts.lease_seconds >= 120 &&
      var.timeouts.heartbeat_interval_seconds >= 30
    )
    error_message = "timeouts: provision, init and join need at least 60 s, refresh, drain and heartbeat_interval at least 30 s, lease at least 120 s."
  }

  validation {
    # A heartbeat must reach the lifecycle hook before its 900 s heartbeat timeout runs out.
    condition     = var.timeouts.heartbeat_interval_seconds < 900
    error_message = "timeouts.heartbeat_interval_seconds must be below the lifecycle hooks' 900 s heartbeat timeout."
  }
}

################################################################################
# Secrets and IAM
################################################################################

variable "kms_key_arn" {
  description = "ARN of an existing symmetric KMS key for the cluster's SecureString parameters (join secrets, admin kubeconfig); null means the module creates one, with rotation on, the alias alias/kcluster-<name> and a key policy scoped per role. A key of your own must let the node roles use it through SSM (see README)."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]{1,64}$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN such as arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab (not an alias or a bare key ID)."
  }
}

variable "admin_principal_arns" {
  description = "IAM principals (role or user ARNs) the module's key policy lets decrypt the admin kubeconfig through SSM (they still need ssm:GetParameter on it). No node role can. Ignored when kms_key_arn is set."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.admin_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/[A-Za-z0-9+=,.@_/-]{1,512}$", arn))])
    error_message = "admin_principal_arns must be IAM role or user ARNs such as arn:aws:iam::123456789012:role/platform-admins."
  }
}

variable "permissions_boundary_arn" {
  description = "ARN of an IAM managed policy set as the permissions boundary of every IAM role the module creates; null sets none."
  type        = string
  default     = null

  validation {
    condition     = var.permissions_boundary_arn == null || can(regex("^arn:aws[a-z-]*:iam::([0-9]{12}|aws):policy/[A-Za-z0-9+=,.@_/-]{1,512}$", var.permissions_boundary_arn))
    error_message = "permissions_boundary_arn must be an IAM policy ARN such as arn:aws:iam::123456789012:policy/boundary."
  }
}

################################################################################
# Network
################################################################################

variable "vpc_id" {
  description = "ID of the existing VPC the cluster lives in."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id must be a VPC ID such as vpc-0123456789abcdef0."
  }
}

variable "subnet_ids" {
  description = "Private subnets of vpc_id for the nodes (and the internal NLB): at least three, in different availability zones."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 3 && length(distinct(var.subnet_ids)) == length(var.subnet_ids)
    error_message = "subnet_ids must list at least three distinct subnets (one per availability zone)."
  }

  validation {
    condition     = alltrue([for id in var.subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", id))])
    error_message = "subnet_ids must be subnet IDs such as subnet-0123456789abcdef0."
  }
}

variable "endpoint_internet_facing" {
  description = "Make the control-plane NLB internet-facing (it needs public subnets in endpoint_subnet_ids). Internal by default."
  type        = bool
  default     = false
}

variable "endpoint_subnet_ids" {
  description = "Subnets for the control-plane NLB; null means subnet_ids. Must be public subnets when endpoint_internet_facing is true."
  type        = list(string)
  default     = null

  validation {
    condition     = var.endpoint_subnet_ids == null || alltrue([for id in coalesce(var.endpoint_subnet_ids, []) : can(regex("^subnet-[0-9a-f]{8,17}$", id))])
    error_message = "endpoint_subnet_ids must be subnet IDs such as subnet-0123456789abcdef0."
  }
}

variable "api_allowed_cidrs" {
  description = "CIDRs (besides the cluster's own nodes) allowed to reach the Kubernetes API on the NLB, port 6443."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.api_allowed_cidrs : can(cidrhost(cidr, 0))])
    error_message = "api_allowed_cidrs must be IPv4 CIDRs such as 10.0.0.0/16."
  }
}

variable "egress_cidrs" {
  description = "Destinations nodes may reach on TCP 80 and 443 (package mirrors, pkgs.k8s.io, container registries, AWS APIs). Narrow it when a proxy or VPC endpoints serve those."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = alltrue([for cidr in var.egress_cidrs : can(cidrhost(cidr, 0))])
    error_message = "egress_cidrs must be IPv4 CIDRs."
  }
}

variable "endpoint_deletion_protection" {
  description = "Deletion protection on the control-plane NLB. Turn it off (and apply) before destroying the cluster."
  type        = bool
  default     = true
}

variable "endpoint_access_logs" {
  description = "S3 bucket (and optional prefix) for the NLB's access logs; null disables them."
  type = object({
    bucket = string
    prefix = optional(string)
  })
  default = null
}

################################################################################
# Nodes
################################################################################

variable "architecture" {
  description = "CPU architecture of the nodes: arm64 (Graviton) or amd64. Selects the Ubuntu AMI and must match the instance types."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "amd64"], var.architecture)
    error_message = "architecture must be arm64 or amd64."
  }
}

variable "ami_id" {
  description = "AMI for every node; null means the latest Ubuntu 24.04 LTS from Canonical's public SSM parameter (the node scripts need cloud-init and apt)."
  type        = string
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id must be an AMI ID such as ami-0123456789abcdef0."
  }
}

variable "control_plane_instance_type" {
  description = "Instance type of the control planes (kubeadm needs at least 2 vCPUs and 2 GiB)."
  type        = string
  default     = "t4g.medium"
}

variable "worker_instance_type" {
  description = "Instance type of the workers."
  type        = string
  default     = "t4g.medium"
}

variable "root_volume_size" {
  description = "Size in GiB of every node's encrypted gp3 root volume."
  type        = number
  default     = 50

  validation {
    condition     = var.root_volume_size >= 20 && var.root_volume_size <= 16384
    error_message = "root_volume_size must be between 20 and 16384 GiB."
  }
}

variable "root_volume_kms_key_id" {
  description = "ARN of the KMS key encrypting the root volumes; null means the account's default EBS key."
  type        = string
  default     = null
}

variable "control_plane_desired_capacity" {
  description = "Number of control planes. Odd, so etcd keeps a majority."
  type        = number
  default     = 3

  validation {
    condition     = var.control_plane_desired_capacity >= 1 && var.control_plane_desired_capacity % 2 == 1
    error_message = "control_plane_desired_capacity must be an odd number >= 1 (etcd quorum)."
  }
}

variable "control_plane_min_size" {
  description = "Minimum size of the control-plane Auto Scaling group."
  type        = number
  default     = 3

  validation {
    condition     = var.control_plane_min_size >= 1
    error_message = "control_plane_min_size must be at least 1."
  }
}

variable "control_plane_max_size" {
  description = "Maximum size of the control-plane Auto Scaling group (room above desired lets an instance refresh add a replacement before removing a member)."
  type        = number
  default     = 5

  validation {
    condition     = var.control_plane_max_size >= 1
    error_message = "control_plane_max_size must be at least 1."
  }
}

variable "worker_desired_capacity" {
  description = "Number of workers."
  type        = number
  default     = 3

  validation {
    condition     = var.worker_desired_capacity >= 1
    error_message = "worker_desired_capacity must be at least 1."
  }
}

variable "worker_min_size" {
  description = "Minimum size of the worker Auto Scaling group."
  type        = number
  default     = 1

  validation {
    condition     = var.worker_min_size >= 1
    error_message = "worker_min_size must be at least 1."
  }
}

variable "worker_max_size" {
  description = "Maximum size of the worker Auto Scaling group."
  type        = number
  default     = 10

  validation {
    condition     = var.worker_max_size >= 1
    error_message = "worker_max_size must be at least 1."
  }
}

variable "health_check_grace_period" {
  description = "Seconds an instance is InService before the Auto Scaling group checks its health."
  type        = number
  default     = 300

  validation {
    condition     = var.health_check_grace_period >= 0
    error_message = "health_check_grace_period must not be negative."
  }
}

variable "instance_warmup" {
  description = "Seconds Auto Scaling waits after an instance is InService before counting it in its metrics (the groups' default instance warmup; a rollout's refreshes use rollout.instance_warmup_seconds)."
  type        = number
  default     = 300

  validation {
    condition     = var.instance_warmup >= 0
    error_message = "instance_warmup must not be negative."
  }
}

variable "tags" {
  description = "Tags added to every resource (and propagated to instances). The kcluster:* tags are set by the module and cannot be overridden."
  type        = map(string)
  default     = {}
}

################################################################################
# etcd backups (backup.tf)
################################################################################

variable "backup_frequent_retention_days" {
  description = "Days the frequent (scheduled) etcd backups under frequent/ are kept in the backup bucket."
  type        = number
  default     = 7

  validation {
    condition     = var.backup_frequent_retention_days >= 1 && var.backup_frequent_retention_days <= 90 && floor(var.backup_frequent_retention_days) == var.backup_frequent_retention_days
    error_message = "backup_frequent_retention_days must be a whole number of days from 1 to 90 (keep older copies as daily ones)."
  }
}

variable "backup_daily_retention_days" {
  description = "Days the daily etcd backups under daily/ are kept in the backup bucket."
  type        = number
  default     = 365

  validation {
    condition     = var.backup_daily_retention_days >= 7 && var.backup_daily_retention_days <= 3650 && floor(var.backup_daily_retention_days) == var.backup_daily_retention_days
    error_message = "backup_daily_retention_days must be a whole number of days from 7 to 3650."
  }
}

variable "backup_noncurrent_version_days" {
  description = "Days an overwritten or deleted backup object stays recoverable as a noncurrent version of the versioned backup bucket."
  type        = number
  default     = 7

  validation {
    condition     = var.backup_noncurrent_version_days >= 1 && var.backup_noncurrent_version_days <= 365 && floor(var.backup_noncurrent_version_days) == var.backup_noncurrent_version_days
    error_message = "backup_noncurrent_version_days must be a whole number of days from 1 to 365."
  }
}

variable "backup" {
  description = "When the control loop takes etcd backups (see kcluster.config.BackupSettings), in seconds: every interval_seconds (default 15 minutes) and before every control-plane membership change, which waits for it at most membership_wait_seconds; a failed backup is retried after retry_seconds. Omitted attributes keep their defaults."
  type = object({
    interval_seconds        = optional(number, 900)
    retry_seconds           = optional(number, 120)
    membership_wait_seconds = optional(number, 600)
  })
  default = {}

  validation {
    condition = (
      var.backup.interval_seconds >= 300 && var.backup.interval_seconds <= 86400 &&
      var.backup.retry_seconds >= 60 && var.backup.retry_seconds <= 3600 &&
      var.backup.membership_wait_seconds >= 0 && var.backup.membership_wait_seconds <= 3600
    )
    error_message = "backup: interval_seconds from 300 to 86400, retry_seconds from 60 to 3600, membership_wait_seconds from 0 to 3600."
  }
}

variable "rollout" {
  description = "How the control loop rolls nodes to a new Kubernetes version or launch template (see kcluster.config.RolloutSettings and docs/upgrades.md): worker groups keep min_healthy_percent of their capacity in service and may surge to worker_max_healthy_percent; a new instance counts after instance_warmup_seconds; with wait_for_go each rollout waits until go names its target (the key `kcluster status` shows); paused holds a running rollout where it is. Omitted attributes keep their defaults."
  type = object({
    min_healthy_percent        = optional(number, 90)
    worker_max_healthy_percent = optional(number, 110)
    instance_warmup_seconds    = optional(number, 60)
    wait_for_go                = optional(bool, false)
    go                         = optional(string)
    paused                     = optional(bool, false)
  })
  default = {}

  validation {
    condition = (
      var.rollout.min_healthy_percent >= 0 && var.rollout.min_healthy_percent <= 100 &&
      var.rollout.worker_max_healthy_percent >= 100 && var.rollout.worker_max_healthy_percent <= 200 &&
      var.rollout.instance_warmup_seconds >= 0 && var.rollout.instance_warmup_seconds <= 3600 &&
      (var.rollout.go == null ? true : length(var.rollout.go) <= 512)
    )
    error_message = "rollout: min_healthy_percent from 0 to 100, worker_max_healthy_percent from 100 to 200, instance_warmup_seconds from 0 to 3600, go at most 512 characters."
  }
}
