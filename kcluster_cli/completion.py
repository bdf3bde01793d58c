"""`kcluster completion bash|zsh`: a completion script made from the command's own parser, so it offers
exactly the commands and options `kcluster --help` shows. zsh runs the same script through bashcompinit."""

from __future__ import annotations

import argparse
import shlex

_BASH = """# kcluster completion for bash; load with: source <(kcluster completion bash)
_kcluster_complete() {{
    local current="${{COMP_WORDS[COMP_CWORD]}}" command="" word
    for word in "${{COMP_WORDS[@]:1:COMP_CWORD-1}}"; do
        case "$word" in -*) ;; *) command="$word"; break ;; esac
    done
    case "$command" in
{cases}
        *) COMPREPLY=($(compgen -W {commands} -- "$current")) ;;
    esac
}}
complete -o default -F _kcluster_complete kcluster
"""
_ZSH_PREFIX = "# kcluster completion for zsh; load with: source <(kcluster completion zsh)\n" + (
    "autoload -U +X bashcompinit && bashcompinit\n"
)


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    subcommands = _subcommands(parser)
    cases = "\n".join(
        f'        {name}) COMPREPLY=($(compgen -W {shlex.quote(" ".join(options))} -- "$current")) ;;'
        for name, options in sorted(subcommands.items())
    )
    text = _BASH.format(cases=cases, commands=shlex.quote(" ".join(sorted(subcommands))))
    return _ZSH_PREFIX + text.split("\n", 1)[1] if shell == "zsh" else text


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for action in parser._actions:  # argparse keeps its sub-parsers here and nowhere public
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sorted(
                    option for sub_action in sub._actions for option in sub_action.option_strings
                )
    return found
