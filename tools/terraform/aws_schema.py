"""The hashicorp/aws provider's schema, rebuilt from the CDK for Terraform bindings generated from it.

PyPI's `cdktf-cdktf-provider-aws` 20.0.0 is generated from hashicorp/aws 5.99.1. Its jsii assembly
(`_jsii/provider-aws@20.0.0.jsii.tgz`) holds, per resource and data source, the generated JavaScript
(lib/<name>/index.js) and the type assembly (.jsii). Together they give every argument's Terraform name,
its type (string, number, bool, list/set/map of those), nested blocks with their nesting mode and
maximum of one, which arguments are required (the .jsii's `optional` flag), and the computed-only
attributes (getters with no argument behind them).

What the bindings do not record, and so this schema cannot hold: which optional arguments are also
computed (every optional argument is served as optional+computed, the permissive reading), sensitivity,
deprecation and the provider's own value validation.

Output: a JSON document in the shape of `terraform providers schema -json` for one provider:
{"provider": {block}, "resource_schemas": {type: {"version": 0, "block": {...}}},
 "data_source_schemas": {...}}; a block is {"attributes": {name: {"type": cty, "required"|"optional"|
"computed": true}}, "block_types": {name: {"nesting_mode", "min_items", "max_items", "block"}}}.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import tarfile
import zipfile
from pathlib import Path

SCALARS = {"string": "string", "number": "number", "boolean": "bool", "any": "dynamic"}
COLLECTIONS = {
    "stringList": "string",
    "numberList": "number",
    "booleanList": "bool",
    "stringMap": "string",
    "numberMap": "number",
    "booleanMap": "bool",
    "stringMapMap": ["map", "string"],
}
GETTERS = {
    "String": "string",
    "Number": "number",
    "Boolean": "bool",
    "StringMap": ["map", "string"],
    "NumberMap": ["map", "number"],
    "BooleanMap": ["map", "bool"],
    "List": ["list", "string"],
    "NumberList": ["list", "number"],
    "Any": "dynamic",
}
MAP_CLASSES = {"StringMap": ["map", "string"], "NumberMap": ["map", "number"], "BooleanMap": ["map", "bool"]}

HCL_ATTR = re.compile(
    r'^\s+"?([a-z0-9_]+)"?: \{\n\s+value: (.*?),\n\s+isBlock: (true|false),\n\s+type: "(\w+)",\n'
    r'\s+storageClassType: "(\w+)",\n\s+\},?$',
    re.M,
)
HCL_FUNCTION = re.compile(r"^function (\w+)ToHclTerraform\(struct\) \{\n(.*?)^\}", re.M | re.S)
CLASS = re.compile(r"^class (\w+) extends ([\w.]+) \{\n(.*?)^\}\nexports\.", re.M | re.S)
GETTER = re.compile(r"^    get (\w+)\(\) \{\n\s+return (.*?);\n    \}", re.M)
FIELD = re.compile(r'this\._(\w+) = new ([\w.]+)\(this, "([a-z0-9_]+)"(?:, (true|false))?\)')
RESOURCE_TYPE = re.compile(r'^(\w+)\.tfResourceType = "([a-z0-9_]+)";', re.M)


class Module:
    """One generated file (a resource's or data source's lib/<name>/index.js)."""

    def __init__(self, source: str, optional: dict[str, dict[str, tuple[bool, bool]]]):
        self.optional = optional
        self.classes = {m.group(1): (m.group(2), m.group(3)) for m in CLASS.finditer(source)}
        self.hcl = {}
        for m in HCL_FUNCTION.finditer(source):
            name = m.group(1)[0].upper() + m.group(1)[1:]
            self.hcl[name] = list(HCL_ATTR.finditer(m.group(2)))

    def resource(self, class_name: str) -> dict:
        body = self.classes[class_name][1]
        start = body.index("synthesizeHclAttributes()")
        attrs = list(HCL_ATTR.finditer(body[start:]))
        return self.block(attrs, class_name + "Config", class_name)

    def block(self, hcl_attrs: list[re.Match], struct: str, output_class: str | None) -> dict:
        optional = self.optional.get(struct, {})
        block: dict = {"attributes": {}, "block_types": {}}
        for m in hcl_attrs:
            name, value, is_block, kind, storage = m.groups()
            prop = re.search(r"(?:struct\.|this\._)(\w+)", value)
            # (optional, a single struct rather than a list of them: a block of at most one)
            is_optional, single = optional.get(prop.group(1), (True, False)) if prop else (True, False)
            if is_block == "true":
                element = storage.removesuffix("List").removesuffix("OutputReference")
                nested = self.block(self.hcl.get(element, []), element, element + "OutputReference")
                mode = "single" if kind == "struct" else ("set" if kind == "set" else "list")
                entry = {"nesting_mode": mode, "block": nested}
                if mode != "single":
                    entry["min_items"] = 0 if is_optional else 1
                    entry["max_items"] = 1 if single else 0
                block["block_types"][name] = entry
                continue
            cty = self.attr_type(kind, storage)
            if cty is None:
                continue
            flags = {"optional": True, "computed": True} if is_optional else {"required": True}
            block["attributes"][name] = {"type": cty, **flags}
        if output_class:
            for name, cty in self.computed(output_class).items():
                if name not in block["attributes"] and name not in block["block_types"]:
                    block["attributes"][name] = {"type": cty, "computed": True}
        return block

    def attr_type(self, kind: str, storage: str):
        if kind == "simple":
            return SCALARS.get(storage)
        if storage in COLLECTIONS:
            wrap = {"list": "list", "set": "set", "map": "map"}.get(kind, "list")
            return [wrap, COLLECTIONS[storage]]
        # An attribute with a nested type (plugin framework): an object, or a list/set/map of them.
        element = storage.removesuffix("List").removesuffix("Map").removesuffix("OutputReference")
        if element not in self.hcl:
            return None
        fields = {m.group(1): self.attr_type(m.group(4), m.group(5)) or "dynamic" for m in self.hcl[element]}
        obj = ["object", fields]
        return obj if kind in ("struct", "simple") else [{"list": "list", "set": "set"}.get(kind, "map"), obj]

    def computed(self, class_name: str) -> dict:
        """The attributes a class's getters read: name -> cty type."""
        if class_name not in self.classes:
            return {}
        body = self.classes[class_name][1]
        fields = {m.group(1): m.groups()[1:] for m in FIELD.finditer(body)}
        found = {}
        for m in GETTER.finditer(body):
            getter, expr = m.groups()
            if getter.endswith("Input"):
                continue
            g = re.fullmatch(r"(cdktf\.Fn\.tolist\()?this\.get(\w+?)Attribute\('([a-z0-9_]+)'\)\)?", expr)
            if g:
                cty = GETTERS.get(g.group(2))
                if cty is not None:
                    if g.group(1) and isinstance(cty, list):
                        cty = ["set", cty[1]]
                    found[g.group(3)] = cty
                continue
            f = re.fullmatch(r"this\._(\w+)", expr)
            if not f or f.group(1) not in fields:
                continue
            cls, name, wraps_set = fields[f.group(1)]
            cls = cls.removeprefix("cdktf.")
            if cls in MAP_CLASSES:
                found[name] = MAP_CLASSES[cls]
            elif cls.endswith("List"):
                element = self.computed(cls.removesuffix("List") + "OutputReference")
                found[name] = ["set" if wraps_set == "true" else "list", ["object", element]]
            elif cls.endswith("OutputReference"):
                found[name] = ["list", ["object", self.computed(cls)]]
        return found


def _has_dynamic(cty) -> bool:
    return (
        cty == "dynamic"
        or (isinstance(cty, list) and any(_has_dynamic(c) for c in cty[1:]))
        or (isinstance(cty, dict) and any(_has_dynamic(c) for c in cty.values()))
    )


def drop_dynamic_in_sets(block: dict, in_set: bool = False) -> None:
    """Terraform refuses a dynamic type under a set block; the bindings write `any` where the
    generator gave up on deep recursion (aws_wafv2_*'s rule statements): those arguments are left out."""
    if in_set:
        for name in [n for n, a in block["attributes"].items() if _has_dynamic(a["type"])]:
            del block["attributes"][name]
    for nested in block["block_types"].values():
        drop_dynamic_in_sets(nested["block"], in_set or nested["nesting_mode"] == "set")


def build(wheel: Path) -> dict:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".jsii.tgz"))
        data = zf.read(name)
    sources: dict[str, str] = {}
    assembly = None
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar:
            if member.name == "package/.jsii":
                assembly = json.load(tar.extractfile(member))
            elif member.name.startswith("package/lib/") and member.name.endswith("/index.js"):
                sources[member.name] = tar.extractfile(member).read().decode()
    assert assembly is not None, "no .jsii in the assembly"
    optional: dict[str, dict[str, tuple[bool, bool]]] = {}
    for fqn, t in assembly["types"].items():
        if t.get("kind") == "interface":
            optional[fqn.rsplit(".", 1)[1]] = {
                p["name"]: (bool(p.get("optional")), "fqn" in p["type"]) for p in t.get("properties", [])
            }
    out: dict = {"provider": None, "resource_schemas": {}, "data_source_schemas": {}}
    for _path, source in sorted(sources.items()):
        types = RESOURCE_TYPE.findall(source)
        if not types:
            continue
        module = Module(source, optional)
        for class_name, tf_type in types:
            block = module.resource(class_name)
            drop_dynamic_in_sets(block)
            if tf_type == "aws":
                out["provider"] = {"version": 0, "block": block}
            elif class_name.startswith("DataAws"):
                out["data_source_schemas"][tf_type] = {"version": 0, "block": block}
            else:
                out["resource_schemas"][tf_type] = {"version": 0, "block": block}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="cdktf_cdktf_provider_aws-*.whl")
    parser.add_argument("output", type=Path)
    args = parser.parse_args(argv)
    schema = build(args.wheel)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".tmp")
    tmp.write_text(json.dumps(schema, sort_keys=True))
    tmp.replace(args.output)
    print(
        f"{args.output}: {len(schema['resource_schemas'])} resources, "
        f"{len(schema['data_source_schemas'])} data sources",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
