"""Wiring, once per cold start: the AWS clients, the cluster's configuration and the Service built
from them. The handlers call ``build_clients`` at import time and ``build_service`` per invocation.

Each client is built on its first use, not at import: a cold start then pays only for the clients its
invocations call (the reactor never calls ELBv2 or SNS unless it alerts), and building a boto3 client
costs tens of milliseconds of a Lambda's cold start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities.parameters import SSMProvider

from kcluster import contract
from kcluster.adapters.alarms import AlarmStates
from kcluster.adapters.autoscaling import Lifecycle
from kcluster.adapters.commands import Commands
from kcluster.adapters.instance_refresh import InstanceRefreshes
from kcluster.adapters.notifier import Notifier
from kcluster.adapters.state_store import StateStore
from kcluster.adapters.targets import ApiTargets, TargetHealth
from kcluster.config import ClusterConfig
from kcluster.core.remediation import RemediationSettings
from kcluster.service import Dependencies, Service

# The config parameter is read through Powertools Parameters and cached this long per container.
CONFIG_MAX_AGE_SECONDS = 60


class LazyClient:
    """A boto3 client of `service`, built on its first use (any attribute: an operation, `meta`, a
    paginator); from then on every attribute is the built client's."""

    def __init__(self, service: str) -> None:
        self._service = service
        self._client: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client(self._service)
        return getattr(self._client, name)


@dataclass
class Clients:
    dynamodb: Any
    ssm: Any
    autoscaling: Any
    elbv2: Any = None
    sns: Any = None
    cloudwatch: Any = None
    _parameters: SSMProvider | None = field(default=None, repr=False)

    @property
    def parameters(self) -> SSMProvider:
        """Powertools Parameters on the SSM client, made when the configuration is first read."""
        if self._parameters is None:
            self._parameters = SSMProvider(boto3_client=self.ssm)
        return self._parameters


def build_clients() -> Clients:
    return Clients(
        LazyClient("dynamodb"),
        LazyClient("ssm"),
        LazyClient("autoscaling"),
        LazyClient("elbv2"),
        LazyClient("sns"),
        LazyClient("cloudwatch"),
    )


def load_config(cluster_name: str, provider: SSMProvider) -> ClusterConfig:
    raw = provider.get(
        contract.config_parameter_name(cluster_name), transform="json", max_age=CONFIG_MAX_AGE_SECONDS
    )
    return ClusterConfig.model_validate(raw)


def build_service(clients: Clients, environ: Mapping[str, str] | None = None) -> Service:
    env = os.environ if environ is None else environ
    cluster = env["CLUSTER_NAME"]
    deps = Dependencies(
        store=StateStore(env["STATE_TABLE_NAME"], cluster, client=clients.dynamodb),
        commands=Commands(client=clients.ssm),
        lifecycle=Lifecycle(client=clients.autoscaling),
        config_loader=lambda: load_config(cluster, clients.parameters),
        targets=TargetHealth(client=clients.elbv2) if clients.elbv2 is not None else None,
        api_targets=ApiTargets(client=clients.elbv2) if clients.elbv2 is not None else None,
        alarm_states=AlarmStates(client=clients.cloudwatch) if clients.cloudwatch is not None else None,
        notifier=Notifier(env.get("ALERTS_TOPIC_ARN"), client=clients.sns)
        if clients.sns is not None
        else None,
        remediation=remediation_settings(env),
        refreshes=InstanceRefreshes(client=clients.autoscaling),
    )
    return Service(deps)


def remediation_settings(env: Mapping[str, str]) -> RemediationSettings:
    """The guard rails from the functions' environment (template parameters); defaults where unset."""
    defaults = RemediationSettings()
    return RemediationSettings(
        grace_seconds=float(env.get("REMEDIATION_GRACE_SECONDS", defaults.grace_seconds)),
        cooldown_seconds=float(env.get("REMEDIATION_COOLDOWN_SECONDS", defaults.cooldown_seconds)),
        max_unhealthy_percent=float(
            env.get("REMEDIATION_MAX_UNHEALTHY_PERCENT", defaults.max_unhealthy_percent)
        ),
        max_per_hour=int(env.get("REMEDIATION_MAX_PER_HOUR", defaults.max_per_hour)),
    )
