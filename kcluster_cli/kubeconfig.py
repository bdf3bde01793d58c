"""`kcluster kubeconfig`: the cluster's admin kubeconfig, read from its SecureString with the operator's own
credentials and written only where it is asked to go, owner-readable only (0600).

By default it is merged into the operator's kubeconfig ($KUBECONFIG's first file, else ~/.kube/config)
under a cluster, user and context named after the cluster, as `aws eks update-kubeconfig` does; `--file`
writes it alone; `--stdout` prints it, the only way it reaches a terminal.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from kcluster import contract
from kcluster_cli.aws import Cluster, read_parameter
from kcluster_cli.errors import OperatorError

OWNER_ONLY = 0o600


def fetch(cluster: Cluster) -> dict[str, Any]:
    name = contract.admin_kubeconfig_parameter_name(cluster.name)
    text = read_parameter(
        cluster.client("ssm"),
        name,
        decrypt=True,
        missing=f"cluster {cluster.name!r} has no admin kubeconfig yet: the first control plane writes "
        f"{name} once `kubeadm init` has finished. `kcluster status` shows how far it is",
    )
    document = yaml.safe_load(text)
    if not isinstance(document, dict) or document.get("kind") != "Config":
        raise OperatorError(f"{name} does not hold a kubeconfig")
    return document


def renamed(document: dict[str, Any], context: str) -> dict[str, Any]:
    """The admin kubeconfig with its one cluster, user and context renamed after the kcluster cluster,
    so it can sit beside others in one file (kubeadm names them all `kubernetes`/`kubernetes-admin`)."""
    try:
        (cluster,) = document["clusters"]
        (user,) = document["users"]
    except (KeyError, ValueError) as error:
        raise OperatorError("the admin kubeconfig should hold exactly one cluster and one user") from error
    user_name = f"{context}-admin"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": context, "cluster": cluster["cluster"]}],
        "users": [{"name": user_name, "user": user["user"]}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": user_name}}],
        "current-context": context,
    }


def merge(existing: dict[str, Any] | None, ours: dict[str, Any], *, switch: bool) -> dict[str, Any]:
    """`existing` with our cluster, user and context added or replaced by name; the rest kept as it was."""
    merged = dict(existing or {"apiVersion": "v1", "kind": "Config", "preferences": {}})
    for section in ("clusters", "users", "contexts"):
        ours_by_name = {entry["name"]: entry for entry in ours[section]}
        kept = [entry for entry in merged.get(section) or [] if entry.get("name") not in ours_by_name]
        merged[section] = kept + list(ours_by_name.values())
    if switch or not merged.get("current-context"):
        merged["current-context"] = ours["current-context"]
    return merged


def default_path() -> Path:
    configured = os.environ.get("KUBECONFIG", "")
    first = next((part for part in configured.split(os.pathsep) if part), "")
    return Path(first).expanduser() if first else Path.home() / ".kube" / "config"


def read_kubeconfig(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if document is None:
        return None
    if not isinstance(document, dict):
        raise OperatorError(f"{path} is not a kubeconfig; nothing was changed")
    return document


def write_owner_only(path: Path, document: dict[str, Any]) -> None:
    """Written to a 0600 temporary file beside `path`, then renamed over it: never readable by others,
    never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(handle, OWNER_ONLY)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            yaml.safe_dump(document, stream, default_flow_style=False, sort_keys=False)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
