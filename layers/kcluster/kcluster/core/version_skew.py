"""Kubernetes versions and the version-skew policy, as pure functions.

The policy (kubernetes.io/releases/version-skew-policy): in a highly available cluster the
kube-apiservers are within one minor of each other; a kubelet is never newer than the oldest
kube-apiserver and at most three minors older; kubeadm upgrades one minor at a time. Every rollout
step is checked against it for the instant after the step, not only at the end.

Which kubelets count: a worker's kubelet reaches whichever kube-apiserver the load balancer picks, so
it is held against the oldest one. A control plane's kubelet talks to its own kube-apiserver
(kubeadm's ControlPlaneKubeletLocalMode, KEP-4471: beta and on by default since 1.33, made for exactly
this skew during upgrades), which runs its own version: it is never skewed, and is left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_VERSION = re.compile(r"^v?(?P<major>[0-9]+)\.(?P<minor>[0-9]+)(?:\.(?P<patch>[0-9]+))?$")

# kube-apiservers may differ by this many minors; a kubelet may be this many minors older.
APISERVER_MAX_MINOR_SPREAD = 1
KUBELET_MAX_MINORS_OLDER = 3


@dataclass(frozen=True, order=True)
class KubeVersion:
    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> KubeVersion:
        """'1.37.2' or 'v1.37.2' (a kubelet reports the v); a clear error for anything else."""
        match = _VERSION.match(text.strip())
        if match is None:
            raise ValueError(f"not a Kubernetes version: {text!r}")
        return cls(int(match["major"]), int(match["minor"]), int(match["patch"] or 0))

    def minors_above(self, other: KubeVersion) -> int:
        """How many minors this version is above `other` (negative when below)."""
        if self.major != other.major:
            raise ValueError(f"versions {self} and {other} differ in their major version")
        return self.minor - other.minor

    @property
    def minor_name(self) -> str:
        return f"{self.major}.{self.minor}"

    def next_minor(self) -> KubeVersion:
        return KubeVersion(self.major, self.minor + 1, 0)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class Components:
    """The versions running at one instant: each kube-apiserver's, and each worker kubelet's (the
    kubelets that reach the kube-apiservers through the load balancer)."""

    apiservers: tuple[KubeVersion, ...]
    kubelets: tuple[KubeVersion, ...]

    @classmethod
    def of(cls, apiservers: Iterable[str], kubelets: Iterable[str]) -> Components:
        return cls(
            tuple(KubeVersion.parse(v) for v in apiservers), tuple(KubeVersion.parse(v) for v in kubelets)
        )

    def with_node(self, version: KubeVersion, *, control_plane: bool) -> Components:
        """The same cluster with one more node at `version`: a kube-apiserver for a control plane (its
        kubelet talks to it alone), a kubelet for a worker."""
        if control_plane:
            return Components((*self.apiservers, version), self.kubelets)
        return Components(self.apiservers, (*self.kubelets, version))


def violations(components: Components) -> list[str]:
    """Each way `components` breaks the skew policy, in words; empty when it holds."""
    found: list[str] = []
    if not components.apiservers:
        return found
    oldest, newest = min(components.apiservers), max(components.apiservers)
    if newest.minors_above(oldest) > APISERVER_MAX_MINOR_SPREAD:
        found.append(f"kube-apiservers {oldest} and {newest} are more than one minor apart")
    for kubelet in sorted(set(components.kubelets)):
        if kubelet.minors_above(oldest) > 0:
            found.append(f"kubelet {kubelet} is newer than the oldest kube-apiserver {oldest}")
        elif oldest.minors_above(kubelet) > KUBELET_MAX_MINORS_OLDER:
            found.append(f"kubelet {kubelet} is more than three minors older than kube-apiserver {oldest}")
    return found


def upgrade_refusal(running: KubeVersion, target: KubeVersion) -> str | None:
    """Why kubeadm cannot take a cluster whose oldest kube-apiserver runs `running` to `target`, or
    None when it can: one minor at a time, and no minor downgrade (a patch one is fine)."""
    step = target.minors_above(running)
    if step > 1:
        return (
            f"target {target} is {step} minors above {running}: kubeadm upgrades one minor at a time; "
            f"roll out {running.next_minor().minor_name} first"
        )
    if step < 0:
        return f"target {target} is a minor below {running}: kubeadm does not downgrade a minor"
    return None
