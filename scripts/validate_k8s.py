"""Render LiveTag's kustomize overlays with kustomize and validate them with kubeconform, then LiveTag's rules.

The tools and schemas are the pinned ones ``scripts/install_k8s_tools.sh`` puts in ``.tools/``
(README command 2 runs it):

1. ``kustomize build <overlay>`` renders the overlay (configMapGenerator, replacements, patches: the
   real renderer, nothing re-implemented here);
2. ``kubeconform -strict`` validates every object against the Kubernetes schemas of the pinned version
   and KEDA's objects against schemas generated from KEDA's own CRDs (unknown fields, wrong types and
   missing required fields fail; an object without a schema fails too);
3. LiveTag's own rules run on the rendered objects: probes, grace period longer than the drain, spread,
   disruption budgets, selectors that select their pods, one autoscaler per Deployment, tagged images,
   no literal secrets.

Usage::

    python scripts/validate_k8s.py                               # both overlays
    python scripts/validate_k8s.py k8s/overlays/gpu --out rendered/   # also write the rendered YAML
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "k8s"
OVERLAYS = (K8S / "overlays" / "cpu", K8S / "overlays" / "gpu")
TOOLS = REPO / ".tools"
KUBERNETES_VERSION = "1.30.0"
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
#: Longest the inference / ingest drain may take on SIGTERM (batch + producer flush), seconds.
DRAIN_SECONDS = 30
Obj = dict[str, Any]


class ToolError(Exception):
    """kustomize or kubeconform is missing or could not run."""


def tool(name: str) -> str:
    """The path of ``name`` in ``.tools/bin``, else on PATH."""
    local = TOOLS / "bin" / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise ToolError(f"{name} not found; run scripts/install_k8s_tools.sh")
    return found


def schema_locations(schemas: Path = TOOLS / "schemas") -> list[str]:
    """kubeconform ``-schema-location`` templates: Kubernetes kinds, then CRD kinds (KEDA)."""
    if not (schemas / "kubernetes").is_dir():
        raise ToolError(f"no schemas in {schemas}; run scripts/install_k8s_tools.sh")
    return [
        f"{schemas}/kubernetes/{{{{.NormalizedKubernetesVersion}}}}-standalone{{{{.StrictSuffix}}}}/"
        "{{.ResourceKind}}{{.KindSuffix}}.json",
        f"{schemas}/crds/{{{{.Group}}}}/{{{{.ResourceKind}}}}_{{{{.ResourceAPIVersion}}}}.json",
    ]


def render(folder: Path) -> str:
    """``kustomize build folder`` as YAML text; a kustomize failure raises ToolError with its message."""
    result = subprocess.run([tool("kustomize"), "build", str(folder)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ToolError(f"kustomize build {folder}: {result.stderr.strip()}")
    return result.stdout


def kubeconform(rendered: str, kubernetes_version: str = KUBERNETES_VERSION) -> list[str]:
    """kubeconform's findings for a rendered YAML text (empty when every object is valid)."""
    command = [tool("kubeconform"), "-strict", "-output", "json", "-kubernetes-version", kubernetes_version]
    for location in schema_locations():
        command += ["-schema-location", location]
    result = subprocess.run([*command, "-"], input=rendered, capture_output=True, text=True, check=False)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise ToolError(f"kubeconform gave no report: {result.stderr.strip() or result.stdout[:200]}") from exc
    errors = []
    for resource in report.get("resources", []):
        if resource.get("status") in ("statusInvalid", "statusError"):
            # the resource message carries the detail ("at '/spec': additional properties 'x' not allowed")
            message = re.sub(r"^.*validation failed with '[^']*' - ", "", str(resource.get("msg", "invalid")))
            errors.append(f"{resource.get('kind')}/{resource.get('name')}: {message}")
    if result.returncode != 0 and not errors:
        errors.append(f"kubeconform exited {result.returncode}: {result.stderr.strip()}")
    return errors


def pod_templates(obj: Obj) -> list[Obj]:
    """The pod templates of a workload (Deployment, Job, ...) or CronJob."""
    spec = obj.get("spec", {})
    if obj.get("kind") in WORKLOADS and "template" in spec:
        return [spec["template"]]
    if obj.get("kind") == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]]
    return []


def containers_of(obj: Obj) -> list[Obj]:
    """Every container and init container of an object's pod templates."""
    out: list[Obj] = []
    for template in pod_templates(obj):
        spec = template.get("spec", {})
        out += spec.get("initContainers", []) + spec.get("containers", [])
    return out


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _check_deployment(name: str, deployment: Obj, budgets: list[Obj]) -> list[str]:
    errors: list[str] = []
    template = deployment["spec"]["template"]
    spec = template["spec"]
    selector = deployment["spec"]["selector"].get("matchLabels", {})
    if not _selects(selector, template.get("metadata", {}).get("labels", {})):
        errors.append(f"Deployment/{name}: selector {selector} does not match its pod template's labels")
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
    if not any(_selects(p["spec"]["selector"]["matchLabels"], selector) for p in budgets):
        errors.append(f"Deployment/{name}: no PodDisruptionBudget selects its pods")
    return errors


def check_rules(objects: list[Obj]) -> list[str]:
    """LiveTag's own rules over a rendered overlay."""
    errors: list[str] = []
    by_kind: dict[str, dict[str, Obj]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
    budgets = list(by_kind.get("PodDisruptionBudget", {}).values())
    for name, deployment in by_kind.get("Deployment", {}).items():
        errors += _check_deployment(name, deployment, budgets)
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


def validate_overlay(folder: Path, kubernetes_version: str = KUBERNETES_VERSION) -> tuple[list[Obj], list[str], str]:
    """Render and validate ``folder``; returns ``(objects, errors, rendered YAML)``. No errors: valid."""
    rendered = render(folder)
    objects = [doc for doc in yaml.safe_load_all(rendered) if doc]
    schema_errors = kubeconform(rendered, kubernetes_version)
    # the rules read fields by their schema types: they run on schema-valid objects only
    return objects, schema_errors or check_rules(objects), rendered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render the kustomize overlays and validate them with kubeconform.")
    parser.add_argument("overlays", nargs="*", type=Path, default=list(OVERLAYS), help="overlay folders (default: cpu and gpu)")
    parser.add_argument("--kubernetes-version", default=KUBERNETES_VERSION, help=f"schema version (default {KUBERNETES_VERSION})")
    parser.add_argument("--out", type=Path, default=None, help="write each rendered overlay to OUT/<overlay>.yaml")
    args = parser.parse_args(argv)
    failed = False
    for folder in args.overlays:
        try:
            objects, errors, rendered = validate_overlay(folder, args.kubernetes_version)
        except ToolError as exc:
            print(f"{folder}: {exc}", file=sys.stderr)
            failed = True
            continue
        kinds = ", ".join(sorted({o["kind"] for o in objects}))
        print(f"{folder}: {len(objects)} objects ({kinds}); {len(errors)} errors against Kubernetes {args.kubernetes_version}")
        for error in errors:
            print(f"  {error}", file=sys.stderr)
        failed |= bool(errors)
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"{folder.name}.yaml").write_text(rendered, encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
