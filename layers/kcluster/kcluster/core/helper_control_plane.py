"""Choosing the helper control plane: the healthy control plane that runs the commands acting on the
cluster (refresh-join, drain-remove, health).

A helper whose command failed is suspect (ClusterState.suspect_helper): the next command goes to
another joined control plane if there is one, so one dead control plane cannot stall every join and
removal. A success trusts it again (ClusterState.trust_helper).
"""

from __future__ import annotations

from kcluster.core.models import ClusterView
from kcluster.core.phases import LEAVING_PHASES


def choose(view: ClusterView, exclude: str | None = None, *, leaving_ok: bool = False) -> str | None:
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
    preferred = trusted or candidates
    return preferred[0] if preferred else None
