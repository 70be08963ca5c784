"""The models' part of a batch: detections, the sold-item boxes chosen for embedding, their vectors.

It holds no per-stream state (the motion cue, the text priors and the voter come after it), so
several batches may be analysed at once on different threads (``batch.model_workers``) while the
stage votes on the previous ones in order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from consumers.settings import PipelineSettings
from consumers.stage.frames import DecodedFrame
from consumers.stage.model_calls import ModelCalls
from consumers.stage.sold_scale import scaled_sold
from engines.picture import Picture
from engines.types import Detections

#: A frame's picture and its (N, 4) boxes -> (N,) size-and-place prior of each box.
Presentation = Callable[[Picture, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class FrameAnalysis:
    """What the models say about one frame.

    Attributes:
        detections: The frame's N detections.
        sold: (N,) sold probabilities on the configured scale (``pipeline.sold_scale``).
        placed: (N,) size-and-place prior of each detection.
        chosen: Indices of the K detections embedded as sold-item boxes, best first.
        vectors: (K, D) float32 unit vectors of their crops (D = 0 when K = 0).
        garment: (K,) garment probability of each crop, or None when the embedder gives none.
    """

    detections: Detections
    sold: np.ndarray
    placed: np.ndarray
    chosen: tuple[int, ...]
    vectors: np.ndarray
    garment: np.ndarray | None


def sold_boxes(sold: np.ndarray, placed: np.ndarray, settings: PipelineSettings) -> tuple[int, ...]:
    """The detections embedded as sold-item boxes: ``sold`` >= ``sold_threshold``, best ``sold`` x
    ``placed`` first, at most ``max_detections_per_frame``.

    Args:
        sold: (N,) sold probabilities on the configured scale.
        placed: (N,) size-and-place prior.
    """
    keep = np.flatnonzero(sold >= settings.sold_threshold)
    keep = keep[np.argsort(-(sold[keep] * placed[keep]), kind="stable")][: settings.max_detections_per_frame]
    return tuple(keep.tolist())


def analyse_frames(frames: Sequence[DecodedFrame], models: ModelCalls, settings: PipelineSettings,
                   presentation: Presentation) -> list[FrameAnalysis]:
    """Detect, choose and embed the sold-item boxes of a batch of frames (one detector call, one
    embedder call).

    Args:
        frames: Decoded frames.
        models: The stage's model calls.
        settings: Gates and limits (``sold_threshold``, ``max_detections_per_frame``, ...).
        presentation: The size-and-place prior of a frame's boxes.

    Returns:
        One analysis per frame, in order.

    Raises:
        Exception: Whatever the engines raise for the batch (the stage then retries frame by frame).
    """
    detections = models.detect([f.picture for f in frames], [f.scaled for f in frames])
    placed = [presentation(f.picture, d.boxes) for f, d in zip(frames, detections, strict=True)]
    sold = [scaled_sold(d.sold, settings.sold_scale) for d in detections]
    chosen = [sold_boxes(sold[fi], placed[fi], settings) for fi in range(len(frames))]
    crops = [crop for frame, dets, picked in zip(frames, detections, chosen, strict=True)
             for crop in models.crops(frame.picture, dets.boxes[list(picked)], settings.crop_expand)]
    vectors, garment = models.embed(crops)
    out, start = [], 0
    for fi, dets in enumerate(detections):
        rows = slice(start, start + len(chosen[fi]))
        start = rows.stop
        out.append(FrameAnalysis(dets, sold[fi], placed[fi], chosen[fi], vectors[rows],
                                 None if garment is None else garment[rows]))
    return out


def batch_crops(frames: Sequence[DecodedFrame], analyses: Sequence[FrameAnalysis], named: Mapping[str, frozenset[str]],
                settings: PipelineSettings, models: ModelCalls) -> tuple[list[tuple[int, int, bool]], np.ndarray, np.ndarray | None]:
    """Every embedded box of a batch: the chosen sold-item boxes and, for a stream whose text names
    items (``named``; empty unless ``text.named_boxes``), its other boxes up to
    ``max_detections_per_frame``, embedded here (the sold head is not trusted to find the named
    product; those boxes are compared with the named items only).

    Returns:
        ``(owners, vectors, garment)``: per crop (frame index, detection index, named only); their
        (M, D) vectors; their (M,) garment probability or None.
    """
    owners = [(fi, di, False) for fi, a in enumerate(analyses) for di in a.chosen]
    rows = [a.vectors for a in analyses if a.chosen]
    garments = [a.garment for a in analyses if a.chosen]
    extra: list[np.ndarray] = []
    for fi, (frame, a) in enumerate(zip(frames, analyses, strict=True)):
        if named.get(frame.packet.stream_id):
            rest = [di for di in np.argsort(-a.detections.scores, kind="stable").tolist() if di not in a.chosen]
            picked = rest[: settings.max_detections_per_frame - len(a.chosen)]
            extra += models.crops(frame.picture, a.detections.boxes[picked], settings.crop_expand)
            owners += [(fi, di, True) for di in picked]
    if extra:
        more, more_garment = models.embed(extra)
        rows.append(more)
        garments.append(more_garment)
    vectors = np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)
    known = [g for g in garments if g is not None]
    garment = np.concatenate(known) if garments and len(known) == len(garments) else None
    return owners, vectors, garment
