"""Real Terraform on a copy of the module, offline, against the provider serving hashicorp/aws 5.99.1's
schema (tools/terraform/). The tool environment comes from `make terraform-tools`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO_ROOT / "terraform"
REALTF = REPO_ROOT / "tools" / "terraform" / "realtf.py"
# Where `make terraform-tools` caches the schema the provider serves (realtf.SCHEMA).
SCHEMA = (
    Path(os.environ.get("KCLUSTER_CACHE", Path.home() / ".cache" / "kcluster"))
    / "terraform"
    / "aws-5.99.1"
    / "schema.json"
)
# The Makefile's tool environment; KCLUSTER_TF_PYTHON overrides it.
TOOL_PYTHON = Path(
    os.environ.get("KCLUSTER_TF_PYTHON", REPO_ROOT / ".tools" / "terraform" / "bin" / "python")
)

REGION = "eu-west-1"
VPC_ID = "vpc-0a1b2c3d4e5f60718"
SUBNETS = {
    "subnet-0a1a1a1a1a1a1a1a1": ("eu-west-1a", "10.20.0.0/20"),
    "subnet-0b2b2b2b2b2b2b2b2": ("eu-west-1b", "10.20.16.0/20"),
    "subnet-0c3c3c3c3c3c3c3c3": ("eu-west-1c", "10.20.32.0/20"),
}
OTHER_VPC_SUBNET = "subnet-0d4d4d4d4d4d4d4d4"
SAME_ZONE_SUBNET = "subnet-0e5e5e5e5e5e5e5e5"


def fixtures() -> dict:
    """What the data sources read: the VPC, its subnets (one in another VPC, one in a zone already used)."""
    subnets = {
        subnet: {"vpc_id": VPC_ID, "availability_zone": zone, "cidr_block": cidr}
        for subnet, (zone, cidr) in SUBNETS.items()
    }
    subnets[OTHER_VPC_SUBNET] = {
        "vpc_id": "vpc-0ffffffffffffffff",
        "availability_zone": "eu-west-1b",
        "cidr_block": "172.16.0.0/20",
    }
    subnets[SAME_ZONE_SUBNET] = {
        "vpc_id": VPC_ID,
        "availability_zone": "eu-west-1a",
        "cidr_block": "10.20.48.0/20",
    }
    return {
        "account_id": "123456789012",
        "data": {
            "aws_vpc": {
                VPC_ID: {
                    "cidr_block": "10.20.0.0/16",
                    "arn": f"arn:aws:ec2:{REGION}:123456789012:vpc/{VPC_ID}",
                }
            },
            "aws_subnet": subnets,
        },
    }


# The root module's inputs, as an operator would give them.
ROOT_VARIABLES = {
    "cluster_name": "prod-eu",
    "kubernetes_version": "1.33.5",
    "vpc_id": VPC_ID,
    "subnet_ids": list(SUBNETS),
    "api_allowed_cidrs": ["10.99.0.0/16"],
    "admin_principal_arns": ["arn:aws:iam::123456789012:role/platform-admins"],
    "control_plane_desired_capacity": 3,
    "worker_desired_capacity": 4,
    "tags": {"Environment": "production", "CostCenter": "platform"},
}
EXAMPLE_VARIABLES = {"vpc_id": VPC_ID, "subnet_ids": list(SUBNETS), "api_allowed_cidrs": ["10.99.0.0/16"]}


@dataclass
class Result:
    step: str
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class RealTerraform:
    """One provider mirror and CLI configuration for a test session; copies of the module beside it."""

    def __init__(self, workdir: Path):
        assert TOOL_PYTHON.exists(), (
            f"the Terraform tool environment is missing ({TOOL_PYTHON}): run `make terraform-tools`"
        )
        self.workdir = workdir
        self.rc = Path(
            subprocess.run(
                [str(TOOL_PYTHON), str(REALTF), "mirror", str(workdir)],
                capture_output=True,
                text=True,
                check=True,
                timeout=600,
            ).stdout.strip()
        )
        self.fixtures = workdir / "fixtures.json"
        self.fixtures.write_text(json.dumps(fixtures()))
        self.env = {
            **os.environ,
            "TF_CLI_CONFIG_FILE": str(self.rc),
            "KCLUSTER_TF_FIXTURES": str(self.fixtures),
            "AWS_DEFAULT_REGION": REGION,
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
            [str(TOOL_PYTHON), str(REALTF), "run", *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        return Result(args[0], completed.returncode, completed.stdout + completed.stderr)

    def check(self, cwd: Path, variables: dict, *, plan_out: Path | None = None) -> Result:
        """The check `make test` runs: init, validate and plan; the first failing step's result, else the plan's."""
        var_file = cwd / "fixture.auto.tfvars.json"
        var_file.write_text(json.dumps(variables))
        for args in (("init", "-input=false", "-no-color"), ("validate", "-no-color")):
            result = self.run(cwd, *args)
            if not result.ok:
                return result
        out = ["-out", str(plan_out)] if plan_out else []
        return self.run(cwd, "plan", "-input=false", "-no-color", *out)
