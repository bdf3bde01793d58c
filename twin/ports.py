"""What the twin's components need from each other, each need a small Protocol.

A component gets a frozen context at construction (e.g. `lifecycle.AutoScalingContext`) whose fields are
the world's services it uses (clock, scheduler, seeded generator, latency model, recorder) and the peers
it calls, typed by these Protocols: a reader sees what each component depends on, and a test passes a
fake for exactly that need. `Twin` (twin/world.py) builds the contexts.

Most peers exist before the components that call them. The event bus and the IAM enforcement do not:
they are built from the deployment, and the deployment needs Auto Scaling's emulation (the hooks of
CreateAutoScalingGroup) and Run Command's already in place. Those two reach their callers through a
`Late` reference that the Twin connects once they exist; nothing calls them before (no instance is
launched during the deploy).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from moto.ec2.models.instances import Instance

    from twin.iam.enforce import Denial
    from twin.node.fleet import ScriptResult

T = TypeVar("T")


class Late(Generic[T]):
    """A peer built after the component that calls it; connected once by the Twin."""

    def __init__(self, what: str, value: T | None = None) -> None:
        self.what = what
        self._value = value

    def connect(self, value: T) -> None:
        if self._value is not None:
            raise RuntimeError(f"{self.what} is connected already")
        self._value = value

    def get(self) -> T:
        if self._value is None:
            raise RuntimeError(f"{self.what} is used before the twin connected it")
        return self._value


# ---- events --------------------------------------------------------------------------------------


class EventPublisher(Protocol):
    """PutEvents on the default bus (AWS services and nodes put their events there)."""

    def put_events(self, entries: list[dict[str, Any]]) -> Any: ...


class EventRouter(Protocol):
    """The bus's rules, for an event that bypasses PutEvents' fault injection (CloudWatch alarms)."""

    def matching_rules(self, event: dict[str, Any]) -> Sequence[Any]: ...

    def deliver(self, event: dict[str, Any]) -> list[str]: ...


class LambdaTargets(Protocol):
    """The Lambda runtime as the bus's targets see it: async invokes, and queues that got a message."""

    def invoke_async(self, logical_id: str, event: dict[str, Any]) -> None: ...

    def wake(self) -> None: ...


# ---- authorization (twin/iam/) -------------------------------------------------------------------


class ServiceAuthorizer(Protocol):
    """An AWS service principal acting on a customer resource (EventBridge -> SQS, CloudWatch -> SNS)."""

    def authorize_service(
        self, service: str, action: str, resource: str, context: dict[str, Any]
    ) -> Denial | None: ...


class FunctionRoleAuthorizer(Protocol):
    """A function's execution role: its credentials, and the Lambda service acting with it."""

    def function_access_key(self, logical_id: str) -> str: ...

    def authorize_function_role(self, logical_id: str, action: str, resource: str) -> Denial | None: ...


class NodeAuthorizer(Protocol):
    """A node's instance-profile role, for a call that does not go through botocore."""

    def authorize_node(
        self, role: str, action: str, resource: str, context: dict[str, Any]
    ) -> Denial | None: ...


# ---- instances -----------------------------------------------------------------------------------


class InstanceSandboxes(Protocol):
    """The node fleet as an instance's boot sees it: a root filesystem per instance."""

    def add_instance(
        self,
        instance_id: str,
        *,
        availability_zone: str,
        private_ip: str,
        private_dns: str,
        region: str,
        cluster: str,
        role: str,
    ) -> None: ...

    def mark_provisioned(self, instance_id: str) -> None: ...

    def remove_instance(self, instance_id: str) -> None: ...


class ScriptRunner(Protocol):
    """The node fleet as the SSM agent sees it: run a document's script in an instance's sandbox."""

    def run_script(self, instance_id: str, script: str, env: dict[str, str]) -> ScriptResult: ...


class SsmAgents(Protocol):
    """Run Command as an instance sees it: its agent comes online, and goes away with the instance."""

    def register_agent(self, instance_id: str) -> None: ...

    def instance_gone(self, instance_id: str) -> None: ...


class InstanceHosts(Protocol):
    """The node side as Auto Scaling sees it: it boots what was launched and stops what is gone."""

    def boot(self, instance: Instance, *, availability_zone: str, tags: dict[str, str]) -> None: ...

    def gone(self, instance_id: str) -> None: ...


class ApiServerProbe(Protocol):
    """What answers on a control plane's port 6443 (the load balancer's health check)."""

    def apiserver_running(self, instance_id: str) -> bool: ...


class ApiEndpointRouting(Protocol):
    """The control-plane endpoint (an NLB) as a client of the API sees it."""

    def registered_behind(self, endpoint: str) -> set[str] | None: ...

    def routed_behind(self, endpoint: str) -> set[str] | None: ...
