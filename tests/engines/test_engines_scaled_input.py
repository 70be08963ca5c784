"""Frames scaled to the detector's input by the decoder detect like full frames resized by the engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines import load_detector
from engines.preprocess import EngineInputError, area_resize, letterbox


@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (540, 960), (333, 333)])
def test_scaled_size_is_the_letterbox_fit(tiny_packages: dict[str, Path], width: int, height: int) -> None:
    detector = load_detector(tiny_packages["detector"])
    inp = detector.spec.input
    w, h = detector.scaled_size(width, height)
    canvas, _ = letterbox(np.zeros((height, width, 3), np.uint8), inp.height, inp.width, 7)
    filled = np.argwhere(canvas[:, :, 0] != 7)
    assert (filled[:, 0].max() + 1, filled[:, 1].max() + 1) == (h, w)


def test_detect_scaled_matches_detect(tiny_packages: dict[str, Path], rng: np.random.Generator) -> None:
    detector = load_detector(tiny_packages["detector"], score_threshold=0.0)
    frames = [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), rng.integers(0, 255, (360, 200, 3), dtype=np.uint8)]
    sizes = [(f.shape[1], f.shape[0]) for f in frames]
    scaled = [area_resize(f, *detector.scaled_size(*s)) for f, s in zip(frames, sizes, strict=True)]
    direct = detector.pre_process(frames)[0]
    pre = detector.pre_process_scaled(scaled, sizes)[0]
    np.testing.assert_allclose(pre, direct, atol=1e-6)  # the same input tensor when scaled the same way
    for a, b in zip(detector.detect(frames), detector.detect_scaled(scaled, sizes), strict=True):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
    assert detector.detect_scaled([], []) == []
    with pytest.raises(EngineInputError, match="scales to"):
        detector.pre_process_scaled([scaled[0][:-1]], [sizes[0]])
