"""TensorRT: cache keys, batch profiles and calibration batches everywhere; engine builds where it imports.

Only the tests that build or run an engine call ``pytest.importorskip("tensorrt")``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from engines import BackendError, ModelPackage, backends_available, load_detector, load_embedder
from engines.tensorrt_config import (
    BatchProfile,
    EngineCacheKey,
    TensorRTConfigError,
    array_digest,
    batch_profile,
    calibration_batches,
    engine_cache_path,
)


def _key(**changes: object) -> EngineCacheKey:
    base = EngineCacheKey(
        gpu_name="NVIDIA H100 80GB HBM3",
        compute_capability=(9, 0),
        tensorrt_version="10.3.0",
        model_sha256="ab" * 32,
        precision="fp16",
        profile=BatchProfile(1, 16, 32),
        input_hw=(256, 256),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "change",
    [
        {"gpu_name": "NVIDIA L4"},
        {"compute_capability": (8, 9)},
        {"tensorrt_version": "10.4.0"},
        {"model_sha256": "cd" * 32},
        {"precision": "int8"},
        {"profile": BatchProfile(1, 8, 32)},
        {"input_hw": (320, 320)},
        {"calibration_sha256": "ef" * 32},
    ],
    ids=lambda c: next(iter(c)),
)
def test_every_dependency_changes_the_cache_key(change: dict[str, object], tmp_path: Path) -> None:
    assert _key().digest() == _key().digest() and _key().filename() == _key().filename()
    other = _key(**change)
    assert other.digest() != _key().digest()
    assert engine_cache_path(tmp_path, other) != engine_cache_path(tmp_path, _key())


def test_cache_file_name_is_readable_and_safe(tmp_path: Path) -> None:
    name = _key(gpu_name="NVIDIA GeForce RTX 4090 / OEM").filename()
    assert name.startswith("abababababab-fp16-b1-16-32-nvidia-geforce-rtx-4090-oem-sm90-trt10.3.0-")
    assert name.endswith(".engine") and "/" not in name and " " not in name
    assert engine_cache_path(tmp_path, _key()).parent == tmp_path
    with pytest.raises(TensorRTConfigError, match="precision must be one of"):
        _key(precision="int4")


@pytest.mark.parametrize(
    ("max_batch", "opt_batch", "expected"),
    [(32, None, (1, 16, 32)), (1, None, (1, 1, 1)), (7, None, (1, 4, 7)), (8, 8, (1, 8, 8))],
)
def test_batch_profile_for_dynamic_packages(tiny_packages: dict[str, Path], max_batch: int, opt_batch: int | None, expected: tuple[int, int, int]) -> None:
    spec = ModelPackage.load(tiny_packages["embedder"]).spec
    p = batch_profile(spec, max_batch, opt_batch)
    assert (p.min, p.opt, p.max) == expected
    assert p.shapes((3, 32, 32)) == ((p.min, 3, 32, 32), (p.opt, 3, 32, 32), (p.max, 3, 32, 32))


def test_batch_profile_rules(tiny_packages: dict[str, Path]) -> None:
    spec = ModelPackage.load(tiny_packages["detector"]).spec
    fixed = dataclasses.replace(spec, input=dataclasses.replace(spec.input, batch=4))
    assert batch_profile(fixed, 32) == BatchProfile(4, 4, 4)
    for bad in [(0, 1, 2), (2, 1, 4), (1, 5, 4)]:
        with pytest.raises(TensorRTConfigError, match="min <= opt <= max"):
            BatchProfile(*bad)
    with pytest.raises(TensorRTConfigError):
        batch_profile(spec, max_batch=4, opt_batch=8)


def test_calibration_batches_are_equal_sized(rng: np.random.Generator) -> None:
    data = rng.normal(size=(10, 3, 8, 8)).astype(np.float32)
    batches = calibration_batches(data, 4)
    assert [b.shape for b in batches] == [(4, 3, 8, 8), (4, 3, 8, 8)]
    np.testing.assert_array_equal(np.concatenate(batches), data[:8])
    with pytest.raises(TensorRTConfigError, match="at least one full batch"):
        calibration_batches(data[:3], 4)
    with pytest.raises(TensorRTConfigError, match=r"\(N, 3, H, W\)"):
        calibration_batches(data[:, 0], 4)
    assert array_digest(data) != array_digest(data[:9]) and array_digest(None) == ""


def test_tensorrt_missing_is_a_clear_error(tiny_packages: dict[str, Path]) -> None:
    if "tensorrt" in backends_available():
        with pytest.raises(BackendError, match="precision must be one of"):
            load_embedder(tiny_packages["embedder"], backend="tensorrt", precision="int4")
    else:
        with pytest.raises(BackendError, match="backend 'tensorrt' is not installed here"):
            load_detector(tiny_packages["detector"], backend="tensorrt")


def test_engine_is_built_once_then_loaded_from_cache(tiny_packages: dict[str, Path], tmp_path: Path, rng: np.random.Generator) -> None:
    pytest.importorskip("tensorrt")
    crops = [rng.integers(0, 256, (40, 30, 3), dtype=np.uint8) for _ in range(5)]
    first = load_embedder(tiny_packages["embedder"], backend="tensorrt", precision="fp32", max_batch=4, cache_dir=tmp_path)
    assert first.backend.built and first.backend.cache_path.is_file()  # type: ignore[attr-defined]
    second = load_embedder(tiny_packages["embedder"], backend="tensorrt", precision="fp32", max_batch=4, cache_dir=tmp_path)
    assert not second.backend.built  # type: ignore[attr-defined]
    reference = load_embedder(tiny_packages["embedder"], device="cpu").embed(crops)
    np.testing.assert_allclose(second.embed(crops), reference, atol=2e-3)
    np.testing.assert_allclose(first.embed(crops), second.embed(crops), atol=1e-6)


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_reduced_precision_engines_stay_close(tiny_packages: dict[str, Path], tmp_path: Path, rng: np.random.Generator, precision: str) -> None:
    pytest.importorskip("tensorrt")
    reference = load_embedder(tiny_packages["embedder"], device="cpu")
    crops = [rng.integers(0, 256, (int(h), int(w), 3), dtype=np.uint8) for h, w in rng.integers(8, 90, size=(64, 2))]
    calibration = reference.pre_process(crops) if precision == "int8" else None
    engine = load_embedder(tiny_packages["embedder"], backend="tensorrt", precision=precision, max_batch=16, cache_dir=tmp_path, calibration_data=calibration)
    got, want = engine.embed(crops), reference.embed(crops)
    cosine = np.sum(got * want, axis=1)
    assert got.shape == want.shape and float(cosine.min()) > (0.999 if precision == "fp16" else 0.95)
    detector = load_detector(tiny_packages["detector"], backend="tensorrt", precision="fp16", max_batch=8, cache_dir=tmp_path)
    frames = [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(3)]
    for det, frame in zip(detector.detect(frames), frames, strict=True):
        assert np.all(det.boxes[:, 2] <= frame.shape[1]) and np.all(np.diff(det.scores) <= 0)
