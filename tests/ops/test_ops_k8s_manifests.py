"""The kustomize overlays render and validate offline against pinned Kubernetes and KEDA schemas."""

from __future__ import annotations

import copy
import importlib.util
import os
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
        objects, errors = vk.validate_overlay(folder)
        assert errors == [], f"{folder.name}: {errors}"
        out[folder.name] = objects
    return out


def _one(objects: list[Obj], kind: str, name: str) -> Obj:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def _container(deployment: Obj, name: str, init: bool = False) -> Obj:
    spec = deployment["spec"]["template"]["spec"]
    (found,) = [c for c in spec["initContainers" if init else "containers"] if c["name"] == name]
    return found


def test_both_overlays_validate_with_the_cli() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "overlays/cpu: 8 objects" in result.stdout and "overlays/gpu: 10 objects" in result.stdout
    assert result.stdout.count("0 errors against Kubernetes 1.30") == 2


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
        config = _one(objects, "ConfigMap", "livetag-config")["data"]
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
    config = _one(objects, "ConfigMap", "livetag-config")["data"]
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


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda o: o["spec"].__setitem__("replicaz", 3), "'replicaz' was unexpected"),
        (lambda o: o["spec"].__setitem__("replicas", "2"), "is not of type 'integer'"),
        (lambda o: o["spec"]["template"]["spec"]["containers"][0].__setitem__("imagePullPolicy", 1), "is not of type"),
    ],
)
def test_schema_validation_rejects_broken_deployments(rendered: dict[str, list[Obj]], mutate: Any, expected: str) -> None:
    deployment = copy.deepcopy(_one(rendered["gpu"], "Deployment", "livetag-inference"))
    mutate(deployment)
    errors = vk.validate_schema(deployment)
    assert len(errors) == 1 and expected in errors[0]


def test_keda_schema_rejects_broken_scaled_objects(rendered: dict[str, list[Obj]]) -> None:
    scaled = _one(rendered["gpu"], "ScaledObject", "livetag-inference")
    assert vk.validate_schema(scaled) == []
    numeric = copy.deepcopy(scaled)
    numeric["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 64  # KEDA metadata values are strings
    assert "is not of type 'string'" in vk.validate_schema(numeric)[0]
    typo = copy.deepcopy(scaled)
    typo["spec"]["maxReplicas"] = 4
    assert "'maxReplicas' was unexpected" in vk.validate_schema(typo)[0]
    no_target = copy.deepcopy(scaled)
    del no_target["spec"]["scaleTargetRef"]
    assert "'scaleTargetRef' is a required property" in vk.validate_schema(no_target)[0]


def test_rules_catch_double_autoscaling_short_grace_and_literal_secrets(rendered: dict[str, list[Obj]]) -> None:
    objects = copy.deepcopy(rendered["gpu"])
    objects.append(copy.deepcopy(_one(rendered["cpu"], "HorizontalPodAutoscaler", "livetag-inference")))
    inference = _one(objects, "Deployment", "livetag-inference")
    inference["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 20
    _container(inference, "inference")["env"].append({"name": "LIVETAG_KAFKA_SASL_PASSWORD", "value": "hunter2"})
    errors = " | ".join(vk.check_rules(objects))
    assert "KEDA creates its own HPA" in errors
    assert "terminationGracePeriodSeconds 20" in errors
    assert "holds a literal value" in errors


def test_strategic_merge_and_json6902_semantics() -> None:
    base: Obj = {"spec": {"containers": [{"name": "a", "args": ["x"], "env": [{"name": "K", "value": "1"}]}],
                     "tolerations": [{"key": "t1"}], "drop": {"me": 1}}}
    patch = {"spec": {"containers": [{"name": "a", "args": ["y"], "env": [{"name": "L", "value": "2"}]},
                                     {"name": "b"}], "tolerations": [{"key": "t2"}], "drop": None}}
    merged = vk.strategic_merge(base, patch)
    assert merged["spec"]["containers"][0] == {"name": "a", "args": ["y"],
                                               "env": [{"name": "K", "value": "1"}, {"name": "L", "value": "2"}]}
    assert merged["spec"]["containers"][1] == {"name": "b"}
    assert merged["spec"]["tolerations"] == [{"key": "t2"}]  # no merge key: replaced
    assert "drop" not in merged["spec"] and "drop" in base["spec"]
    obj = copy.deepcopy(base)
    vk.apply_json6902(obj, [
        {"op": "add", "path": "/spec/containers/0/args/-", "value": "z"},
        {"op": "replace", "path": "/spec/containers/0/env/0/value", "value": "9"},
        {"op": "remove", "path": "/spec/drop"},
    ])
    assert obj["spec"]["containers"][0]["args"] == ["x", "z"]
    assert obj["spec"]["containers"][0]["env"][0]["value"] == "9" and "drop" not in obj["spec"]


def test_unsupported_kustomize_fields_are_refused(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nnamePrefix: x-\n")
    with pytest.raises(vk.RenderError, match="namePrefix"):
        vk.render(tmp_path)


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
