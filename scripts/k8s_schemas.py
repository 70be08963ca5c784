"""Write the JSON schemas kubeconform validates LiveTag's manifests against, from pinned sources only.

Two sources, both installed by ``scripts/install_k8s_tools.sh`` (README command 2):

- **Kubernetes**: the strict OpenAPI-derived schemas shipped in the ``kubernetes-validate`` wheel
  (``kubernetes_validate/kubernetes-json-schema/v<version>-local-strict``). Their ``$ref`` point at a
  shared ``/api/_definitions.json``; kubeconform wants one self-contained file per kind, so each kind's
  file is written with the definitions it reaches (transitively) under ``$defs``.
- **KEDA**: the CustomResourceDefinitions in the KEDA Go module at the pinned version
  (``config/crd/bases/*.yaml``). Each served version's ``openAPIV3Schema`` becomes a JSON schema the
  way kubeconform's ``openapi2jsonschema`` does it: ``x-kubernetes-int-or-string`` accepts a string or
  an integer, ``nullable`` adds ``null``, and every object that lists its properties refuses others
  (strict) unless it says ``x-kubernetes-preserve-unknown-fields``.

Layout written under ``--out`` (the ``-schema-location`` templates of ``scripts/validate_k8s.py``)::

    kubernetes/v1.30.0-standalone-strict/deployment-apps-v1.json
    crds/keda.sh/scaledobject_v1alpha1.json

Usage::

    python scripts/k8s_schemas.py --kubernetes-version 1.30.0 --crds DIR/config/crd/bases --out .tools/schemas
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]
DEFINITIONS_REF = "/api/_definitions.json#/$defs/"
LOCAL_REF = "#/$defs/"  # how the definitions file refers to its own entries


def _definition_name(ref: object) -> str | None:
    """The shared definition a ``$ref`` names (from a kind's file or from the definitions file)."""
    if isinstance(ref, str):
        for prefix in (DEFINITIONS_REF, LOCAL_REF):
            if ref.startswith(prefix):
                return ref[len(prefix):]
    return None


def kubernetes_source(version: str) -> Path:
    """The strict schema folder of ``kubernetes-validate`` for ``version`` (e.g. ``1.30.0``)."""
    import kubernetes_validate

    folder = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{version}-local-strict"
    if not folder.is_dir():
        raise FileNotFoundError(f"kubernetes-validate has no strict schemas for Kubernetes {version} ({folder})")
    return folder


def _refs(node: Any) -> set[str]:
    """Names of the shared definitions ``node`` refers to directly."""
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            name = _definition_name(item.get("$ref"))
            if name is not None:
                found.add(name)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _local_refs(node: Any) -> Any:
    """``node`` with every shared-definition ``$ref`` pointing into the document's own ``$defs``."""
    if isinstance(node, dict):
        out = {k: _local_refs(v) for k, v in node.items()}
        name = _definition_name(out.get("$ref"))
        if name is not None:
            out["$ref"] = LOCAL_REF + name
        return out
    if isinstance(node, list):
        return [_local_refs(v) for v in node]
    return node


def standalone(schema: Obj, definitions: dict[str, Obj]) -> Obj:
    """One kind's schema with the definitions it reaches bundled under ``$defs``."""
    needed: set[str] = set()
    todo = _refs(schema)
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        todo |= _refs(definitions[name]) - needed
    out = _local_refs({k: v for k, v in schema.items() if k != "$id"})
    if needed:
        out["$defs"] = {name: _local_refs(definitions[name]) for name in sorted(needed)}
    return out


def write_kubernetes(version: str, out: Path) -> int:
    """Write every kind of Kubernetes ``version`` as a standalone strict schema; returns the count."""
    source = kubernetes_source(version)
    definitions = json.loads((source / "_definitions.json").read_text(encoding="utf-8"))["$defs"]
    target = out / "kubernetes" / f"v{version}-standalone-strict"
    target.mkdir(parents=True, exist_ok=True)
    count = 0
    for path in sorted(source.glob("*.json")):
        if path.name.startswith("_") or path.name == "all.json":
            continue
        schema = json.loads(path.read_text(encoding="utf-8"))
        (target / path.name).write_text(json.dumps(standalone(schema, definitions)), encoding="utf-8")
        count += 1
    return count


def crd_to_json_schema(node: Any) -> Any:
    """An OpenAPI v3 structural schema (a CRD version's ``openAPIV3Schema``) as a strict JSON schema."""
    if isinstance(node, list):
        return [crd_to_json_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: Obj = {k: crd_to_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    out.pop("nullable", None)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "string"}, {"type": "integer"}]
    elif node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if "properties" in out and "additionalProperties" not in out and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def write_crds(crd_folder: Path, out: Path) -> list[Path]:
    """Write one schema per served version of every CRD in ``crd_folder``; returns the files written."""
    written: list[Path] = []
    files = sorted(crd_folder.glob("*.yaml"))
    if not files:
        raise FileNotFoundError(f"no CRD YAML files in {crd_folder}")
    for path in files:
        for crd in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = version.get("schema", {}).get("openAPIV3Schema")
                if not version.get("served", True) or schema is None:
                    continue
                converted = crd_to_json_schema(copy.deepcopy(schema))
                converted["$schema"] = "http://json-schema.org/draft-07/schema#"
                properties = converted.setdefault("properties", {})
                properties["apiVersion"] = {"type": "string", "enum": [f"{group}/{version['name']}"]}
                properties["kind"] = {"type": "string", "enum": [kind]}
                target = out / "crds" / group / f"{kind.lower()}_{version['name']}.json"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(json.dumps(converted, indent=1), encoding="utf-8")
                written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write kubeconform schemas for Kubernetes and the KEDA CRDs.")
    parser.add_argument("--kubernetes-version", default="1.30.0", help="full version, e.g. 1.30.0")
    parser.add_argument("--crds", type=Path, action="append", default=[], help="a folder of CRD YAML files (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="schema root (kubernetes/ and crds/ below it)")
    args = parser.parse_args(argv)
    try:
        kinds = write_kubernetes(args.kubernetes_version, args.out)
        crds = [path for folder in args.crds for path in write_crds(folder, args.out)]
    except (FileNotFoundError, KeyError, yaml.YAMLError) as exc:
        print(f"k8s_schemas: error: {exc}", file=sys.stderr)
        return 1
    print(f"{kinds} Kubernetes {args.kubernetes_version} kinds and {len(crds)} CRD versions written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
