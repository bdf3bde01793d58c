"""Terraform's own plan of the module, and its apply through the schema-serving provider, computed once
per distinct (module contents, provider, variables, fixtures) and cached outside the repository.

Hundreds of tests build twins; real Terraform takes ~20 s to init, plan, apply and show the module. The
cache key is a hash of everything that decides the result, so an edit to any file of terraform/ (or to
the provider) makes a new plan, and an unchanged module never runs Terraform twice on a machine. A file
lock makes concurrent test workers wait for the one computing it instead of all computing it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from twin.terraform.runner import PROVIDER, REALTF, TERRAFORM_DIR, RealTerraform

# Raise when what is cached changes shape.
FORMAT = 1


def cache_dir() -> Path:
    base = Path(os.environ.get("KCLUSTER_CACHE", Path.home() / ".cache" / "kcluster"))
    return base / "terraform-plans"


@dataclass(frozen=True)
class Planned:
    """`terraform show -json` of the saved plan (`plan`) and of the state its apply left (`state`)."""

    plan: dict[str, Any]
    state: dict[str, Any]

    def resources(self, *, module: str | None = None) -> Iterator[dict[str, Any]]:
        """Every resource and data source of the applied state (root module, or one child module)."""
        root = self.state["values"]["root_module"]
        if module is None:
            yield from root.get("resources", [])
            return
        for child in root.get("child_modules", []):
            if child["address"] == module:
                yield from child.get("resources", [])

    def resource(self, address: str) -> dict[str, Any]:
        """The applied values of one resource instance, by its full address."""
        for resource in self._all_resources():
            if resource["address"] == address:
                values: dict[str, Any] = resource["values"]
                return values
        raise KeyError(f"{address} is not in the plan")

    def changes(self) -> dict[str, dict[str, Any]]:
        """address -> the plan's resource change (actions, before, after, after_unknown)."""
        return {change["address"]: change["change"] for change in self.plan["resource_changes"]}

    def _all_resources(self) -> Iterator[dict[str, Any]]:
        stack = [self.state["values"]["root_module"]]
        while stack:
            module = stack.pop()
            yield from module.get("resources", [])
            stack.extend(module.get("child_modules", []))


def _module_files(directory: Path) -> Iterator[Path]:
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if (
            path.is_file()
            and not {".terraform", "examples"} & set(relative.parts)
            and path.name != "README.md"
        ):
            yield path


def cache_key(variables: Mapping[str, Any], fixtures: Mapping[str, Any], region: str) -> str:
    digest = hashlib.sha256(f"format {FORMAT}\nregion {region}\n".encode())
    for path in (*_module_files(TERRAFORM_DIR), PROVIDER, REALTF):
        digest.update(f"{path.relative_to(TERRAFORM_DIR.parent)}\n".encode())
        digest.update(path.read_bytes())
    digest.update(json.dumps([variables, fixtures], sort_keys=True).encode())
    return digest.hexdigest()[:32]


def plan_module(variables: Mapping[str, Any], fixtures: Mapping[str, Any], region: str) -> Planned:
    """The module's plan and applied state for these inputs: from the cache, else from real Terraform."""
    return _load(cache_key(variables, fixtures, region), json.dumps([variables, fixtures, region]))


@cache
def _load(key: str, inputs: str) -> Planned:
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{key}.json"
    with (directory / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            variables, fixtures, region = json.loads(inputs)
            computed = _plan_and_apply(variables, fixtures, region)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(computed))
            tmp.replace(path)
    cached = json.loads(path.read_text())
    return Planned(plan=cached["plan"], state=cached["state"])


def _plan_and_apply(variables: dict[str, Any], fixtures: dict[str, Any], region: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kcluster-terraform-plan-") as tmp:
        terraform = RealTerraform(Path(tmp), fixtures, region)
        cwd = terraform.copy_module("module")
        planned = terraform.check(cwd, variables, plan_out=cwd / "module.tfplan")
        if not planned.ok:
            raise RuntimeError(f"terraform {planned.step} failed:\n{planned.output}")
        plan = terraform.show_json(cwd, "module.tfplan")
        applied = terraform.run(cwd, "apply", "-input=false", "-no-color", "module.tfplan")
        if not applied.ok:
            raise RuntimeError(f"terraform apply failed:\n{applied.output}")
        return {"plan": plan, "state": terraform.show_json(cwd)}
