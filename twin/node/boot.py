"""An EC2 instance's own life once Auto Scaling launched it: boot, SSM agent, user data; and its end.

Auto Scaling (twin/aws/lifecycle.py) only launches and terminates instances; what runs on one is the
node side's: the instance gets its sandbox in the node fleet, its SSM agent registers after a drawn
delay, and its user data finishes later (marker written, `Node Provisioned` put on the bus with the
node's own role), as the real user data does. None of it waits for the lifecycle hooks.

Why the user data Terraform rendered (the launch template's, from the plan) is modelled here rather than
run in the sandbox, and what running it would take:
- paths: terraform/user_data/provision.sh.tftpl writes absolute paths (/etc/..., /tmp, /usr/local,
  /var/lib/kcluster) with no KCLUSTER_ROOT seam like common.sh's; it needs that seam, or a user and
  mount namespace (unshare) over the sandbox;
- stand-ins: it calls apt-get (update, pinned installs), apt-mark, dpkg, snap, modprobe, sysctl,
  swapoff, gpg, containerd and `kubeadm config images list`, which the sandbox offers as stubs that
  fail (twin/node/commands.py); curl would have to serve the containerd release archive, its .sha256sum
  and pkgs.k8s.io's Release.key (the fake serves Calico's manifest only); the fake aws would need
  `events put-events` on the twin's bus with the node role's authorization (done below today);
- a PATH that grows as packages install: the fleet offers the provisioned commands from the start,
  and the node-script fixtures add instances without booting them;
- `_user_data_done` would run the template's user data through fleet.run_script at the drawn time,
  which the fault injector's run_script wrapper would then also hit (the seeds' replays change).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from moto.ec2.models import ec2_backends

from kcluster import contract
from twin.account import ACCOUNT_ID, REGION, instance_arn

if TYPE_CHECKING:
    from moto.ec2.models.instances import Instance

    from twin.clock import Scheduler, VirtualClock
    from twin.latency import LatencyModel
    from twin.ports import EventPublisher, InstanceSandboxes, Late, NodeAuthorizer, SsmAgents
    from twin.recorder import Recorder

# The timeline has always shown an instance's boot beside its Auto Scaling life (`kcluster simulate`).
_TIMELINE_KIND = "asg"
_DEFAULT_BUS_ARN = f"arn:aws:events:{REGION}:{ACCOUNT_ID}:event-bus/default"


@dataclass(frozen=True)
class BootContext:
    """What booting an instance uses."""

    clock: VirtualClock
    scheduler: Scheduler
    latency: LatencyModel  # agent registration and user-data durations
    recorder: Recorder  # timeline notes
    sandboxes: InstanceSandboxes  # the node fleet
    events: Late[EventPublisher]  # the user data's `Node Provisioned`
    agents: SsmAgents | None = None  # Run Command; None: no agent registers (tests of Auto Scaling alone)
    node_roles: Late[NodeAuthorizer] | None = None  # None: IAM not enforced


def ec2_instance_running(instance_id: str) -> bool:
    """EC2's view: the instance exists and runs (a crash or a termination ends a boot in progress)."""
    try:
        return ec2_backends[ACCOUNT_ID][REGION].get_instance(instance_id).state == "running"
    except Exception:  # moto raises its own not-found error for an unknown id
        return False


class InstanceBoot:
    """The node side of every instance Auto Scaling launches (`InstanceHosts` for the lifecycle)."""

    def __init__(self, context: BootContext) -> None:
        self.context = context

    def boot(self, instance: Instance, *, availability_zone: str, tags: dict[str, str]) -> None:
        """The instance starts: a kcluster node (tagged with its cluster and role) gets a sandbox and runs
        the user data; any instance's SSM agent registers."""
        context = self.context
        cluster, role = tags.get(contract.TAG_CLUSTER), tags.get(contract.TAG_ROLE)
        if cluster and role:
            context.sandboxes.add_instance(
                instance.id,
                availability_zone=availability_zone,
                private_ip=instance.private_ip,
                private_dns=instance.private_dns_name,
                region=REGION,
                cluster=cluster,
                role=role,
            )
        # The order of these two draws is part of what a seed replays.
        instance_id = instance.id
        context.scheduler.after(
            context.latency.agent_registration_seconds(),
            f"ssm agent registers on {instance_id}",
            lambda: self._agent_registered(instance_id),
        )
        if cluster and role:
            context.scheduler.after(
                context.latency.provisioning_seconds(),
                f"user data done on {instance_id}",
                lambda: self._user_data_done(instance_id, cluster, role),
            )

    def gone(self, instance_id: str) -> None:
        """The instance is terminated (or crashed): its kubelet and etcd member stop answering, its agent
        loses its connection and the commands it was running fail."""
        self.context.sandboxes.remove_instance(instance_id)
        if self.context.agents is not None:
            self.context.agents.instance_gone(instance_id)

    def _agent_registered(self, instance_id: str) -> None:
        if self.context.agents is not None and ec2_instance_running(instance_id):
            self.context.agents.register_agent(instance_id)

    def _user_data_done(self, instance_id: str, cluster: str, role: str) -> None:
        if not ec2_instance_running(instance_id):
            return
        context = self.context
        context.sandboxes.mark_provisioned(instance_id)
        context.recorder.note(_TIMELINE_KIND, f"{instance_id} provisioned (user data done)")
        if not self._node_may_put_event(role):
            return  # user data logs it and goes on: the reconciler finds the marker
        detail = {"cluster": cluster, "instance-id": instance_id, "role": role}
        context.events.get().put_events(
            [
                {
                    "Source": contract.NODE_EVENT_SOURCE,
                    "DetailType": contract.NODE_PROVISIONED_DETAIL_TYPE,
                    "Detail": json.dumps(detail),
                    "Resources": [instance_arn(instance_id)],
                    "Time": context.clock.now_datetime(),
                }
            ]
        )

    def _node_may_put_event(self, role: str) -> bool:
        """The user data's `aws events put-events`, with the node's own role (the twin's bus is not moto's,
        so the call is authorized here rather than by the botocore hook)."""
        if self.context.node_roles is None:
            return True
        request_context = {
            "events:source": [contract.NODE_EVENT_SOURCE],
            "events:detail-type": [contract.NODE_PROVISIONED_DETAIL_TYPE],
        }
        denial = self.context.node_roles.get().authorize_node(
            role, "events:PutEvents", _DEFAULT_BUS_ARN, request_context
        )
        return denial is None
