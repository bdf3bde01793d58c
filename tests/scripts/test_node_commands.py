"""Issue 17: a twin sandbox offers exactly the commands an instance has (twin/node/commands.py): the
AMI's and those provisioning installs. The provisioned part is read from the provisioning script itself,
so it cannot drift from it; every command's package is checked against the host's dpkg database; a
script calling anything else fails in the twin as on the instance."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.scripts.conftest import Nodes
from twin.node.commands import (
    AMI_COMMANDS,
    AMI_PACKAGES,
    PACKAGE_COMMANDS,
    PROVISION_SCRIPT,
    PROVISIONED,
    installed_packages,
    offered_commands,
    provisioned_commands,
)

PROVISION = PROVISION_SCRIPT
# Packages whose commands the host (Debian, like Ubuntu) must be able to attribute, so the dpkg check
# below can never pass by checking nothing.
CORE_PACKAGES = {
    "bash",
    "dash",
    "coreutils",
    "findutils",
    "grep",
    "sed",
    "tar",
    "gzip",
    "util-linux",
    "apt",
    "dpkg",
}
_BIN_DIRS = ("/usr/bin", "/bin", "/usr/sbin", "/sbin")


def test_the_provisioned_packages_are_read_from_the_provisioning_script() -> None:
    script = PROVISION.read_text()
    assert set(PROVISIONED) == installed_packages(script)
    assert {"kubelet", "kubeadm", "kubectl", "cri-tools", "runc", "jq", "aws-cli", "containerd"} <= set(
        PROVISIONED
    )
    # the same packages whether read from the template or from user data as Terraform renders it
    assert installed_packages(script.replace("$${", "${")) == installed_packages(script)


def test_a_package_provisioning_would_add_is_offered_or_refused_never_ignored() -> None:
    script = PROVISION.read_text()
    with_socat = script + '\n"$${APT_GET[@]}" install socat\n'
    with pytest.raises(ValueError, match="provisioning installs socat"):
        provisioned_commands(with_socat)
    without_snap = "\n".join(line for line in script.splitlines() if "snap install aws-cli" not in line)
    assert "aws-cli" not in provisioned_commands(without_snap)
    # a commented-out install installs nothing
    assert installed_packages('# "$${APT_GET[@]}" install socat\n') == set()


def _dpkg_owners(commands: set[str]) -> dict[str, set[str]]:
    """command -> the packages the host's dpkg database says ship it in a bin directory (through the
    alternatives system for a command such as awk, whose link no package owns)."""
    command_of: dict[str, str] = {}
    for command in commands:
        for directory in _BIN_DIRS:
            command_of[f"{directory}/{command}"] = command
            real = os.path.realpath(f"{directory}/{command}")
            if real.startswith(_BIN_DIRS) and os.path.exists(real):
                command_of.setdefault(real, command)
    listing = subprocess.run(
        ["dpkg", "-S", *sorted(command_of)], capture_output=True, text=True, check=False
    ).stdout
    owners: dict[str, set[str]] = {}
    for line in listing.splitlines():
        match = re.match(r"^(?P<packages>[^/]+): (?P<path>/\S+)$", line)
        if match and not line.startswith("diversion") and match.group("path") in command_of:
            packages = {name.strip().split(":", 1)[0] for name in match.group("packages").split(",")}
            owners.setdefault(command_of[match.group("path")], set()).update(packages)
    return owners


def _installed_on_host(packages: set[str]) -> set[str]:
    listing = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${Status}\n", *sorted(packages)],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    return {line.split()[0] for line in listing.splitlines() if line.endswith(" installed")}


def test_every_offered_command_comes_from_the_package_the_lists_name() -> None:
    # GIVEN the packages the AMI and provisioning lists name, as far as this (Debian) host has them
    named = AMI_PACKAGES | PACKAGE_COMMANDS
    checked = _installed_on_host(set(named))
    assert checked >= CORE_PACKAGES
    commands = {command for package in checked for command in named[package]}
    owners = _dpkg_owners(commands)
    # THEN each command of theirs is a file of that very package
    wrong = {
        command: sorted(owners.get(command, set()))
        for package in checked
        for command in named[package]
        if package not in owners.get(command, set())
    }
    assert wrong == {}


def test_provisioning_holds_what_it_installs_that_apt_could_upgrade_under_a_live_node() -> None:
    held = re.search(r"^HELD_PACKAGES=\((.*)\)$", PROVISION.read_text(), re.MULTILINE)
    assert held is not None
    assert set(held.group(1).split()) == {"kubelet", "kubeadm", "kubectl", "cri-tools", "runc", "containerd"}
    assert 'apt-mark hold "$${HELD_PACKAGES[@]}"' in PROVISION.read_text()


def test_a_sandbox_path_holds_exactly_the_offered_commands(nodes: Nodes) -> None:
    commands = {
        entry.name
        for entry in nodes.fleet.node_bin.iterdir()
        if os.access(entry, os.X_OK) and entry.is_file()
    }
    assert commands == offered_commands()
    assert "etcdctl" not in commands and "python3" not in commands
    assert {"crictl", "kubeadm", "jq", "aws"} <= commands and "bash" in AMI_COMMANDS


def test_a_command_the_instance_lacks_is_not_found_in_the_sandbox(nodes: Nodes) -> None:
    instance = nodes.add("worker")
    result = nodes.fleet.run_script(instance, "etcdctl version", {})
    assert result.exit_code == 127 and "etcdctl: command not found" in result.stderr
    result = nodes.fleet.run_script(instance, "python3 -c 'print(1)'", {})
    assert result.exit_code == 127


def test_an_offered_command_the_twin_does_not_model_fails_loudly(nodes: Nodes) -> None:
    instance = nodes.add("worker")
    result = nodes.fleet.run_script(instance, "apt-get update", {})
    assert result.exit_code == 64 and "not modelled in the twin" in result.stderr


def test_a_document_run_by_an_agent_too_old_for_env_var_parameters_says_so(nodes: Nodes) -> None:
    # SSM Agent before 3.3.2746.0 exports no SSM_* variable for interpolationType ENV_VAR parameters
    instance = nodes.add("worker")
    result = nodes.run_env(instance, "join-worker", {})
    (line,) = result.stdout.splitlines()
    assert result.exit_code == 2
    assert '"error":"ssm-agent-too-old"' in line and "3.3.2746.0" in line
