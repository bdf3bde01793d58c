"""The `version_skew_ok` invariant: Kubernetes' version-skew policy sampled after every step of the
world, not only at the end, from the Kubernetes model's own component versions (never from what the
product believes). Written here from the policy itself, apart from kcluster.core.version_skew, so a
mistake in the product's rule cannot hide in its own check.

The policy (kubernetes.io/releases/version-skew-policy): the newest and oldest kube-apiservers within
one minor; a kubelet never newer than the kube-apiservers it talks to and at most three minors older.
A worker's kubelet talks to any kube-apiserver (through the load balancer); a control plane's kubelet
to its own (kubeadm's ControlPlaneKubeletLocalMode, on by default since 1.33).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from twin.node.kube.state import ComponentVersions
    from twin.world import Twin

_MINOR = re.compile(r"^v?1\.([0-9]+)")


def _minor(version: str) -> int:
    match = _MINOR.match(version)
    if match is None:
        raise ValueError(f"not a Kubernetes 1.x version: {version!r}")
    return int(match.group(1))


def skew_problems(components: list[ComponentVersions]) -> list[str]:
    apiservers = [_minor(c.apiserver) for c in components if c.apiserver]
    if not apiservers:
        return []
    oldest, newest = min(apiservers), max(apiservers)
    problems = [f"kube-apiservers 1.{oldest} and 1.{newest} apart"] if newest - oldest > 1 else []
    for worker in (c for c in components if c.apiserver is None):
        kubelet = _minor(worker.kubelet)
        if kubelet > oldest or oldest - kubelet > 3:
            problems.append(
                f"kubelet of {worker.instance_id} at 1.{kubelet} with kube-apiservers 1.{oldest}+"
            )
    return problems


@dataclass
class SkewWatch:
    """Samples the skew policy after every step; keeps the first moments it was broken."""

    broken: list[tuple[float, str]] = field(default_factory=list)
    samples: int = 0

    def sample(self, twin: Twin) -> None:
        self.samples += 1
        problems = skew_problems(twin.model.component_versions())
        if problems and len(self.broken) < 20:
            self.broken.append((twin.clock.now() - twin.start_time, "; ".join(problems)))
