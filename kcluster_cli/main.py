"""The `kcluster` command line: global options, one sub-command per operator question, errors that say
what to do. Sub-commands take an already open boto3 session when given one (the twin's `--then`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import IO, Any

import boto3

from kcluster_cli import backups, completion, inventory, kubeconfig, operator_views
from kcluster_cli.aws import Cluster, find_cluster, open_session
from kcluster_cli.errors import OperatorError

_EXAMPLES = {
    "status": (
        "examples:\n"
        "  kcluster status --cluster demo                      # tables; exit 0 valid, 2 not valid\n"
        "  kcluster status --cluster demo -o json | jq .validation_errors\n"
        "  kcluster status --cluster demo --wait 10m           # until valid, at most 10 minutes"
    ),
    "events": (
        "examples:\n"
        "  kcluster events --cluster demo                      # the last hour, oldest first\n"
        "  kcluster events --cluster demo --since 30m --node i-0123456789abcdef0\n"
        "  kcluster events --cluster demo --since 1d -o json"
    ),
    "completion": (
        "examples:\n"
        "  source <(kcluster completion bash)                  # this shell; add it to ~/.bashrc to keep it\n"
        "  kcluster completion zsh > ~/.zfunc/_kcluster"
    ),
    "kubeconfig": (
        "examples:\n"
        "  kcluster kubeconfig --cluster demo                 # merge into ~/.kube/config, context 'demo'\n"
        "  kcluster kubeconfig --cluster demo --file demo.conf\n"
        "  kcluster kubeconfig --cluster demo --stdout | kubectl --kubeconfig /dev/stdin get nodes"
    ),
    "inventory": (
        "examples:\n"
        "  kcluster inventory --cluster demo --list\n"
        "  KCLUSTER_CLUSTER=demo ansible-inventory -i inventory.sh --graph   # inventory.sh: exec kcluster "
        'inventory "$@"\n'
        "  kcluster inventory --cluster demo --host ip-10-0-1-23"
    ),
}


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--cluster",
        default=os.environ.get("KCLUSTER_CLUSTER"),
        help="the cluster's name (Terraform's cluster_name); default $KCLUSTER_CLUSTER",
    )
    common.add_argument("--region", default=None, help="AWS region; default from the credential chain")
    common.add_argument("--profile", default=None, help="AWS profile; default from the credential chain")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kcluster",
        description="Operate a kcluster Kubernetes cluster on AWS.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common_options()

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help_text,
            description=help_text,
            parents=[common],
            epilog=_EXAMPLES.get(name),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    config = add("kubeconfig", "write the cluster's admin kubeconfig (0600) where you ask")
    where = config.add_mutually_exclusive_group()
    where.add_argument(
        "--kubeconfig", type=Path, help="merge into this file (default $KUBECONFIG or ~/.kube/config)"
    )
    where.add_argument("--file", type=Path, help="write it alone to this file")
    where.add_argument("--stdout", action="store_true", help="print it (it holds cluster-admin credentials)")
    config.add_argument("--no-switch", action="store_true", help="merge without changing current-context")
    config.set_defaults(run=_kubeconfig)

    hosts = add("inventory", "an Ansible dynamic inventory of the cluster's nodes (through SSM, not SSH)")
    which = hosts.add_mutually_exclusive_group(required=True)
    which.add_argument("--list", action="store_true", help="every group and host (what Ansible asks first)")
    which.add_argument("--host", metavar="NAME", help="one host's variables")
    hosts.set_defaults(run=_inventory)

    operator_views.add_commands(add)
    backups.add_commands(commands, common)
    shells = commands.add_parser(
        "completion",
        help="print a shell completion script",
        description="Print a completion script for bash or zsh.",
        epilog=_EXAMPLES["completion"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    shells.add_argument("shell", choices=("bash", "zsh"))
    shells.set_defaults(run=lambda args: _completion(parser, args), standalone=True)

    _add_development_commands(commands)
    return parser


def _add_development_commands(commands: Any) -> None:
    """On a development tree the local twin adds its commands; an operator's install has no twin."""
    try:
        from twin import cli as twin_cli
    except ImportError:
        return
    twin_cli.add_commands(commands)


def run(
    argv: list[str] | None = None,
    *,
    session: boto3.Session | None = None,
    stdout: IO[str] | None = None,
) -> int:
    args = build_parser().parse_args(argv)
    out = stdout or sys.stdout
    try:
        # The twin's commands and `completion` need no cluster.
        if getattr(args, "twin_command", False) or getattr(args, "standalone", False):
            return int(args.run(args))
        return int(args.run(args, _cluster_from(args, session), out))
    except OperatorError as error:
        print(f"kcluster: {error}", file=sys.stderr)
        return error.exit_code


def main(argv: list[str] | None = None) -> int:
    return run(argv)


def _cluster_from(args: argparse.Namespace, session: boto3.Session | None) -> Cluster:
    if not args.cluster:
        raise OperatorError("which cluster? pass --cluster NAME or set KCLUSTER_CLUSTER")
    return find_cluster(session or open_session(args.profile, args.region), args.cluster)


def _completion(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    sys.stdout.write(completion.script(parser, args.shell))
    return 0


def _kubeconfig(args: argparse.Namespace, cluster: Cluster, out: IO[str]) -> int:
    ours = kubeconfig.renamed(kubeconfig.fetch(cluster), cluster.name)
    if args.stdout:
        import yaml

        out.write(yaml.safe_dump(ours, default_flow_style=False, sort_keys=False))
        return 0
    if args.file:
        kubeconfig.write_owner_only(args.file, ours)
        print(f"wrote the admin kubeconfig of {cluster.name} to {args.file} (mode 0600)", file=sys.stderr)
        return 0
    path = args.kubeconfig or kubeconfig.default_path()
    merged = kubeconfig.merge(kubeconfig.read_kubeconfig(path), ours, switch=not args.no_switch)
    kubeconfig.write_owner_only(path, merged)
    current = merged["current-context"]
    print(f"context {cluster.name!r} in {path} (mode 0600); current context: {current}", file=sys.stderr)
    return 0


def _inventory(args: argparse.Namespace, cluster: Cluster, out: IO[str]) -> int:
    document = inventory.host(cluster, args.host) if args.host else inventory.build(cluster)
    out.write(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")
    return 0
