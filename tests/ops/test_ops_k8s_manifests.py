"""The overlays render with kustomize and validate with kubeconform against Kubernetes and KEDA's own CRD schemas."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "validate_k8s.py"
Obj = dict[str, Any]


def _load_validator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("validate_k8s", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["validate_k8s"] = module
    spec.loader.exec_module(module)
    return module


vk = _load_validator()


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Obj]]:
    out = {}
    for folder in vk.OVERLAYS:
        objects, errors, _ = vk.validate_overlay(folder)
        assert errors == [], f"{folder.name}: {errors}"
        out[folder.name] = objects
    return out


def _one(objects: list[Obj], kind: str, name: str) -> Obj:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def _config_name(objects: list[Obj]) -> str:
    (found,) = [o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"]
    assert isinstance(found, str)
    return found


def _container(deployment: Obj, name: str, init: bool = False) -> Obj:
    spec = deployment["spec"]["template"]["spec"]
    (found,) = [c for c in spec["initContainers" if init else "containers"] if c["name"] == name]
    return found


def test_both_overlays_validate_with_the_cli() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "overlays/cpu: 8 objects" in result.stdout and "overlays/gpu: 10 objects" in result.stdout
    assert result.stdout.count("0 errors against Kubernetes 1.30.0") == 2


def test_every_object_is_namespaced_labelled_and_on_a_pinned_image(rendered: dict[str, list[Obj]]) -> None:
    for flavour, objects in rendered.items():
        for obj in objects:
            assert obj["metadata"]["namespace"] == "livetag"
            assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "livetag"
            assert obj["metadata"]["labels"]["livetag.io/flavour"] == flavour
            for container in vk.containers_of(obj):
                assert container["image"].startswith("registry.example.com/livetag/livetag:0.1.0-")
        ingest = _one(objects, "Deployment", "livetag-ingest")
        assert _container(ingest, "ingest")["image"].endswith(":0.1.0-cpu")
        inference = _one(objects, "Deployment", "livetag-inference")
        assert _container(inference, "inference")["image"].endswith(f":0.1.0-{flavour}")
        # selectors are immutable: the overlay labels reach templates, never selectors
        assert "livetag.io/flavour" not in inference["spec"]["selector"]["matchLabels"]
        assert inference["spec"]["template"]["metadata"]["labels"]["livetag.io/flavour"] == flavour


def test_probes_grace_period_secrets_and_spread(rendered: dict[str, list[Obj]]) -> None:
    for objects in rendered.values():
        for name in ("livetag-ingest", "livetag-inference"):
            deployment = _one(objects, "Deployment", name)
            pod = deployment["spec"]["template"]["spec"]
            assert pod["terminationGracePeriodSeconds"] > vk.DRAIN_SECONDS
            assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
                "topology.kubernetes.io/zone", "kubernetes.io/hostname"}
            container = pod["containers"][0]
            assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
            assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
            env = {e["name"]: e for e in container["env"]}
            assert env["LIVETAG_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
                "name": "livetag-kafka-sasl", "key": "password"}
            assert pod["securityContext"]["runAsNonRoot"] is True
        config = _one(objects, "ConfigMap", _config_name(objects))["data"]
        assert not any("PASSWORD" in key for key in config)
        service = _one(objects, "Service", "livetag-metrics")
        assert service["spec"]["ports"][0]["port"] == int(config["LIVETAG_OBSERVABILITY_PORT"])
        assert {p["metadata"]["name"] for p in objects if p["kind"] == "PodDisruptionBudget"} == {
            "livetag-ingest", "livetag-inference"}
        job = _one(objects, "Job", "livetag-gallery-build")
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_gpu_overlay_requests_a_gpu_builds_engines_and_scales_on_lag(rendered: dict[str, list[Obj]]) -> None:
    objects = rendered["gpu"]
    inference = _one(objects, "Deployment", "livetag-inference")
    main = _container(inference, "inference")
    assert main["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert main["args"][main["args"].index("--backend") + 1] == "tensorrt"
    build = _container(inference, "build-engines", init=True)
    assert build["resources"]["limits"]["nvidia.com/gpu"] == "1"
    cache_mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
    assert cache_mounts["engine-cache"] == "/home/livetag/.cache/livetag/tensorrt"
    assert build["args"][build["args"].index("--cache-dir") + 1] == cache_mounts["engine-cache"]
    # the patch merged containers by name and mounts by path: base mounts are kept
    assert {"models", "kafka-ca", "tmp", "home-cache", "engine-cache"} <= set(cache_mounts)
    volumes = {v["name"]: v for v in inference["spec"]["template"]["spec"]["volumes"]}
    assert volumes["engine-cache"]["persistentVolumeClaim"]["claimName"] == "livetag-engine-cache"
    _one(objects, "PersistentVolumeClaim", "livetag-engine-cache")
    scaled = _one(objects, "ScaledObject", "livetag-inference")
    (kafka,) = [t for t in scaled["spec"]["triggers"] if t["type"] == "kafka"]
    assert kafka["metadata"]["consumerGroup"] == "livetag-inference"
    config = _one(objects, "ConfigMap", _config_name(objects))["data"]
    assert kafka["metadata"]["topic"] == config["LIVETAG_TOPICS_PREFIX"] + "frames"
    assert scaled["spec"]["maxReplicaCount"] == int(config["LIVETAG_TOPICS_PARTITIONS"])
    _one(objects, "TriggerAuthentication", kafka["authenticationRef"]["name"])
    assert not [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]


def test_cpu_overlay_falls_back_to_a_cpu_hpa(rendered: dict[str, list[Obj]]) -> None:
    objects = rendered["cpu"]
    hpa = _one(objects, "HorizontalPodAutoscaler", "livetag-inference")
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert not [o for o in objects if o["kind"] == "ScaledObject"]
    main = _container(_one(objects, "Deployment", "livetag-inference"), "inference")
    assert "nvidia.com/gpu" not in main["resources"]["limits"]
    assert main["resources"]["limits"]["cpu"] == "6"


def _broken_copy(tmp_path: Path, relative: str, old: str, new: str) -> None:
    """A copy of k8s/ in ``tmp_path`` with one text replacement in one file (which must contain ``old``)."""
    shutil.copytree(REPO / "k8s", tmp_path / "k8s")
    path = tmp_path / "k8s" / relative
    text = path.read_text()
    assert old in text, f"{old!r} not in {relative}"
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("relative", "old", "new", "overlay", "expected"),
    [
        # a misspelt field in the base Deployment (kubeconform -strict, Kubernetes schema)
        ("base/inference-deployment.yaml", "  replicas:", "  replicaz:", "gpu", "replicaz"),
        # a wrong type
        ("base/inference-deployment.yaml", "terminationGracePeriodSeconds: ", "terminationGracePeriodSeconds: x", "cpu",
         "terminationGracePeriodSeconds"),
        # KEDA's real CRD: 2.17 has no fallback.useCurrentReplicas (the old transcribed schema accepted it)
        ("overlays/gpu/keda-scaledobject.yaml", "    replicas: 8\n", "    replicas: 8\n    useCurrentReplicas: true\n", "gpu",
         "useCurrentReplicas"),
        # KEDA metadata values are strings
        ("overlays/gpu/keda-scaledobject.yaml", 'lagThreshold: "64"', "lagThreshold: 64", "gpu", "lagThreshold"),
        # a selector that no longer selects the pods it owns (LiveTag's rule; the API server would refuse it)
        ("base/inference-deployment.yaml", "app.kubernetes.io/component: inference\n  template:",
         "app.kubernetes.io/component: infer\n  template:", "gpu", "does not match its pod template"),
    ],
)
def test_a_broken_manifest_fails_validation(tmp_path: Path, relative: str, old: str, new: str, overlay: str,
                                            expected: str) -> None:
    _broken_copy(tmp_path, relative, old, new)
    folder = tmp_path / "k8s" / "overlays" / overlay
    result = subprocess.run([sys.executable, str(SCRIPT), str(folder)], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert expected in result.stderr


def test_keda_217_fields_are_accepted(tmp_path: Path) -> None:
    """fallback.behavior exists in KEDA 2.17's CRD (the transcribed schema refused it)."""
    _broken_copy(tmp_path, "overlays/gpu/keda-scaledobject.yaml", "    replicas: 8\n",
                 "    replicas: 8\n    behavior: currentReplicasIfHigher\n")
    objects, errors, _ = vk.validate_overlay(tmp_path / "k8s" / "overlays" / "gpu")
    assert errors == []
    scaled = _one(objects, "ScaledObject", "livetag-inference")
    assert scaled["spec"]["fallback"]["behavior"] == "currentReplicasIfHigher"


def test_a_settings_change_renames_the_config_map_and_so_rolls_the_pods(tmp_path: Path,
                                                                         rendered: dict[str, list[Obj]]) -> None:
    before = _config_name(rendered["cpu"])
    _broken_copy(tmp_path, "base/livetag.env", "LIVETAG_BATCH_MAX_BATCH=16", "LIVETAG_BATCH_MAX_BATCH=32")
    objects, errors, _ = vk.validate_overlay(tmp_path / "k8s" / "overlays" / "cpu")
    assert errors == []
    after = _config_name(objects)
    assert after != before and after.startswith("livetag-config-")
    for name in ("livetag-ingest", "livetag-inference"):
        pod = _one(objects, "Deployment", name)["spec"]["template"]["spec"]
        refs = {e["configMapRef"]["name"] for c in pod["containers"] for e in c.get("envFrom", []) if "configMapRef" in e}
        assert refs == {after}


def test_broker_and_prefix_are_written_once(tmp_path: Path) -> None:
    """The KEDA trigger takes the broker list and the topic prefix from livetag.env (kustomize replacements)."""
    env = REPO / "k8s" / "base" / "livetag.env"
    _broken_copy(tmp_path, "base/livetag.env", "LIVETAG_TOPICS_PREFIX=prod.", "LIVETAG_TOPICS_PREFIX=staging.")
    text = (tmp_path / "k8s" / "base" / "livetag.env").read_text()
    (tmp_path / "k8s" / "base" / "livetag.env").write_text(text.replace("kafka-0.kafka.kafka.svc:9093,", "", 1))
    objects, errors, _ = vk.validate_overlay(tmp_path / "k8s" / "overlays" / "gpu")
    assert errors == []
    (kafka,) = [t for t in _one(objects, "ScaledObject", "livetag-inference")["spec"]["triggers"] if t["type"] == "kafka"]
    assert kafka["metadata"]["topic"] == "staging.frames"
    assert kafka["metadata"]["bootstrapServers"] == "kafka-1.kafka.kafka.svc:9093,kafka-2.kafka.kafka.svc:9093"
    assert "kafka-0" in env.read_text()  # the original is untouched


def test_engine_build_step_fails_with_a_one_line_error(tmp_path: Path) -> None:
    """The gpu overlay's init container runs scripts/build_engines.py; a bad package must not hang or trace."""
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_engines.py"), "--detector", str(tmp_path / "missing"),
         "--embedder", str(tmp_path / "missing"), "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},  # the image installs the package; here it is the checkout
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("build_engines: error:") and "missing" in lines[0]


def test_crd_schema_conversion_is_strict_and_keeps_kubernetes_extensions() -> None:
    spec = importlib.util.spec_from_file_location("k8s_schemas", REPO / "scripts" / "k8s_schemas.py")
    assert spec is not None and spec.loader is not None
    schemas = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(schemas)
    crd = {
        "type": "object",
        "properties": {
            "port": {"x-kubernetes-int-or-string": True},
            "note": {"type": "string", "nullable": True},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {"a": {"type": "string"}}},
            "map": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    out = schemas.crd_to_json_schema(crd)
    assert out["additionalProperties"] is False
    assert out["properties"]["port"] == {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    assert out["properties"]["note"]["type"] == ["string", "null"]
    assert "additionalProperties" not in out["properties"]["free"]
    assert out["properties"]["map"]["additionalProperties"] == {"type": "string"}
    assert not any(key.startswith("x-kubernetes") for key in json.dumps(out).split('"'))
