"""The sold scale: the sold head read as it is, or relative to each frame's most likely sold box."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from stage_world import SETTINGS, frame_records, keyframe_packets

from consumers.settings import PipelineSettings
from consumers.settings.checks import SettingsError
from consumers.stage.builder import build_stage
from consumers.stage.sold_scale import scaled_sold
from engines.types import Detections
from stream.clock import FakeClock
from stream.decode import PacketDecoder


@pytest.mark.parametrize(("sold", "scale", "expected"), [
    ([0.1, 0.05, 0.02], "absolute", [0.1, 0.05, 0.02]),
    ([0.1, 0.05, 0.02], "frame", [1.0, 0.5, 0.2]),
    ([0.9, 0.45], "frame", [1.0, 0.5]),
    ([0.0, 0.0], "frame", [0.0, 0.0]),  # nothing looks sold: nothing is promoted
    ([], "frame", []),
])
def test_scaled_sold_table(sold: list[float], scale: str, expected: list[float]) -> None:
    out = scaled_sold(np.asarray(sold, np.float32), scale)
    assert out.dtype == np.float32 and out.shape == (len(sold),)
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_an_unknown_scale_is_refused() -> None:
    with pytest.raises(ValueError, match="sold scale"):
        scaled_sold(np.ones(2, np.float32), "rank")
    with pytest.raises(SettingsError, match="pipeline.sold_scale"):
        PipelineSettings(sold_scale="rank")


class QuietSoldHead:
    """The world's detector with every sold probability divided by 1,000 (a head whose level is off)."""

    def __init__(self, detector: Any) -> None:
        self._detector = detector

    def _quiet(self, results: list[Detections]) -> list[Detections]:
        return [dataclasses.replace(d, sold=np.asarray(d.sold, np.float32) / 1000.0) for d in results]

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        return self._quiet(self._detector.detect(frames))

    def detect_scaled(self, images: Sequence[np.ndarray], sizes: Sequence[tuple[int, int]]) -> list[Detections]:
        return self._quiet(self._detector.detect_scaled(images, sizes))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._detector, name)


@pytest.mark.parametrize("scale", ["absolute", "frame"])
def test_frame_scale_lets_the_frame_best_box_through_a_gate_its_level_misses(world: dict[str, Any], scale: str) -> None:
    settings = SETTINGS.with_overrides(pipeline__sold_threshold=0.3, pipeline__sold_scale=scale)
    seen: list[tuple[str, float, list[Any]]] = []
    quiet: Any = QuietSoldHead(world["detector"])  # the Detector protocol, with the world detector's other members
    stage = build_stage(quiet, world["embedder"], world["gallery"], settings, FakeClock(),
                        observer=lambda stream, pts, hits: seen.append((stream, pts, hits)))
    packets = keyframe_packets(world["videos"]["s1"], "s1")
    stage.process(frame_records(packets))
    decoder = PacketDecoder()
    frames_with_boxes = sum(len(d) > 0 for d in world["detector"].detect([decoder.decode(p) for p in packets]))
    assert frames_with_boxes > 0
    if scale == "absolute":
        assert stage.counters.detections == 0  # every probability is under the gate
    else:
        assert stage.counters.detections >= frames_with_boxes  # at least each frame's best box
        assert stage.counters.detections <= frames_with_boxes * settings.pipeline.max_detections_per_frame
