"""The operator's command on its own: what it says when it cannot work, and what its wheel holds."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import boto3
import pytest
import yaml
from moto import mock_aws

REPO = Path(__file__).resolve().parents[2]
CLUSTER = "ops-test"
CONFIG = {
    "cluster_name": CLUSTER,
    "control_plane_endpoint": "kc-ops-test-1.elb.us-east-1.amazonaws.com:6443",
    "node_groups": [
        {"asg_name": "kcluster-ops-test-control-plane", "role": "control-plane"},
        {"asg_name": "kcluster-ops-test-workers", "role": "worker"},
    ],
    "documents": {
        "init": "kcluster-ops-test-init",
        "join_control_plane": "kcluster-ops-test-join-control-plane",
        "join_worker": "kcluster-ops-test-join-worker",
        "refresh_join": "kcluster-ops-test-refresh-join",
    },
}


@pytest.fixture
def no_aws_environment(monkeypatch, tmp_path):
    """An operator's shell with nothing configured: no credentials, no region, no profile files."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "KCLUSTER_CLUSTER",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask an instance metadata service


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("KCLUSTER_CLUSTER", raising=False)
    with mock_aws():
        yield boto3.client("ssm", region_name="us-east-1")


def kcluster(argv: list[str], capsys) -> tuple[int, str, str]:
    from kcluster_cli.main import run

    code = run(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_without_a_cluster_name_it_says_how_to_give_one(aws, capsys):
    assert kcluster(["inventory", "--list"], capsys) == (
        1,
        "",
        "kcluster: which cluster? pass --cluster NAME or set KCLUSTER_CLUSTER\n",
    )


def test_without_a_region_it_says_how_to_give_one(no_aws_environment, capsys):
    code, out, err = kcluster(["inventory", "--list", "--cluster", CLUSTER], capsys)
    assert (code, out) == (1, "")
    assert err.startswith("kcluster: no AWS region: pass --region")


def test_without_credentials_it_says_how_to_log_in(no_aws_environment, capsys):
    code, out, err = kcluster(["inventory", "--list", "--cluster", CLUSTER, "--region", "eu-west-1"], capsys)
    assert (code, out) == (1, "")
    assert "no usable AWS credentials" in err and "aws sso login" in err
    assert "Traceback" not in err


def test_an_unknown_profile_is_named(no_aws_environment, capsys):
    code, _, err = kcluster(["inventory", "--list", "--cluster", CLUSTER, "--profile", "nope"], capsys)
    assert code == 1
    assert "nope" in err and "aws configure list-profiles" in err


def test_a_cluster_that_is_not_there_is_named_with_the_region(aws, capsys):
    code, out, err = kcluster(["inventory", "--list", "--cluster", "elsewhere"], capsys)
    assert (code, out) == (1, "")
    assert "cluster 'elsewhere' not found in us-east-1" in err
    assert "/kcluster/elsewhere/config" in err


def test_kubeconfig_before_init_says_what_to_wait_for_and_writes_nothing(aws, capsys, tmp_path):
    aws.put_parameter(Name=f"/kcluster/{CLUSTER}/config", Value=json.dumps(CONFIG), Type="String")
    target = tmp_path / "config"
    code, _, err = kcluster(["kubeconfig", "--cluster", CLUSTER, "--kubeconfig", str(target)], capsys)
    assert code == 1
    assert "has no admin kubeconfig yet" in err and "kubeadm init" in err
    assert not target.exists()


def test_kubeconfig_refuses_to_merge_into_a_file_that_is_not_a_kubeconfig(aws, capsys, tmp_path):
    aws.put_parameter(Name=f"/kcluster/{CLUSTER}/config", Value=json.dumps(CONFIG), Type="String")
    admin = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubernetes", "cluster": {"server": "https://x:6443"}}],
        "users": [{"name": "kubernetes-admin", "user": {"client-key-data": "eA=="}}],
        "contexts": [{"name": "a", "context": {"cluster": "kubernetes", "user": "kubernetes-admin"}}],
    }
    aws.put_parameter(
        Name=f"/kcluster/{CLUSTER}/admin/kubeconfig", Value=yaml.safe_dump(admin), Type="SecureString"
    )
    target = tmp_path / "config"
    target.write_text("- just\n- a list\n")
    code, _, err = kcluster(["kubeconfig", "--cluster", CLUSTER, "--kubeconfig", str(target)], capsys)
    assert code == 1 and "is not a kubeconfig; nothing was changed" in err
    assert target.read_text() == "- just\n- a list\n"


def test_the_command_without_the_twin_offers_only_the_operators_commands(monkeypatch):
    from kcluster_cli import main

    monkeypatch.setitem(sys.modules, "twin", None)  # an operator's install: no twin to import
    choices = main.build_parser()._subparsers._group_actions[0].choices
    assert sorted(choices) == ["backups", "completion", "events", "inventory", "kubeconfig", "status"]


def test_the_wheel_holds_the_command_and_the_shared_library_but_never_the_twin(tmp_path):
    # Built from a copy with the tree's own setuptools (offline), so nothing is written into the repository.
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(REPO / "pyproject.toml", source)
    shutil.copytree(REPO / "kcluster_cli", source / "kcluster_cli")
    shutil.copytree(REPO / "layers" / "kcluster" / "kcluster", source / "layers" / "kcluster" / "kcluster")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(source)],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("kcluster-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packages = {name.rsplit("/", 1)[0] for name in names if name.endswith(".py")}
    shipped = {
        str(path.parent.relative_to(REPO / "layers" / "kcluster")).replace("\\", "/")
        for path in (REPO / "layers" / "kcluster" / "kcluster").rglob("*.py")
    }
    assert packages == shipped | {"kcluster_cli"}
    assert not [name for name in names if name.startswith(("twin/", "tests/"))]
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    assert "kcluster = kcluster_cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
