"""One contract, every backend: the same inputs and assertions for onnxruntime, torch and tensorrt.

Parametrised over the backends present here (``engines.backends_available()``) and over the package
sets present: the tiny packages exported by the fixture always, the shipped ``models/`` packages when
they exist. Agreement is checked against a separate ONNX Runtime reference engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from engines_tiny_models import SHIPPED, shipped_present

import engines
from engines.preprocess import EngineInputError

BACKENDS = engines.backends_available()
PACKAGE_SETS = ["tiny"] + (["shipped"] if shipped_present("detector") and shipped_present("embedder") else [])
MAX_BATCH = 3  # small, so every multi-frame call below is split into chunks
OPTIONS: dict[str, dict[str, Any]] = {
    "onnxruntime": {"device": "cpu", "intra_op_threads": 1, "max_batch": MAX_BATCH},
    "torch": {"device": "cpu", "max_batch": MAX_BATCH},
    "tensorrt": {"max_batch": MAX_BATCH, "precision": "fp32"},
}
# Tolerances against the ONNX Runtime reference (tensorrt may reorder float math).
ATOL = {"onnxruntime": 1e-5, "torch": 1e-4, "tensorrt": 2e-3}


@pytest.fixture(params=PACKAGE_SETS)
def packages(request: pytest.FixtureRequest, tiny_packages: dict[str, Path]) -> dict[str, Path]:
    return tiny_packages if request.param == "tiny" else SHIPPED


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "tensorrt":  # engines are cached per test session, never in the user's cache
        OPTIONS["tensorrt"].setdefault("cache_dir", tmp_path_factory.getbasetemp() / "trt_engines")
    return str(request.param)


def _detector(packages: dict[str, Path], backend: str, threshold: float = 0.3) -> engines.DetectorEngine:
    return engines.load_detector(packages["detector"], backend=backend, score_threshold=threshold, **OPTIONS[backend])


def _reference_detector(packages: dict[str, Path], threshold: float = 0.3) -> engines.DetectorEngine:
    return engines.load_detector(packages["detector"], score_threshold=threshold, device="cpu", intra_op_threads=1, max_batch=64)


def _frames(rng: np.random.Generator) -> list[np.ndarray]:
    """Frames of assorted sizes: wide, tall, tiny, large; noise over a few flat rectangles."""
    frames = []
    for h, w in [(90, 160), (200, 120), (17, 9), (720, 1280), (64, 64), (300, 301), (48, 250)]:
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        for _ in range(3):
            x1, y1 = rng.integers(0, w), rng.integers(0, h)
            frame[y1 : y1 + h // 3, x1 : x1 + w // 3] = rng.integers(0, 256, 3, dtype=np.uint8)
        frames.append(frame)
    return frames


def _square_frames(rng: np.random.Generator, size: int) -> list[np.ndarray]:
    """Frames that fill the whole letterbox canvas, so no padded cells tie in score."""
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(5)]


def test_detector_outputs_follow_the_contract(packages: dict[str, Path], backend: str, rng: np.random.Generator) -> None:
    threshold = 0.4
    detector = _detector(packages, backend, threshold)
    assert isinstance(detector, engines.Detector) and detector.backend.name == backend
    frames = _frames(rng)
    results = detector.detect(frames)
    assert len(results) == len(frames)
    classes = len(detector.spec.classes)
    seen = 0
    for frame, det in zip(frames, results, strict=True):
        h, w = frame.shape[:2]
        n = len(det)
        seen += n
        assert n <= detector.spec.max_detections
        assert det.boxes.shape == (n, 4) and det.class_probs.shape == (n, classes)
        for arr in (det.boxes, det.scores, det.class_probs, det.sold):
            assert arr.dtype == np.float32
        assert np.all(det.boxes[:, [0, 2]] >= 0) and np.all(det.boxes[:, [0, 2]] <= w)
        assert np.all(det.boxes[:, [1, 3]] >= 0) and np.all(det.boxes[:, [1, 3]] <= h)
        assert np.all(det.boxes[:, 2] > det.boxes[:, 0]) and np.all(det.boxes[:, 3] > det.boxes[:, 1])
        assert np.all(det.scores >= threshold) and np.all(det.scores <= 1.0)
        assert np.all(np.diff(det.scores) <= 0), "scores must be sorted, best first"
        np.testing.assert_allclose(det.class_probs.sum(axis=1), 1.0, atol=1e-3)
        assert np.all((det.sold >= 0) & (det.sold <= 1))
    if packages is not SHIPPED:
        assert seen > 0, "the tiny detector must produce detections above the threshold"


def test_detector_batch_invariance(packages: dict[str, Path], backend: str, rng: np.random.Generator) -> None:
    detector = _detector(packages, backend)
    frames = _frames(rng)
    together = detector.detect(frames)
    for frame, batched in zip(frames, together, strict=True):
        alone = detector.detect([frame])[0]
        assert len(alone) == len(batched)
        np.testing.assert_allclose(alone.boxes, batched.boxes, atol=1e-3)
        np.testing.assert_allclose(alone.scores, batched.scores, atol=1e-5)
        np.testing.assert_allclose(alone.class_probs, batched.class_probs, atol=1e-5)


def test_detector_agrees_with_onnxruntime(packages: dict[str, Path], backend: str, rng: np.random.Generator) -> None:
    size = max(_detector(packages, "onnxruntime").spec.input.height, 64)
    frames = _square_frames(rng, size)
    got = _detector(packages, backend, 0.3).detect(frames)
    want = _reference_detector(packages, 0.3).detect(frames)
    for a, b in zip(got, want, strict=True):
        assert len(a) == len(b)
        np.testing.assert_allclose(a.scores, b.scores, atol=ATOL[backend])
        np.testing.assert_allclose(a.boxes, b.boxes, atol=ATOL[backend] * 100)
        np.testing.assert_allclose(a.sold, b.sold, atol=ATOL[backend])


def test_detector_rejects_bad_frames(packages: dict[str, Path], backend: str) -> None:
    detector = _detector(packages, backend)
    assert detector.detect([]) == []
    for bad in (np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32), np.zeros((0, 10, 3), np.uint8)):
        with pytest.raises(EngineInputError):
            detector.detect([bad])


def test_embedder_outputs_unit_vectors(packages: dict[str, Path], backend: str, rng: np.random.Generator) -> None:
    embedder = engines.load_embedder(packages["embedder"], backend=backend, **OPTIONS[backend])
    assert isinstance(embedder, engines.Embedder) and embedder.backend.max_batch == MAX_BATCH
    crops = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(40, 30), (5, 90), (128, 128), (300, 200), (1, 1), (64, 32), (33, 77)]]
    vectors = embedder.embed(crops)
    assert vectors.shape == (len(crops), embedder.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, embedder.dim)
    # batch invariance: each crop alone gives its row of the batch
    alone = np.concatenate([embedder.embed([c]) for c in crops])
    np.testing.assert_allclose(alone, vectors, atol=1e-5)
    # different crops give different vectors
    assert float(vectors[0] @ vectors[3]) < 0.99999


def test_embedder_agrees_with_onnxruntime(packages: dict[str, Path], backend: str, rng: np.random.Generator) -> None:
    crops = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(40, 30), (128, 128), (90, 200), (64, 64), (10, 11)]]
    got = engines.load_embedder(packages["embedder"], backend=backend, **OPTIONS[backend]).embed(crops)
    want = engines.load_embedder(packages["embedder"], device="cpu", intra_op_threads=1, max_batch=64).embed(crops)
    np.testing.assert_allclose(got, want, atol=ATOL[backend])
    with pytest.raises(EngineInputError):
        engines.load_embedder(packages["embedder"], backend=backend, **OPTIONS[backend]).embed([np.zeros((4, 4, 4), np.uint8)])
