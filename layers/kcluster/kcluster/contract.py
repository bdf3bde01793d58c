"""Names shared by Terraform, the SAM application, the node scripts and the local twin.

Everything is found by these tags and paths, never by hard-coded resource names.
"""

from __future__ import annotations

TAG_CLUSTER = "kcluster:cluster"
TAG_ROLE = "kcluster:role"

ROLE_CONTROL_PLANE = "control-plane"
ROLE_WORKER = "worker"
ROLES = (ROLE_CONTROL_PLANE, ROLE_WORKER)

# SSM Command documents, by key; the deployed name is "kcluster-<cluster>-<key>".
DOC_INIT = "init"
DOC_JOIN_CONTROL_PLANE = "join-control-plane"
DOC_JOIN_WORKER = "join-worker"
DOC_REFRESH_JOIN = "refresh-join"
DOC_DRAIN_REMOVE = "drain-remove"
DOC_HEALTH = "health"
DOC_BACKUP = "backup"
DOCUMENT_KEYS = (
    DOC_INIT,
    DOC_JOIN_CONTROL_PLANE,
    DOC_JOIN_WORKER,
    DOC_REFRESH_JOIN,
    DOC_DRAIN_REMOVE,
    DOC_HEALTH,
    DOC_BACKUP,
)

# The remediation alarms template.yaml creates, by key; the name is "kcluster-<cluster>-remediate-<key>".
# The remediator acts on exactly these names, never on a prefix another cluster's alarm could share.
ALARM_NODES_NOT_READY = "nodes-not-ready"
ALARM_API_SERVERS_UNHEALTHY = "api-servers-unhealthy"
REMEDIATION_ALARM_KEYS = (ALARM_NODES_NOT_READY, ALARM_API_SERVERS_UNHEALTHY)

# Custom event the node's user data emits when provisioning has finished.
NODE_EVENT_SOURCE = "kcluster.node"
NODE_PROVISIONED_DETAIL_TYPE = "Node Provisioned"
# Marker file user data writes once containerd and kubeadm are installed.
PROVISIONED_MARKER = "/var/lib/kcluster/provisioned"

# Label every Node carries so instance -> Node is unambiguous.
NODE_LABEL_INSTANCE_ID = "kcluster.io/instance-id"

LAUNCH_TRANSITION = "autoscaling:EC2_INSTANCE_LAUNCHING"
TERMINATE_TRANSITION = "autoscaling:EC2_INSTANCE_TERMINATING"
LAUNCH_DETAIL_TYPE = "EC2 Instance-launch Lifecycle Action"
TERMINATE_DETAIL_TYPE = "EC2 Instance-terminate Lifecycle Action"
COMMAND_STATUS_DETAIL_TYPE = "EC2 Command Invocation Status-change Notification"
ALARM_DETAIL_TYPE = "CloudWatch Alarm State Change"

# SendCommand accepts at most this many instance ids (AWS limit).
MAX_INSTANCES_PER_COMMAND = 50


def config_parameter_name(cluster: str) -> str:
    return f"/kcluster/{cluster}/config"


def join_parameter_path(cluster: str) -> str:
    """Nodes write join secrets here; the Lambda role cannot read it."""
    return f"/kcluster/{cluster}/join/"


def admin_kubeconfig_parameter_name(cluster: str) -> str:
    return f"/kcluster/{cluster}/admin/kubeconfig"


def document_name(cluster: str, key: str) -> str:
    return f"kcluster-{cluster}-{key}"


def remediation_alarm_name(cluster: str, key: str) -> str:
    return f"kcluster-{cluster}-remediate-{key}"


def remediation_alarm_names(cluster: str) -> frozenset[str]:
    return frozenset(remediation_alarm_name(cluster, key) for key in REMEDIATION_ALARM_KEYS)


def provider_id(availability_zone: str, instance_id: str) -> str:
    return f"aws:///{availability_zone}/{instance_id}"


def control_loop_parameter_name(cluster: str) -> str:
    """Written by the SAM stack: where its state table and functions are (read by `kcluster status`)."""
    return f"/kcluster/{cluster}/control-loop"
