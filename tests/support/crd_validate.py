"""Checks custom resources against their CustomResourceDefinition's openAPIV3Schema, as an
API server with strict field validation (kubectl's default) would, for what kubernetes-validate
cannot know: python3 crd_validate.py --crd CRD.yaml [--crd CRD.yaml...] FILE...

Strict, as kubernetes-validate --strict is: a field the schema does not name is an error
(the API server prunes or refuses it). `metadata` is checked as ObjectMeta, with
kubernetes-validate's own strict schema of it. One line per resource, `passed` or
`failed: PATH: WHY`; the exit status is 1 if any failed. CEL rules
(x-kubernetes-validations) are not evaluated: each resource's line says how many were not.
"""

import argparse
import json
import sys
from importlib import resources

import jsonschema
import referencing
import yaml

OBJECT_META = (
    "https://kubernetes.io/api/_definitions.json"
    "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
)


def strict(schema, counts):
    """The schema with unnamed fields refused, as structural schemas prune them."""
    if isinstance(schema, list):
        return [strict(s, counts) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "x-kubernetes-validations":
            counts["cel"] += len(value)
        elif key in ("properties", "patternProperties"):
            out[key] = {name: strict(s, counts) for name, s in value.items()}
        elif key in ("default", "example", "enum"):
            out[key] = value
        else:
            out[key] = strict(value, counts)
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def kubernetes_definitions():
    """kubernetes-validate's strict definitions of the newest Kubernetes it knows."""
    base = resources.files("kubernetes_validate") / "kubernetes-json-schema"
    newest = max(
        (d.name for d in base.iterdir() if d.name.endswith("-local-strict")),
        key=lambda n: tuple(int(p) for p in n[1:].split("-")[0].split(".")),
    )
    return json.loads((base / newest / "_definitions.json").read_text())


def validators(crd):
    """(apiVersion, kind) -> (validator, CEL rules not evaluated), for every served version."""
    spec = crd["spec"]
    registry = referencing.Resource.from_contents(kubernetes_definitions()) @ referencing.Registry()
    out = {}
    for version in spec["versions"]:
        if not version.get("served", False):
            continue
        counts = {"cel": 0}
        schema = strict(version["schema"]["openAPIV3Schema"], counts)
        schema["properties"]["metadata"] = {"$ref": OBJECT_META}
        schema.setdefault("required", [])
        schema["required"] = sorted(set(schema["required"]) | {"apiVersion", "kind", "metadata"})
        schema["properties"]["apiVersion"] = {"const": f"{spec['group']}/{version['name']}"}
        schema["properties"]["kind"] = {"const": spec["names"]["kind"]}
        validator = jsonschema.Draft202012Validator(schema, registry=registry)
        out[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = (
            validator,
            counts["cel"],
        )
    return out


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crd", action="append", required=True, help="a CRD (repeat)")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv[1:])
    known = {}
    for path in args.crd:
        with open(path) as f:
            known.update(validators(yaml.safe_load(f)))
    defined = ", ".join(args.crd)
    failed = 0
    for path in args.files:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for doc in docs:
            key = (doc.get("apiVersion"), doc.get("kind"))
            name = f"{str(doc.get('kind')).lower()}/{(doc.get('metadata') or {}).get('name')}"
            if key not in known:
                print(f"{path}: {name}: failed: {key[0]} {key[1]} is not what {defined} defines")
                failed += 1
                continue
            validator, cel = known[key]
            errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
            if errors:
                failed += 1
                for e in errors:
                    where = ".".join(str(p) for p in e.absolute_path) or "(top)"
                    print(f"{path}: {name}: failed: {where}: {e.message}")
            else:
                print(f"{path}: {name}: passed ({cel} CEL rules not evaluated)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
