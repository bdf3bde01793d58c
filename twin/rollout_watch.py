"""The rollout invariants, judged from the world (Auto Scaling's emulation and the Kubernetes model),
never from what the product believes:

- `min_healthy_respected`: while an instance refresh of a worker group runs, that group's InService
  instances never fall below its MinHealthyPercentage of the desired capacity (AWS rounds the share
  up), sampled after every step;
- `all_at_target`: at the end, every instance of every group was launched from the launch template
  version the cluster config names for its group, and every node runs the config's Kubernetes version.

And `publish_launch_template`: what `terraform apply` does after a change to the node image.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kcluster import contract
from twin.report import Invariant

if TYPE_CHECKING:
    from twin.world import Twin

REFRESH_RUNNING = ("Pending", "InProgress", "Cancelling")


@dataclass
class MinHealthyWatch:
    """Samples every worker group under refresh after every step; keeps the first moments it was short."""

    short: list[tuple[float, str]] = field(default_factory=list)
    samples: int = 0  # steps at which a worker refresh ran

    def sample(self, twin: Twin) -> None:
        running = {r.group_name: r for r in twin.instance_refresh.refreshes if r.status in REFRESH_RUNNING}
        for group in twin.groups():
            refresh = running.get(group.name)
            if refresh is None or group.name == twin.control_plane_asg:
                continue
            self.samples += 1
            floor = math.ceil((group.desired_capacity or 0) * refresh.preferences.min_healthy / 100)
            in_service = sum(1 for s in group.instance_states if s.lifecycle_state == "InService")
            if in_service < floor and len(self.short) < 20:
                at = twin.clock.now() - twin.start_time
                self.short.append((at, f"{group.name}: {in_service} InService, at least {floor} kept"))

    def invariant(self) -> Invariant:
        if self.short:
            at, what = self.short[0]
            return Invariant(False, f"below the minimum healthy share at virtual t={at:.0f}s: {what}")
        return Invariant(True, f"worker groups kept their share InService at each of {self.samples} steps")


def cluster_config(twin: Twin) -> dict[str, Any]:
    with twin.operator():
        value = twin.operator_client("ssm").get_parameter(
            Name=contract.config_parameter_name(twin.cluster), WithDecryption=True
        )["Parameter"]["Value"]
    config: dict[str, Any] = json.loads(value)
    return config


def all_at_target(twin: Twin) -> Invariant:
    config = cluster_config(twin)
    wanted = {g["asg_name"]: g.get("launch_template_version") for g in config["node_groups"]}
    off = [
        f"{state.instance.id} from version {getattr(state, 'launched_template_version', None)}"
        for group in twin.groups()
        for state in group.instance_states
        if wanted.get(group.name) is not None
        and getattr(state, "launched_template_version", None) != str(wanted[group.name])
    ]
    kubernetes = config["kubernetes_version"]
    off += [
        f"{c.instance_id} runs kubelet {c.kubelet}"
        for c in twin.model.component_versions()
        if c.kubelet.lstrip("v") != kubernetes
    ]
    if off:
        return Invariant(False, f"not at the target: {'; '.join(off[:5])}")
    versions = ", ".join(f"{name}@{version}" for name, version in sorted(wanted.items()))
    return Invariant(True, f"every instance runs {kubernetes} from {versions}")


def publish_launch_template(twin: Twin, image_id: str) -> dict[str, int]:
    """A new node image, published as `terraform apply` does it: a new numbered version of each
    group's launch template, each group set to that number (never $Latest), and the cluster config
    parameter rewritten with the new launch_template_version. Returns group -> the new version."""
    published: dict[str, int] = {}
    with twin.operator():
        ec2, autoscaling = twin.operator_client("ec2"), twin.operator_client("autoscaling")
        for group in twin.groups():
            template = group.ec2_launch_template
            if template is None:
                raise ValueError(f"group {group.name} has no launch template to publish a version of")
            template_id = template.id
            version = ec2.create_launch_template_version(
                LaunchTemplateId=template_id,
                SourceVersion=str(template.latest_version_number),
                LaunchTemplateData={"ImageId": image_id},
            )["LaunchTemplateVersion"]["VersionNumber"]
            autoscaling.update_auto_scaling_group(
                AutoScalingGroupName=group.name,
                LaunchTemplate={"LaunchTemplateId": template_id, "Version": str(version)},
            )
            published[group.name] = int(version)
    config = cluster_config(twin)
    for group_config in config["node_groups"]:
        group_config["launch_template_version"] = published[group_config["asg_name"]]
    with twin.operator():
        ssm = twin.operator_client("ssm")
        name = contract.config_parameter_name(twin.cluster)
        current = ssm.get_parameter(Name=name)["Parameter"]
        ssm.put_parameter(Name=name, Value=json.dumps(config), Type=current["Type"], Overwrite=True)
    twin.recorder.note("operator", f"terraform apply: node image {image_id}, launch templates {published}")
    return published
