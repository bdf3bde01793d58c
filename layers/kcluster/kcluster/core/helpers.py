"""Which healthy control plane runs the commands that act on the cluster (refresh-join, drain-remove).

A helper whose command failed is suspect: the next command goes to another joined control plane if
there is one, so one dead control plane cannot stall every join and removal. A success clears it.
"""

from __future__ import annotations

from collections.abc import Iterable

from kcluster.core.models import LEAVING_PHASES, ClusterState, ClusterView, bump


def choose_helper(view: ClusterView, exclude: str | None = None, *, leaving_ok: bool = False) -> str | None:
    """A joined control plane to run a command on; with `leaving_ok`, when there is none, one that is
    leaving but still running (its terminate action is held), so a control plane can finish joining
    through it before it goes (see core/scale_in.py)."""
    candidates = [cp.instance_id for cp in view.joined_control_planes() if cp.instance_id != exclude]
    if not candidates and leaving_ok:
        candidates = sorted(
            n.instance_id
            for n in view.nodes.values()
            if n.is_control_plane and n.phase in LEAVING_PHASES and n.instance_id != exclude
        )
    trusted = [c for c in candidates if c not in view.cluster.suspect_helpers]
    return (trusted or candidates or [None])[0]


def cluster_after(
    view: ClusterView,
    *,
    release_lease_of: Iterable[str] = (),
    helper: str | None = None,
    helper_ok: bool | None = None,
) -> tuple[ClusterState, ...]:
    """The cluster record after a helper command finished: lease released if one of
    `release_lease_of` held it, the helper's suspicion updated. Empty when nothing changes."""
    cluster = view.cluster
    changes: dict = {}
    if cluster.lease_owner is not None and cluster.lease_owner in set(release_lease_of):
        changes.update(lease_owner=None, lease_expires_at=None)
    if helper is not None and helper_ok is not None:
        suspects = set(cluster.suspect_helpers)
        if helper_ok:
            suspects.discard(helper)
        else:
            suspects.add(helper)
        if tuple(sorted(suspects)) != cluster.suspect_helpers:
            changes["suspect_helpers"] = tuple(sorted(suspects))
    return (bump(cluster, **changes),) if changes else ()
