"""Render LiveTag's kustomize overlays and validate every object offline.

kustomize itself is not installable from PyPI, so this renders the subset of it that ``k8s/`` uses:

- ``resources``: YAML files, or folders holding a ``kustomization.yaml`` (rendered recursively);
- ``patches``: strategic-merge patches (``path`` or inline ``patch``, with an optional ``target`` of
  kind / name) and JSON 6902 patches (a list of ``add`` / ``replace`` / ``remove`` operations); lists
  merge by their Kubernetes merge key (containers and volumes by ``name``, volume mounts by
  ``mountPath``, ...), other lists are replaced, as kubectl's strategic merge does;
- ``namespace``, ``labels`` (``pairs`` with ``includeSelectors: false`` and ``includeTemplates``) and
  ``images`` (``newName`` / ``newTag`` / ``digest``).

Any other kustomization field is refused, so nothing is silently rendered differently from kustomize.

Validation: Kubernetes objects against the pinned Kubernetes JSON schemas of ``kubernetes-validate``
(strict: unknown fields fail), KEDA objects against the CRD schemas kept in ``k8s/schemas/``, then
LiveTag's own rules (probes, grace period, GPU requests, autoscaler targets, no literal secrets).

Usage::

    python scripts/validate_k8s.py                       # both overlays, Kubernetes 1.30
    python scripts/validate_k8s.py k8s/overlays/gpu --out rendered/   # also write the rendered YAML
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "k8s"
OVERLAYS = (K8S / "overlays" / "cpu", K8S / "overlays" / "gpu")
KUBERNETES_VERSION = "1.30"
KEDA_SCHEMAS = {
    "ScaledObject": K8S / "schemas" / "keda-scaledobject.json",
    "TriggerAuthentication": K8S / "schemas" / "keda-triggerauthentication.json",
}
SUPPORTED_FIELDS = {"apiVersion", "kind", "resources", "patches", "namespace", "labels", "images"}
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "env": "name",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "topologySpreadConstraints": "topologyKey",
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume",
                  "StorageClass", "PriorityClass", "ClusterTriggerAuthentication"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
#: Longest the inference / ingest drain may take on SIGTERM (batch + producer flush), seconds.
DRAIN_SECONDS = 30
Obj = dict[str, Any]


class RenderError(Exception):
    """The kustomization cannot be rendered by this subset renderer."""


# --------------------------------------------------------------------------------------------------
# rendering
def load_yaml_documents(path: Path) -> list[Obj]:
    """The non-empty YAML documents of ``path``."""
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def render(folder: Path) -> list[Obj]:
    """Render the kustomization in ``folder`` to a list of objects (resources in declaration order)."""
    kfile = folder / "kustomization.yaml"
    if not kfile.is_file():
        raise RenderError(f"{folder} has no kustomization.yaml")
    (kust,) = load_yaml_documents(kfile)
    unknown = sorted(set(kust) - SUPPORTED_FIELDS)
    if unknown:
        raise RenderError(f"{kfile}: fields {unknown} are not supported by this renderer")
    objects: list[Obj] = []
    for entry in kust.get("resources", []):
        target = (folder / entry).resolve()
        objects += render(target) if target.is_dir() else load_yaml_documents(target)
    for patch in kust.get("patches", []):
        apply_patch(objects, patch, folder)
    if "namespace" in kust:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj.setdefault("metadata", {})["namespace"] = kust["namespace"]
    for label_set in kust.get("labels", []):
        apply_labels(objects, label_set)
    for image in kust.get("images", []):
        apply_image(objects, image)
    return objects


def apply_patch(objects: list[Obj], patch: Obj, folder: Path) -> None:
    """Apply one ``patches`` entry (strategic merge or JSON 6902) to the matching objects."""
    if "path" in patch:
        docs = load_yaml_documents(folder / patch["path"])
        body: Any = docs[0] if len(docs) == 1 else docs
    elif "patch" in patch:
        body = yaml.safe_load(patch["patch"])
    else:
        raise RenderError(f"patch in {folder} has neither path nor patch")
    target = patch.get("target")
    if target is None:
        if not isinstance(body, dict):
            raise RenderError(f"a JSON 6902 patch in {folder} needs a target")
        target = {"kind": body.get("kind"), "name": body.get("metadata", {}).get("name")}
    matches = [o for o in objects if _matches(o, target)]
    if not matches:
        raise RenderError(f"patch {patch.get('path', '(inline)')} in {folder} matches no object: {target}")
    for obj in matches:
        if isinstance(body, list):
            apply_json6902(obj, body)
        else:
            patched = strategic_merge(obj, {k: v for k, v in body.items() if k not in ("apiVersion", "kind")})
            obj.clear()
            obj.update(patched)


def _matches(obj: Obj, target: Obj) -> bool:
    meta = obj.get("metadata", {})
    return all(
        (key == "kind" and obj.get("kind") == value)
        or (key == "name" and meta.get("name") == value)
        or (key == "namespace" and meta.get("namespace") == value)
        or (key in ("group", "version") and _api_part(obj, key) == value)
        for key, value in target.items()
    )


def _api_part(obj: Obj, part: str) -> str:
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    return group if part == "group" else version


def strategic_merge(base: Any, patch: Any, field: str = "") -> Any:
    """``patch`` merged into a copy of ``base``: maps recursively, merge-key lists by key, null deletes."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = strategic_merge(out[key], value, key)
            else:
                out[key] = copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        out_list = copy.deepcopy(base)
        index = {item.get(key): i for i, item in enumerate(out_list) if isinstance(item, dict)}
        for item in patch:
            if isinstance(item, dict) and item.get(key) in index:
                pos = index[item.get(key)]
                out_list[pos] = strategic_merge(out_list[pos], item)
            else:
                out_list.append(copy.deepcopy(item))
        return out_list
    return copy.deepcopy(patch)


def apply_json6902(obj: Obj, operations: list[Obj]) -> None:
    """Apply ``add`` / ``replace`` / ``remove`` operations (RFC 6902 paths, ``-`` appends)."""
    for op in operations:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")]
        parent: Any = obj
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        kind = op["op"]
        if isinstance(parent, list):
            pos = len(parent) if last == "-" else int(last)
            if kind == "add":
                parent.insert(pos, copy.deepcopy(op["value"]))
            elif kind == "replace":
                parent[pos] = copy.deepcopy(op["value"])
            elif kind == "remove":
                del parent[pos]
            else:
                raise RenderError(f"JSON 6902 op {kind!r} is not supported")
        elif kind in ("add", "replace"):
            if kind == "replace" and last not in parent:
                raise RenderError(f"replace of missing path {op['path']}")
            parent[last] = copy.deepcopy(op["value"])
        elif kind == "remove":
            del parent[last]
        else:
            raise RenderError(f"JSON 6902 op {kind!r} is not supported")


def pod_templates(obj: Obj) -> list[Obj]:
    """The pod templates of a workload (Deployment, Job, ...) or CronJob."""
    spec = obj.get("spec", {})
    if obj.get("kind") in WORKLOADS and "template" in spec:
        return [spec["template"]]
    if obj.get("kind") == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]]
    return []


def apply_labels(objects: list[Obj], label_set: Obj) -> None:
    """Add ``pairs`` to metadata labels (and pod templates with ``includeTemplates``); selectors untouched."""
    if label_set.get("includeSelectors", False):
        raise RenderError("labels with includeSelectors: true are not supported (selectors are immutable)")
    pairs = dict(label_set["pairs"])
    for obj in objects:
        obj.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
        if label_set.get("includeTemplates", False):
            for template in pod_templates(obj):
                template.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)


def containers_of(obj: Obj) -> list[Obj]:
    """Every container and init container of an object's pod templates."""
    out: list[Obj] = []
    for template in pod_templates(obj):
        spec = template.get("spec", {})
        out += spec.get("initContainers", []) + spec.get("containers", [])
    return out


def apply_image(objects: list[Obj], image: Obj) -> None:
    """Rewrite container images named ``image["name"]`` (tag / digest dropped before comparing)."""
    for obj in objects:
        for container in containers_of(obj):
            current = str(container.get("image", ""))
            name = re.sub(r"@.*$", "", current)
            tag = ""
            if re.search(r":[^/]+$", name):
                name, tag = name.rsplit(":", 1)
            if name != image["name"]:
                continue
            new = image.get("newName", name)
            if "digest" in image:
                container["image"] = f"{new}@{image['digest']}"
            else:
                new_tag = image.get("newTag", tag)
                container["image"] = f"{new}:{new_tag}" if new_tag else new


# --------------------------------------------------------------------------------------------------
# validation
def validate_schema(obj: Obj, kubernetes_version: str = KUBERNETES_VERSION) -> list[str]:
    """Schema errors of one object: KEDA kinds against k8s/schemas, the rest with kubernetes-validate."""
    import jsonschema

    label = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    if str(obj.get("apiVersion", "")).startswith("keda.sh/"):
        schema_path = KEDA_SCHEMAS.get(str(obj.get("kind")))
        if schema_path is None:
            return [f"{label}: no KEDA schema kept for kind {obj.get('kind')}"]
        schema = json.loads(schema_path.read_text(encoding="utf-8"))
        validator = jsonschema.Draft202012Validator(schema)
        return [f"{label}: {'.'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in validator.iter_errors(obj)]
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{label}: {'.'.join(map(str, exc.path)) or '<root>'}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"{label}: {exc.message}"]
    return []


def check_rules(objects: list[Obj]) -> list[str]:
    """LiveTag's own rules over a rendered overlay."""
    errors: list[str] = []
    by_kind: dict[str, dict[str, Obj]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
    for name, deployment in by_kind.get("Deployment", {}).items():
        spec = deployment["spec"]["template"]["spec"]
        grace = spec.get("terminationGracePeriodSeconds", 30)
        if grace <= DRAIN_SECONDS:
            errors.append(f"Deployment/{name}: terminationGracePeriodSeconds {grace} is not longer than the drain ({DRAIN_SECONDS}s)")
        if not spec.get("topologySpreadConstraints"):
            errors.append(f"Deployment/{name}: no topologySpreadConstraints")
        for container in spec.get("containers", []):
            for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                got = container.get(probe, {}).get("httpGet", {}).get("path")
                if got != path:
                    errors.append(f"Deployment/{name}: container {container['name']} {probe} is {got}, expected {path}")
        selector = deployment["spec"]["selector"]["matchLabels"]
        if not any(_selects(p["spec"]["selector"]["matchLabels"], selector) for p in by_kind.get("PodDisruptionBudget", {}).values()):
            errors.append(f"Deployment/{name}: no PodDisruptionBudget selects its pods")
    for obj in objects:
        for container in containers_of(obj):
            image = str(container.get("image", ""))
            if ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
                errors.append(f"{obj['kind']}/{obj['metadata']['name']}: container {container['name']} image {image!r} has no tag")
            for env in container.get("env", []):
                if re.search(r"PASSWORD|SECRET|TOKEN", env["name"]) and "value" in env:
                    errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {env['name']} holds a literal value; use a secretKeyRef")
    targets: dict[str, list[str]] = {}
    for kind in ("ScaledObject", "HorizontalPodAutoscaler"):
        for name, scaler in by_kind.get(kind, {}).items():
            ref = scaler["spec"]["scaleTargetRef"]["name"]
            targets.setdefault(ref, []).append(f"{kind}/{name}")
            if ref not in by_kind.get("Deployment", {}):
                errors.append(f"{kind}/{name}: scales Deployment/{ref}, which is not rendered")
    for ref, scalers in targets.items():
        if len(scalers) > 1:
            errors.append(f"Deployment/{ref} is scaled by {scalers}; KEDA creates its own HPA, keep one")
    for name, service in by_kind.get("Service", {}).items():
        selector = service["spec"].get("selector", {})
        if not any(_selects(selector, d["spec"]["template"]["metadata"]["labels"]) for d in by_kind.get("Deployment", {}).values()):
            errors.append(f"Service/{name}: its selector matches no Deployment's pods")
    return errors


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def validate_overlay(folder: Path, kubernetes_version: str = KUBERNETES_VERSION) -> tuple[list[Obj], list[str]]:
    """Render ``folder`` and return ``(objects, errors)``; no errors means valid."""
    objects = render(folder)
    errors: list[str] = []
    for obj in objects:
        errors += validate_schema(obj, kubernetes_version)
    return objects, errors + check_rules(objects)


def dump(objects: Iterable[Obj]) -> str:
    """The objects as one multi-document YAML text."""
    return yaml.safe_dump_all(list(objects), sort_keys=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render the kustomize overlays and validate them offline.")
    parser.add_argument("overlays", nargs="*", type=Path, default=list(OVERLAYS), help="overlay folders (default: cpu and gpu)")
    parser.add_argument("--kubernetes-version", default=KUBERNETES_VERSION, help=f"schema version (default {KUBERNETES_VERSION})")
    parser.add_argument("--out", type=Path, default=None, help="write each rendered overlay to OUT/<overlay>.yaml")
    args = parser.parse_args(argv)
    failed = False
    for folder in args.overlays:
        try:
            objects, errors = validate_overlay(folder, args.kubernetes_version)
        except (RenderError, OSError, yaml.YAMLError) as exc:
            print(f"{folder}: cannot render: {exc}", file=sys.stderr)
            failed = True
            continue
        kinds = ", ".join(sorted({o["kind"] for o in objects}))
        print(f"{folder}: {len(objects)} objects ({kinds}); {len(errors)} errors against Kubernetes {args.kubernetes_version}")
        for error in errors:
            print(f"  {error}", file=sys.stderr)
        failed |= bool(errors)
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"{folder.name}.yaml").write_text(dump(objects), encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
