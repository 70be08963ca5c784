"""Gallery hits of a batch's crops (within each stream's catalog and the items its text names), the
voter's observations built from them, and the best hit of each detection of a frame for observers
that rank items (evaluation)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np

from consumers.stage.frame_analysis import FrameAnalysis
from consumers.stage.frames import DecodedFrame, Hit
from consumers.text.text_prior import TextPriors
from consumers.voting.voter import Observation
from engines.types import Detections


def best_hits(stream_id: str, observations: Sequence[Observation], text: TextPriors | None) -> list[Hit]:
    """The best hit of every detection; with text cues, best by similarity times the text factors
    (the hit carries them, times the detection's motion and size-and-place factors, as ``prior``)."""
    out = []
    use_text = text is not None and text.has_text(stream_id)
    for obs in observations:
        if not obs.hits:
            continue
        if use_text:
            assert text is not None
            box = text.box_factor(stream_id, obs.top_categories)
            priors = [box * text.item_factor(stream_id, h.item_id)
                      * (text.strength(stream_id, h.item_id) if obs.named_only else 1.0) for h in obs.hits]
        else:
            priors = [1.0] * len(obs.hits)
        best, prior = max(zip(obs.hits, priors, strict=True), key=lambda hp: hp[0].score * hp[1])
        out.append(Hit(best.item_id, best.score, best.image_id, obs.frame_box, best.item_box,
                       obs.garment, prior * obs.moving * obs.presentation))
    return out


def frame_observations(analyses: Sequence[FrameAnalysis], owners: Sequence[tuple[int, int, bool]],
                       hits_of_crop: Mapping[int, Sequence[Any]], garment: np.ndarray | None,
                       moving: Sequence[np.ndarray] | None, min_similarity: float, category_top_k: int,
                       ) -> list[list[Observation]]:
    """Per frame, the voter's observation of each embedded detection: its box, probabilities, hits at
    or above the voter's floor and top categories.

    Args:
        analyses: Per frame its models' part (detections, sold and size-and-place factors per box).
        owners: Per crop (frame index, detection index, named only), as :func:`hits_per_crop` takes.
        hits_of_crop: Crop index -> its gallery hits, best first (:func:`hits_per_crop`).
        garment: (C,) the embedder's garment probability per crop; None when it gives none.
        moving: Per frame (N_f,) the motion factor of each detection; None: 1 for every one.
        min_similarity: The voter's floor: weaker hits are left out.
        category_top_k: Categories of each detection the category check compares.
    """
    per_frame: list[list[Observation]] = [[] for _ in analyses]
    for ci, (fi, di, named_only) in enumerate(owners):
        analysis = analyses[fi]
        dets = analysis.detections
        x1, y1, x2, y2 = (float(v) for v in dets.boxes[di])
        hits = tuple(h for h in hits_of_crop[ci] if h.score >= min_similarity)
        top = tuple(int(c) for c in dets.top_categories(category_top_k)[di])
        per_frame[fi].append(Observation((x1, y1, x2, y2), float(analysis.sold[di]), float(dets.scores[di]), hits, top,
                                         garment=1.0 if garment is None else float(garment[ci]),
                                         named_only=named_only, moving=1.0 if moving is None else float(moving[fi][di]),
                                         presentation=float(analysis.placed[di])))
    return per_frame


def uncounted_hits(owners: Sequence[tuple[int, int, bool]], hits_of_crop: Mapping[int, Sequence[Any]],
                   detections: Sequence[Detections], min_similarity: float, frames: int) -> list[list[Hit]]:
    """Per frame, the best hit of each embedded detection none of whose hits reaches ``min_similarity``
    (``counted`` False): they vote for nothing, but tell an observer what the frame looked most like.

    Args:
        owners: Per crop (frame index, detection index, named only), as :func:`hits_per_crop` takes.
        hits_of_crop: Crop index -> its gallery hits (:func:`hits_per_crop`).
        detections: Per frame its detections (the boxes).
        min_similarity: The voter's floor.
        frames: Number of frames.
    """
    out: list[list[Hit]] = [[] for _ in range(frames)]
    for ci, (fi, di, _) in enumerate(owners):
        hits = hits_of_crop[ci]
        if hits and max(h.score for h in hits) < min_similarity:
            best = max(hits, key=lambda h: h.score)
            box = tuple(float(v) for v in detections[fi].boxes[di])
            out[fi].append(Hit(best.item_id, best.score, best.image_id, (box[0], box[1], box[2], box[3]),
                               best.item_box, counted=False))
    return out


#: catalog id (None: no header) -> the items its streams may match (None: the whole gallery).
Scopes = Mapping[str | None, frozenset[str] | None]
#: (M, D) vectors and the allowed items (None: all) -> the hits of each row, best first.
Search = Callable[[np.ndarray, Collection[str] | None], list[list[Any]]]


def named_items(text: TextPriors | None, frames: Sequence[DecodedFrame], scopes: Scopes) -> dict[str, frozenset[str]]:
    """stream id -> the items its text names within its catalog (empty without text cues).

    The text is first brought to each frame's pts, so only what was said by then counts."""
    out: dict[str, frozenset[str]] = {}
    if text is None:
        return out
    for frame in frames:
        stream_id = frame.packet.stream_id
        text.seen(stream_id, frame.packet.pts_seconds)
        named = text.candidates(stream_id)
        allowed = scopes[frame.catalog]
        out[stream_id] = named if allowed is None else named & allowed
    return out


def hits_per_crop(
    frames: Sequence[DecodedFrame],
    owners: Sequence[tuple[int, int, bool]],
    vectors: np.ndarray,
    named: Mapping[str, frozenset[str]],
    scopes: Scopes,
    search: Search,
) -> dict[int, list[Any]]:
    """Gallery hits per crop (rows of (M, D) ``vectors``; ``owners`` gives each crop's frame index,
    detection index and whether the text alone chose it), best first, within the stream's catalog.

    A crop of a stream whose text names items is also compared with those items. A ``named only``
    crop keeps its hits only when its best match is a named item, and then only the named ones: the
    text chooses the box, the picture still chooses the item.
    """
    groups: dict[frozenset[str] | None, list[int]] = {}  # allowed items -> crops searched among them
    for ci, (fi, _, _) in enumerate(owners):
        frame = frames[fi]
        groups.setdefault(scopes[frame.catalog], []).append(ci)
        if named.get(frame.packet.stream_id):
            groups.setdefault(named[frame.packet.stream_id], []).append(ci)
    hits: dict[int, list[Any]] = {ci: [] for ci in range(len(owners))}
    for allowed, crop_indices in groups.items():
        for ci, more in zip(crop_indices, search(vectors[crop_indices], allowed), strict=True):
            have = {h.image_id for h in hits[ci]}
            hits[ci] = sorted(hits[ci] + [h for h in more if h.image_id not in have], key=lambda h: -float(h.score))
    for ci, (fi, _, named_only) in enumerate(owners):
        if named_only:
            mine = named.get(frames[fi].packet.stream_id, frozenset())
            ranked = hits[ci]
            hits[ci] = [h for h in ranked if h.item_id in mine] if ranked and ranked[0].item_id in mine else []
    return hits
