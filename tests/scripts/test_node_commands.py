"""Issue 17: a twin sandbox offers exactly the commands an instance has (twin/node/commands.py): the
AMI's and those provisioning installs. The provisioned part is checked here against the provisioning
script itself, so the list cannot drift from it; a script calling anything else fails in the twin as on
the instance."""

from __future__ import annotations

import os
import re

from tests.scripts.conftest import Nodes
from twin.node.commands import AMI_COMMANDS, PROVISIONED, offered_commands
from twin.terraform.runner import TERRAFORM_DIR

PROVISION = TERRAFORM_DIR / "user_data/provision.sh.tftpl"


def _installed_by_provisioning() -> set[str]:
    """Packages the provisioning script installs: apt-get install (pinned or not), snap install, and
    the containerd release archive."""
    text = re.sub(r"\\\n\s*", " ", PROVISION.read_text())
    packages: set[str] = set()
    for line in text.splitlines():
        apt = re.search(r'"\$\$\{APT_GET\[@\]\}" install (.*)', line)
        if apt:
            words = [w.strip('"') for w in apt.group(1).split() if not w.startswith("-")]
            packages |= {w.split("=", 1)[0] for w in words}
        snap = re.search(r"\bsnap install (\S+)", line)
        if snap:
            packages.add(snap.group(1))
    if "containerd/containerd/releases/download/" in text and 'CONTAINERD_ARCHIVE="containerd-' in text:
        packages.add("containerd")
    return packages


def test_the_provisioned_commands_are_those_of_the_packages_provisioning_installs() -> None:
    assert set(PROVISIONED) == _installed_by_provisioning()


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
