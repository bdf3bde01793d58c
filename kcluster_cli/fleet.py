"""The cluster's instances as Auto Scaling and EC2 see them: which group, which lifecycle state, which
addresses. Read-only; two paginated calls per group plus one DescribeInstances per 100 instances."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kcluster_cli.aws import Cluster, aws_errors, paginate

_DESCRIBE_CHUNK = 100


@dataclass(frozen=True)
class GroupView:
    asg_name: str
    role: str
    min_size: int
    desired: int
    max_size: int
    instances: tuple[InstanceView, ...]


@dataclass(frozen=True)
class InstanceView:
    instance_id: str
    asg_name: str
    role: str
    lifecycle_state: str  # Auto Scaling's: Pending:Wait, InService, Terminating:Wait, ...
    health_status: str
    state: str = "unknown"  # EC2's: running, stopped, ...
    private_ip: str | None = None
    private_dns: str | None = None
    availability_zone: str | None = None
    launch_time: Any = None

    @property
    def host_name(self) -> str:
        """The short private DNS name: what the node's hostname, its Node name and the seed's
        inventory all call it (ip-10-0-1-23); the instance id when EC2 gave no name."""
        if self.private_dns:
            return self.private_dns.split(".", 1)[0]
        return self.instance_id


def node_groups(cluster: Cluster) -> tuple[GroupView, ...]:
    autoscaling = cluster.client("autoscaling")
    names = [group.asg_name for group in cluster.config.node_groups]
    with aws_errors("describing the cluster's Auto Scaling groups"):
        found = {
            group["AutoScalingGroupName"]: group
            for group in paginate(
                autoscaling, "describe_auto_scaling_groups", "AutoScalingGroups", AutoScalingGroupNames=names
            )
        }
    details = _instance_details(cluster, [i["InstanceId"] for g in found.values() for i in g["Instances"]])
    groups = []
    for group in cluster.config.node_groups:
        asg = found.get(group.asg_name)
        if asg is None:
            continue
        instances = tuple(
            InstanceView(
                instance_id=member["InstanceId"],
                asg_name=group.asg_name,
                role=group.role,
                lifecycle_state=member["LifecycleState"],
                health_status=member.get("HealthStatus", ""),
                **details.get(member["InstanceId"], {}),
            )
            for member in sorted(asg["Instances"], key=lambda member: member["InstanceId"])
        )
        groups.append(
            GroupView(
                asg_name=group.asg_name,
                role=group.role,
                min_size=asg["MinSize"],
                desired=asg["DesiredCapacity"],
                max_size=asg["MaxSize"],
                instances=instances,
            )
        )
    return tuple(groups)


def _instance_details(cluster: Cluster, instance_ids: list[str]) -> dict[str, dict[str, Any]]:
    ec2 = cluster.client("ec2")
    details: dict[str, dict[str, Any]] = {}
    for start in range(0, len(instance_ids), _DESCRIBE_CHUNK):
        chunk = instance_ids[start : start + _DESCRIBE_CHUNK]
        # A filter, not InstanceIds: an instance terminated a moment ago must not fail the whole call.
        with aws_errors("describing the cluster's instances"):
            reservations = paginate(
                ec2,
                "describe_instances",
                "Reservations",
                Filters=[{"Name": "instance-id", "Values": chunk}],
            )
            for reservation in reservations:
                for instance in reservation["Instances"]:
                    details[instance["InstanceId"]] = {
                        "state": instance["State"]["Name"],
                        "private_ip": instance.get("PrivateIpAddress"),
                        "private_dns": instance.get("PrivateDnsName") or None,
                        "availability_zone": instance.get("Placement", {}).get("AvailabilityZone"),
                        "launch_time": instance.get("LaunchTime"),
                    }
    return details
