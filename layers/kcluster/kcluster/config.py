"""The cluster configuration: one JSON SSM parameter, /kcluster/<name>/config, written by Terraform.

The functions read it through Powertools Parameters (cached); this module only models and validates
it, so the pure core can take it as a value.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kcluster import contract

_NAME_PATTERN = r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CniConfig(_Strict):
    name: Literal["calico"] = "calico"
    version: str = Field(default="v3.33.0", pattern=r"^v[0-9]+\.[0-9]+\.[0-9]+$")
    manifest_url: str = Field(
        default="https://raw.githubusercontent.com/projectcalico/calico/v3.33.0/manifests/calico.yaml",
        pattern=r"^https://[A-Za-z0-9./_-]{1,400}\.ya?ml$",
    )
    # Where the nodes pull Calico's images: quay.io/calico (Calico's own, not Docker Hub's anonymous
    # rate limit) or a mirror; the init document rewrites the manifest's docker.io/calico/ to it.
    image_registry: str = Field(
        default="quay.io/calico", pattern=r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9._-]+)*$"
    )


class NodeGroup(_Strict):
    asg_name: str = Field(min_length=1, max_length=255)
    role: Literal["control-plane", "worker"]
    # The numbered launch template version the group's instances should run (Terraform writes it with
    # the group; never $Latest). None: the group's image is not rolled out by kcluster.
    launch_template_version: int | None = Field(default=None, ge=1)


class Timeouts(_Strict):
    """Seconds. Each command timeout bounds one SSM invocation; lifecycle hooks are heartbeated meanwhile."""

    provision_seconds: int = Field(default=900, ge=60)
    init_seconds: int = Field(default=900, ge=60)
    join_seconds: int = Field(default=600, ge=60)
    refresh_seconds: int = Field(default=120, ge=30)
    drain_seconds: int = Field(default=300, ge=30)
    # The control-plane join/removal lease expires if its holder vanishes.
    lease_seconds: int = Field(default=1200, ge=120)
    # Send a lifecycle heartbeat when the last one is older than this (hook timeout is larger).
    heartbeat_interval_seconds: int = Field(default=300, ge=30)
    # A control plane whose etcd member cannot be removed without losing quorum (another member is
    # unhealthy) is held, heartbeating its terminate action, at most this long before it is let go.
    quorum_wait_seconds: int = Field(default=1800, ge=0)


class Documents(_Strict):
    init: str
    join_control_plane: str
    join_worker: str
    refresh_join: str
    drain_remove: str | None = None
    health: str | None = None
    backup: str | None = None
    restore: str | None = None

    def by_key(self, key: str) -> str:
        name: str | None = getattr(self, key.replace("-", "_"))
        if not name:
            raise KeyError(f"document {key!r} is not configured")
        return name


class BackupSettings(_Strict):
    """etcd backups (core/backup.py). Seconds."""

    # A backup when the newest good one is older than this.
    interval_seconds: int = Field(default=900, ge=300, le=86400)
    # A failed backup is tried again after this long.
    retry_seconds: int = Field(default=120, ge=60, le=3600)
    # A control-plane join or removal waits at most this long for its backup, then goes ahead (a
    # backup must never stop the cluster healing).
    membership_wait_seconds: int = Field(default=600, ge=0, le=3600)


class LifecycleHooks(_Strict):
    launch: str = "kcluster-launch"
    terminate: str = "kcluster-terminate"


class RolloutSettings(_Strict):
    """How a rollout (core/rollout.py) proceeds: worker groups keep `min_healthy_percent` of their
    capacity in service; `wait_for_go` holds each rollout until `go` names its target; `paused` holds a
    running one where it is (resumed when set back to false)."""

    min_healthy_percent: int = Field(default=90, ge=0, le=100)
    # Launch before terminate: a worker group may surge to this share (at least one instance more).
    worker_max_healthy_percent: int = Field(default=110, ge=100, le=200)
    instance_warmup_seconds: int = Field(default=60, ge=0, le=3600)
    wait_for_go: bool = False
    go: str | None = Field(default=None, max_length=512)
    paused: bool = False


class ClusterConfig(_Strict):
    cluster_name: str = Field(pattern=_NAME_PATTERN)
    kubernetes_version: str = Field(default="1.37.2", pattern=r"^1\.[0-9]{2}\.[0-9]{1,2}$")
    pod_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/12"
    control_plane_endpoint: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}:[0-9]{2,5}$")
    cni: CniConfig = CniConfig()
    node_groups: tuple[NodeGroup, ...] = Field(min_length=1)
    documents: Documents
    timeouts: Timeouts = Timeouts()
    lifecycle_hooks: LifecycleHooks = LifecycleHooks()
    join_token_ttl: str = Field(default="15m", pattern=r"^[1-9][0-9]{0,3}[mh]$")
    max_attempts: int = Field(default=3, ge=1, le=10)
    # The control-plane NLB's target group: init's node is registered with it before init (the endpoint
    # must reach it), and the remediator asks it which API servers fail their checks.
    api_target_group_arn: str | None = Field(
        default=None, pattern=r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:[0-9]{12}:targetgroup/.+$"
    )
    worker_batch_size: int = Field(default=contract.MAX_INSTANCES_PER_COMMAND, ge=1, le=50)
    # The KMS key the nodes encrypt their SecureString parameters with (`--key-id`); written by Terraform.
    kms_key_arn: str | None = None
    # The S3 bucket Ansible's Session Manager connection moves files through (the operator's inventory).
    ssm_transfer_bucket: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    # The S3 bucket the backup document uploads etcd snapshots and the PKI to (Terraform's backup.tf).
    backup_bucket: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    backup: BackupSettings = BackupSettings()
    rollout: RolloutSettings = RolloutSettings()

    @field_validator("pod_cidr", "service_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        import ipaddress

        ipaddress.ip_network(value, strict=True)
        return value

    @model_validator(mode="after")
    def _one_control_plane_group(self) -> ClusterConfig:
        roles = [group.role for group in self.node_groups]
        if roles.count("control-plane") != 1:
            raise ValueError("exactly one node group must have role control-plane")
        return self

    def role_of(self, asg_name: str) -> str | None:
        """The role of an ASG of this cluster, or None when the ASG is not ours."""
        for group in self.node_groups:
            if group.asg_name == asg_name:
                return group.role
        return None

    @property
    def join_token_ttl_seconds(self) -> int:
        amount, unit = int(self.join_token_ttl[:-1]), self.join_token_ttl[-1]
        return amount * (60 if unit == "m" else 3600)
