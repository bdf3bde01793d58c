"""The Twin: one local world in which kcluster's real product code runs.

It starts moto in-process, freezes time on a virtual clock, installs the emulations of what moto lacks
(lifecycle hooks, Run Command), deploys what Terraform planned (twin/terraform/deployment.py) and what
template.yaml declares (twin/aws/cfn.py), and lets the EventBridge bus, the SQS event source mapping
and the schedule drive the functions from their Handler strings. Nothing here is imported by the
product code.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws
from moto.autoscaling.models import FakeAutoScalingGroup, autoscaling_backends
from moto.moto_api._internal import mock_random

from kcluster import contract
from twin import recorder
from twin.account import ACCOUNT_ID, REGION
from twin.aws import (
    alarms,
    cfn,
    concurrency,
    fast_responses,
    fast_transactions,
    lifecycle,
    runcommand,
    targets,
)
from twin.aws.eventbus import EventBus, EventBusContext
from twin.aws.functions import FunctionRuntime, FunctionRuntimeContext, queue_depth
from twin.aws.instance_refresh import InstanceRefreshEmulation
from twin.aws.instance_refresh import install as install_instance_refresh
from twin.clock import Scheduler, VirtualClock
from twin.iam import authorization
from twin.latency import LatencyModel
from twin.node.boot import BootContext, InstanceBoot
from twin.node.fleet import NodeFleet
from twin.node.model import KubeModel
from twin.ports import EventPublisher, Late, NodeAuthorizer
from twin.terraform.deployment import deploy_module
from twin.ticker import Ticker

REPO = Path(__file__).resolve().parents[1]
# Credentials moto accepts; nothing leaves the process.
_ENVIRONMENT = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "MOTO_ALLOW_NONEXISTENT_REGION": "false",
    # moto's catalogue of ~4,700 public AMIs costs seconds per twin; the twin publishes the one image
    # the nodes use (twin/terraform/network.py), as AWS and Canonical do.
    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
}


class Twin:
    def __init__(
        self,
        *,
        seed: int = 7,
        cluster: str = "demo",
        template: Path | None = None,
        workdir: Path | None = None,
    ) -> None:
        self.seed = seed
        self.cluster = cluster
        self._saved_environment = {key: os.environ.get(key) for key in _ENVIRONMENT}
        os.environ.update(_ENVIRONMENT)
        self._mock = mock_aws()
        self._mock.start()
        self._undo: list[Callable[[], None]] = []
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="kcluster-twin-"))
        # moto draws resource ids and uuids from its own generator: seed it (and the global one) so a
        # seed replays the same ids.
        random.seed(seed)
        mock_random.seed(seed)
        streams = random.Random(seed)
        self.rng = random.Random(streams.random())
        self.clock = VirtualClock()
        self.start_time = self.clock.now()
        self.settled_at: float | None = None
        self.scheduler = Scheduler(self.clock)
        # Called after every step of the world (e.g. to sample etcd quorum).
        self.watchers: list[Callable[[Twin], None]] = []
        self.latency = LatencyModel(random.Random(streams.random()))
        self.recorder = recorder.Recorder(self.clock.now)
        self.recorder.counts_call = concurrency.in_invocation
        self._undo.append(recorder.install(self.recorder))
        self._undo.append(fast_responses.install())
        self._undo.append(fast_transactions.install())
        self.model = KubeModel(self.clock.now, random.Random(streams.random()))
        # The bus and IAM are built from the deployment, which needs Auto Scaling's and Run Command's
        # emulations in place first: those reach the bus and IAM through references connected once built.
        events: Late[EventPublisher] = Late("the event bus")
        node_roles: Late[NodeAuthorizer] = Late("IAM enforcement")
        self._build_instances(events, node_roles)
        self._deploy(cluster, template)
        self._build_serverless()
        node_roles.connect(self.iam)
        events.connect(self.bus)
        self.bus.schedule_rules()
        self._build_ticked(seed)
        # From here on, the product's AWS calls are counted; the twin pauses counting for its own.
        self.recorder.recording = True

    # --- wiring, in the order the world needs it --------------------------------------------------

    def _build_instances(self, events: Late[EventPublisher], node_roles: Late[NodeAuthorizer]) -> None:
        """What runs instances: the node fleet and its boot, Run Command, Auto Scaling."""
        self.fleet = NodeFleet(
            self.workdir, self.model, lambda region: boto3.client("ssm", region_name=region), self.clock.now
        )
        self.runcommand = runcommand.RunCommandEmulation(
            runcommand.RunCommandContext(
                self.clock, self.scheduler, self.rng, self.latency, self.recorder, self.fleet, events
            )
        )
        self._undo.append(runcommand.install(self.runcommand))
        self.boot = InstanceBoot(
            BootContext(
                self.clock,
                self.scheduler,
                self.latency,
                self.recorder,
                sandboxes=self.fleet,
                events=events,
                agents=self.runcommand,
                node_roles=node_roles,
            )
        )
        self.lifecycle = lifecycle.LifecycleEmulation(
            lifecycle.AutoScalingContext(
                self.clock, self.scheduler, self.rng, self.latency, self.recorder, events, hosts=self.boot
            )
        )
        self._undo.append(lifecycle.install(self.lifecycle))
        # Instance refresh on top of the lifecycle emulation (moto has none).
        self.instance_refresh = InstanceRefreshEmulation(self.lifecycle)
        self._undo.append(install_instance_refresh(self.instance_refresh))

    def _deploy(self, cluster: str, template: Path | None) -> None:
        """What `terraform apply` creates, then `sam deploy` of template.yaml with its outputs."""
        self.deployment = deploy_module(cluster)
        # moto draws ids from one generator: reseeded after the deploy (apart from the first seeding, so no
        # id repeats), a seed replays the same instance ids whatever resources the module holds.
        mock_random.seed(f"{self.seed}/deployed")
        # `sam deploy --parameter-overrides`, with the Terraform outputs the README tells users to pass.
        parameters = {
            "ClusterName": cluster,
            "ApiTargetGroupArnSuffix": targets.target_group_dimension(self.deployment.target_group_arn),
            "ApiLoadBalancerArnSuffix": targets.load_balancer_dimension(self.deployment.load_balancer_arn),
        }
        translated = cfn.load_template(template or REPO / "template.yaml", parameters)
        self.stack = cfn.deploy_template(translated, f"kcluster-{cluster}", rng=self.rng)

    def _build_serverless(self) -> None:
        """IAM enforcement, the Lambda runtime and the event bus, from the deployed stack."""
        # From here on every call is authorized as AWS would authorize it, with each caller's own
        # credentials: each function's execution role, each node's instance profile (twin/iam/).
        self.iam = authorization.enforce_for(self)
        self._undo.append(self.iam.undo)
        self.functions = FunctionRuntime(
            FunctionRuntimeContext(self.scheduler, self.rng, self.recorder, self.latency, self.iam),
            self.stack,
        )
        self.bus = EventBus(
            EventBusContext(self.scheduler, self.rng, self.recorder, self.latency, self.functions, self.iam),
            self.stack,
        )

    def _build_ticked(self, seed: int) -> None:
        """What AWS does on its own clock (NLB health checks, alarm evaluation) runs on the ticker as
        virtual time passes, never as scheduler calls: it adds no steps to the world (twin/ticker.py)."""
        self.ticker = Ticker(self.clock, self.scheduler)
        self._undo.append(self.ticker.install())
        self.targets = targets.TargetHealthEmulation(
            targets.TargetHealthContext(self.clock, self.recorder, apiservers=self.model)
        )
        self.targets.watch(self.deployment.target_group_arn, self.targets.api_probe)
        # The NLB carries the API traffic: kubeadm, kubectl and joins reach the API only through it.
        self.targets.serve(self.deployment.load_balancer_dns, self.deployment.target_group_arn)
        self.model.route_endpoint_through(self.targets)
        self._undo.append(targets.install(self.targets))
        self.alarms = alarms.AlarmEvaluator(
            alarms.AlarmContext(self.clock, self.scheduler, self.recorder, seed, bus=self.bus, iam=self.iam)
        )
        self._undo.append(alarms.install())
        self.ticker.add(self.targets)
        self.ticker.add(self.alarms)

    # --- what an operator does ---------------------------------------------------------------

    @property
    def control_plane_asg(self) -> str:
        return next(name for name, role in self.deployment.node_groups if role == contract.ROLE_CONTROL_PLANE)

    @property
    def worker_asg(self) -> str:
        return next(name for name, role in self.deployment.node_groups if role == contract.ROLE_WORKER)

    def set_desired(self, role: str, desired: int) -> None:
        group = self.control_plane_asg if role == contract.ROLE_CONTROL_PLANE else self.worker_asg
        self.recorder.note("operator", f"set desired capacity of {group} to {desired}")
        with self.operator():
            self.operator_client("autoscaling").update_auto_scaling_group(
                AutoScalingGroupName=group, MinSize=0, MaxSize=max(desired, 10), DesiredCapacity=desired
            )

    def terminate(self, instance_id: str, *, decrement: bool = False) -> None:
        self.recorder.note("operator", f"terminate {instance_id} (decrement desired: {decrement})")
        with self.operator():
            self.operator_client("autoscaling").terminate_instance_in_auto_scaling_group(
                InstanceId=instance_id, ShouldDecrementDesiredCapacity=decrement
            )

    def operator(self) -> contextlib.AbstractContextManager[None]:
        """Calls the twin makes as the operator or for its own bookkeeping are not the product's."""
        return self.recorder.paused()

    def operator_session(self) -> boto3.Session:
        """The operator's own credentials (an administrator, authorized like anyone else)."""
        return boto3.Session(
            region_name=REGION,
            aws_access_key_id=self.iam.operator_key,
            aws_secret_access_key="twin-operator",  # noqa: S106 - moto checks no secret
            aws_session_token="twin-operator",  # noqa: S106
        )

    def operator_client(self, service: str) -> Any:
        return self.operator_session().client(service)

    # --- running -----------------------------------------------------------------------------

    def run_until_settled(self, limit_seconds: float = 4 * 3600, quiet_seconds: float = 120.0) -> bool:
        """Run the world until it has been settled for `quiet_seconds` (or the limit passes)."""
        deadline = self.clock.now() + limit_seconds
        settled_since: float | None = None
        while self.clock.now() < deadline:
            if not self.scheduler.run_next():
                break
            for watch in self.watchers:
                watch(self)
            if self.settled():
                settled_since = settled_since if settled_since is not None else self.clock.now()
                if self.clock.now() - settled_since >= quiet_seconds:
                    self.settled_at = settled_since
                    return True
            else:
                settled_since = None
        return self.settled()

    def settled(self) -> bool:
        """No lifecycle action pending, every group at its desired size and InService, no command
        running (the read-only `health` probe aside: it runs every minute, for ever), no event waiting
        in the queue."""
        if self.lifecycle.pending_actions():
            return False
        for group in self.groups():
            states = [s.lifecycle_state for s in group.instance_states]
            if len(states) != (group.desired_capacity or 0) or any(s != "InService" for s in states):
                return False
        if any(
            not inv.terminal
            for cmd in self.runcommand.commands.values()
            if cmd.key != contract.DOC_HEALTH
            for inv in cmd.invocations.values()
        ):
            return False
        return self.queue_depth(ignore=_is_health_probe_event) == 0

    def groups(self) -> list[FakeAutoScalingGroup]:
        backend = autoscaling_backends[ACCOUNT_ID][REGION]
        return [
            backend.autoscaling_groups[name]
            for name, _ in self.deployment.node_groups
            if name in backend.autoscaling_groups
        ]

    def instances(self) -> list[dict[str, str]]:
        """Instances in our groups now: id, group, role, lifecycle state."""
        found = []
        for group in self.groups():
            role = dict(self.deployment.node_groups)[group.name]
            for state in group.instance_states:
                found.append(
                    {
                        "instance_id": state.instance.id,
                        "asg_name": group.name,
                        "role": role,
                        "lifecycle_state": state.lifecycle_state,
                    }
                )
        return sorted(found, key=lambda i: (i["role"] != contract.ROLE_CONTROL_PLANE, i["instance_id"]))

    def queue_depth(self, ignore: Callable[[str], bool] | None = None) -> int:
        """Messages in the stack's queues (dead-letter queues aside), in flight and delayed included."""
        return sum(
            queue_depth(resource.physical_id, ignore=ignore)
            for resource in self.stack.resources.values()
            if resource.type == "AWS::SQS::Queue" and "DeadLetter" not in resource.logical_id
        )

    def state_items(self) -> list[dict]:
        with self.operator():
            table = self.stack.physical_id("StateTable")
            return boto3.client("dynamodb").scan(TableName=table)["Items"]

    def on_close(self, undo: Callable[[], None]) -> None:
        """Run `undo` when the twin closes, before what was installed earlier is undone."""
        self._undo.append(undo)

    def close(self) -> None:
        self.fleet.close()
        for undo in reversed(self._undo):
            undo()
        self._mock.stop()
        self.clock.close()
        for key, value in self._saved_environment.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Twin:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _is_health_probe_event(body: str) -> bool:
    """A queued status event of the read-only health probe: monitoring, not work still to do."""
    if f"-{contract.DOC_HEALTH}" not in body:
        return False
    try:
        detail = json.loads(body).get("detail") or {}
    except ValueError:
        return False
    return str(detail.get("document-name", "")).endswith(f"-{contract.DOC_HEALTH}")
