"""Real Terraform on a copy of a module, offline, against the provider serving hashicorp/aws 5.99.1's
schema (tools/terraform/). The tool environment comes from `make terraform-tools`; KCLUSTER_TF_PYTHON
names another one. Nothing Terraform writes lands in the repository: every run works on a copy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO_ROOT / "terraform"
REALTF = REPO_ROOT / "tools" / "terraform" / "realtf.py"
PROVIDER = REPO_ROOT / "tools" / "terraform" / "provider.py"


def tool_python() -> Path:
    """The Makefile's tool environment (`make terraform-tools`); KCLUSTER_TF_PYTHON overrides it."""
    return Path(os.environ.get("KCLUSTER_TF_PYTHON", REPO_ROOT / ".tools" / "terraform" / "bin" / "python"))


@dataclass
class Result:
    step: str
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class RealTerraform:
    """One provider mirror and CLI configuration in `workdir`; copies of the module beside it.

    `fixtures` is what the provider's data sources answer (tools/terraform/provider.py), `region` the
    provider's region (AWS_DEFAULT_REGION, as the real provider reads it)."""

    def __init__(self, workdir: Path, fixtures: dict[str, Any], region: str):
        python = tool_python()
        if not python.exists():
            raise FileNotFoundError(
                f"the Terraform tool environment is missing ({python}): run `make terraform-tools`"
            )
        self.python = python
        self.workdir = workdir
        self.rc = Path(
            subprocess.run(
                [str(python), str(REALTF), "mirror", str(workdir)],
                capture_output=True,
                text=True,
                check=True,
                timeout=600,
            ).stdout.strip()
        )
        self.fixtures = workdir / "fixtures.json"
        self.fixtures.write_text(json.dumps(fixtures))
        self.env = {
            **os.environ,
            "TF_CLI_CONFIG_FILE": str(self.rc),
            "KCLUSTER_TF_FIXTURES": str(self.fixtures),
            "AWS_DEFAULT_REGION": region,
            "TF_IN_AUTOMATION": "1",
            "CHECKPOINT_DISABLE": "1",
        }
        for name in ("TF_DATA_DIR", "TF_PLUGIN_CACHE_DIR", "TF_CLI_ARGS", "TF_WORKSPACE"):
            self.env.pop(name, None)

    def copy_module(self, name: str) -> Path:
        """A copy of terraform/ (nothing Terraform writes lands in the repository)."""
        dest = self.workdir / name / "terraform"
        shutil.copytree(
            TERRAFORM_DIR,
            dest,
            ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*"),
        )
        return dest

    def run(self, cwd: Path, *args: str) -> Result:
        completed = subprocess.run(
            [str(self.python), str(REALTF), "run", *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        return Result(args[0], completed.returncode, completed.stdout + completed.stderr)

    def check(self, cwd: Path, variables: dict[str, Any], *, plan_out: Path | None = None) -> Result:
        """init, validate and plan; the first failing step's result, else the plan's."""
        (cwd / "fixture.auto.tfvars.json").write_text(json.dumps(variables))
        for args in (("init", "-input=false", "-no-color"), ("validate", "-no-color")):
            result = self.run(cwd, *args)
            if not result.ok:
                return result
        out = ["-out", str(plan_out)] if plan_out else []
        return self.run(cwd, "plan", "-input=false", "-no-color", *out)

    def show_json(self, cwd: Path, *plan: str) -> dict[str, Any]:
        """`terraform show -json` of a saved plan, or of the state when no plan is named."""
        shown = self.run(cwd, "show", "-json", *plan)
        if not shown.ok:
            raise RuntimeError(f"terraform show failed:\n{shown.output}")
        parsed: dict[str, Any] = json.loads(shown.output)
        return parsed
