"""A Terraform configuration read with python-hcl2 into blocks whose expressions stay parse trees.

What Terraform evaluates (values, references, validations) is read from Terraform's own plan
(twin/terraform/plan.py). This reader serves what a plan does not carry: the text as written, for the
README's tables (a variable's type expression) and the documentation checks (every variable and output
described, the required versions). It parses every *.tf file of a directory (hcl2's Lark grammar) and
indexes the top-level blocks the way Terraform does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import hcl2
from lark import Token, Tree

REPO_ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO_ROOT / "terraform"
EXAMPLE_DIRS = (TERRAFORM_DIR / "examples" / "complete",)


def is_noise(node: object) -> bool:
    """Tokens (punctuation, keywords) and newline/comment trees carry no meaning for evaluation."""
    return isinstance(node, Token) or (isinstance(node, Tree) and node.data == "new_line_or_comment")


def children(tree: Tree) -> list[Tree]:
    return [child for child in tree.children if not is_noise(child)]


def string_literal(tree: Tree) -> str | None:
    """The text of a string expression without interpolations, else None."""
    while isinstance(tree, Tree) and tree.data == "expr_term" and len(children(tree)) == 1:
        tree = children(tree)[0]
    if not (isinstance(tree, Tree) and tree.data == "string"):
        return None
    text = []
    for part in children(tree):
        token = part.children[0]
        if not isinstance(token, Token) or token.type != "STRING_CHARS":
            return None
        text.append(unescape(str(token)))
    return "".join(text)


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def unescape(text: str) -> str:
    """HCL string escapes: \\n \\r \\t \\" \\\\ and \\uNNNN / \\UNNNNNNNN."""
    out, index = [], 0
    while index < len(text):
        char = text[index]
        if char != "\\":
            out.append(char)
            index += 1
            continue
        escape = text[index + 1]
        if escape in _ESCAPES:
            out.append(_ESCAPES[escape])
            index += 2
        elif escape in "uU":
            width = 4 if escape == "u" else 8
            out.append(chr(int(text[index + 2 : index + 2 + width], 16)))
            index += 2 + width
        else:
            raise ValueError(f"unknown escape \\{escape} in {text!r}")
    return "".join(out)


def _label(node: Tree) -> str:
    if node.data == "identifier":
        return str(node.children[0])
    literal = string_literal(node)
    if literal is None:
        raise ValueError(f"block label is not a plain string: {node}")
    return literal


@dataclass
class Block:
    type: str
    labels: tuple[str, ...]
    attributes: dict[str, Tree]
    blocks: list[Block]
    file: Path

    def blocks_of(self, block_type: str) -> list[Block]:
        return [block for block in self.blocks if block.type == block_type]


def parse_body(body: Tree, file: Path) -> tuple[dict[str, Tree], list[Block]]:
    attributes: dict[str, Tree] = {}
    blocks: list[Block] = []
    for node in children(body):
        if node.data == "attribute":
            name_node, expression = children(node)
            name = str(name_node.children[0])
            if name in attributes:
                raise ValueError(f"{file}: attribute {name} set twice")
            attributes[name] = expression
        elif node.data == "block":
            parts = children(node)
            block_type = str(parts[0].children[0])
            labels = tuple(_label(label) for label in parts[1:-1])
            inner_attributes, inner_blocks = parse_body(parts[-1], file)
            blocks.append(Block(block_type, labels, inner_attributes, inner_blocks, file))
    return attributes, blocks


def parse_file(path: Path) -> list[Block]:
    tree = hcl2.parses_to_tree(path.read_text())
    (body,) = children(tree)
    attributes, blocks = parse_body(body, path)
    if attributes:
        raise ValueError(f"{path}: top-level attributes are not Terraform: {sorted(attributes)}")
    return blocks


@dataclass
class Configuration:
    """One Terraform module: the *.tf files of one directory."""

    directory: Path
    files: list[Path] = field(default_factory=list)
    variables: dict[str, Block] = field(default_factory=dict)
    outputs: dict[str, Block] = field(default_factory=dict)
    locals: dict[str, Tree] = field(default_factory=dict)
    resources: dict[tuple[str, str], Block] = field(default_factory=dict)
    data: dict[tuple[str, str], Block] = field(default_factory=dict)
    modules: dict[str, Block] = field(default_factory=dict)
    other_blocks: list[Block] = field(default_factory=list)

    def all_blocks(self) -> list[Block]:
        return [
            *self.variables.values(),
            *self.outputs.values(),
            *self.resources.values(),
            *self.data.values(),
            *self.modules.values(),
            *self.other_blocks,
        ]


def _add_unique(index: dict, key: object, value: object, what: str) -> None:
    if key in index:
        raise ValueError(f"{what} {key} declared twice")
    index[key] = value


@cache
def load_configuration(directory: Path = TERRAFORM_DIR) -> Configuration:
    """Parsed once per directory per test session (callers must not modify it)."""
    configuration = Configuration(directory=directory)
    for path in sorted(directory.glob("*.tf")):
        configuration.files.append(path)
        for block in parse_file(path):
            if block.type == "variable":
                _add_unique(configuration.variables, block.labels[0], block, "variable")
            elif block.type == "output":
                _add_unique(configuration.outputs, block.labels[0], block, "output")
            elif block.type == "locals":
                for name, expression in block.attributes.items():
                    _add_unique(configuration.locals, name, expression, "local")
            elif block.type == "resource":
                _add_unique(configuration.resources, block.labels, block, "resource")
            elif block.type == "data":
                _add_unique(configuration.data, block.labels, block, "data source")
            elif block.type == "module":
                _add_unique(configuration.modules, block.labels[0], block, "module")
            else:
                configuration.other_blocks.append(block)
    return configuration
