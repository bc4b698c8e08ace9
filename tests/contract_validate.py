"""Validates payloads against docs/contract's JSON Schemas (2020-12) with the `jsonschema` package;
with `--asyncapi META DOCUMENT`, the AsyncAPI document against AsyncAPI's own meta-schema instead.

Reads from stdin a JSON list of {"label", "schema", "instance"}: `schema` is a path under docs/contract,
optionally with a `#/$defs/...` fragment. Every schema file is first checked against the 2020-12
meta-schema. Prints one line per failure (label, schema, the validator's message and where) and exits 1
if there was any; tests/contract.rs runs it.
"""
import json
import pathlib
import sys

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

if sys.argv[1] == "--asyncapi":
    # The AsyncAPI document against the official AsyncAPI meta-schema (draft-07, its definitions
    # embedded with their own $id).
    from jsonschema import Draft7Validator
    from referencing.jsonschema import DRAFT7

    meta = json.loads(pathlib.Path(sys.argv[2]).read_text())
    document = json.loads(pathlib.Path(sys.argv[3]).read_text())
    registry = Registry().with_resources(
        (d["$id"], Resource.from_contents(d, default_specification=DRAFT7))
        for d in meta.get("definitions", {}).values()
        if isinstance(d, dict) and "$id" in d
    )
    errors = list(Draft7Validator(meta, registry=registry).iter_errors(document))
    for error in errors:
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        print(f"{sys.argv[3]} at {where}: {error.message[:400]}")
    print(f"AsyncAPI document checked against {sys.argv[2]}: {len(errors)} errors")
    sys.exit(1 if errors else 0)

root = pathlib.Path(sys.argv[1])
schemas = {}
for path in sorted(root.rglob("*.schema.json")):
    schema = json.loads(path.read_text())
    Draft202012Validator.check_schema(schema)
    schemas[path.relative_to(root).as_posix()] = schema
registry = Registry().with_resources(
    (s["$id"], Resource.from_contents(s, default_specification=DRAFT202012)) for s in schemas.values()
)

failures = 0
cases = json.load(sys.stdin)
for case in cases:
    file, _, fragment = case["schema"].partition("#")
    if file not in schemas:
        print(f"{case['label']}: no schema {file} in {root}")
        failures += 1
        continue
    target = {"$ref": schemas[file]["$id"] + ("#" + fragment if fragment else "")}
    validator = Draft202012Validator(target, registry=registry)
    for error in validator.iter_errors(case["instance"]):
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        print(f"{case['label']}: does not match {case['schema']} at {where}: {error.message}")
        failures += 1
print(f"{len(cases)} payloads checked against {len(schemas)} schemas, {failures} failures")
sys.exit(1 if failures else 0)
