"""Scoring replayed videos against Tianchi-layout ground truth, and the submission file.

Pure functions over :class:`~training.evaluation.match_summary.MatchSummary` (what each replayed video
matched) and :mod:`training.evaluation.tianchi_truth` (what it really shows). Metrics:

- top-1 item accuracy: prediction = the item with the longest matched segment time;
- R@1/5/10: the true item's rank in the video's ranked item list;
- time to first correct match: stream seconds from the first annotated frame of the true item
  to the frame at which the first ``match.started`` for it was decided;
- box-pair precision: the submitted (frame box, item box) pair is right when the item is right and
  both boxes have IoU >= 0.5 with the annotated boxes of that frame (or of the nearest annotated frame
  at most 2 frames away) and of that shop image;
- per-segment accuracy (with ``segments.json``): the item matched longest inside each segment.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engines.preprocess import box_iou
from training.evaluation.match_summary import MatchSummary
from training.evaluation.refinement import Candidate, refine_assignments
from training.evaluation.tianchi_truth import Box, SegmentTruth, VideoTruth

RECALL_KS = (1, 5, 10)
IOU_THRESHOLD = 0.5
#: A submitted frame without annotation is judged on an annotated frame at most this many frames away.
NEAREST_FRAME_GAP = 2


@dataclass(frozen=True)
class GalleryImageRef:
    """Where a gallery vector came from: the item and the shop image name."""

    item_id: str
    img_name: str


@dataclass(frozen=True)
class ReplayedVideo:
    """One replayed video: its match summary and the frame rate that maps seconds to frame indices."""

    video_id: str
    summary: MatchSummary
    fps: float
    start_s: float = 0.0

    def frame_index(self, pts_s: float) -> int:
        """The frame index of a presentation time in seconds."""
        return int(math.floor((pts_s - self.start_s) * self.fps + 0.5))

    def seconds(self, frame_index: int) -> float:
        """The presentation time in seconds of a frame index."""
        return self.start_s + frame_index / self.fps


def answer(summary: MatchSummary) -> str | None:
    """The video's one answer (the challenge needs an item per video): the item matched longest, else,
    when the voter never confirmed a match, the item that gathered the most frame similarity, else,
    when no hit reached the voter's floor, the item of the most similar hit below it."""
    decided = summary.prediction()
    if decided is not None:
        return decided
    ranked = summary.ranked_items()
    return ranked[0] if ranked else summary.last_resort()


def predictions(videos: Sequence[ReplayedVideo], refine: bool, top_k: int = 10) -> dict[str, str | None]:
    """video id -> predicted item; with ``refine`` the many-videos-one-item conflicts are resolved."""
    plain = {v.video_id: answer(v.summary) for v in videos}
    if not refine:
        return plain
    candidates: dict[str, list[Candidate]] = {}
    for video in videos:
        items = video.summary.items
        ranked = [i for i in video.summary.ranked_items() if items[i].first_match_s is not None][:top_k]
        candidates[video.video_id] = [Candidate(i, items[i].matched_s + 1e-3 * items[i].best_score) for i in ranked]
    refined = refine_assignments(candidates)
    return {video_id: refined.get(video_id) or plain[video_id] for video_id in plain}


def submission(
    videos: Sequence[ReplayedVideo],
    predicted: Mapping[str, str | None],
    gallery_refs: Mapping[str, GalleryImageRef],
) -> dict[str, dict[str, Any]]:
    """The challenge's result.json: ``{video_id: {"item_id", "frame_index", "result": [pairs]}}``.

    The pair is the predicted item's best evidence (highest similarity); videos without a
    prediction, or whose best evidence has no item box, get an empty ``result`` list.
    """
    out: dict[str, dict[str, Any]] = {}
    for video in videos:
        item_id = predicted.get(video.video_id)
        tally = video.summary.items.get(item_id) if item_id else None
        evidence = tally.best_evidence if tally else video.summary.uncounted.get(item_id or "")
        if item_id is None or evidence is None:
            out[video.video_id] = {"item_id": item_id, "frame_index": None, "result": []}
            continue
        ref = gallery_refs.get(evidence.gallery_image_id)
        pair = {
            "img_name": ref.img_name if ref else evidence.gallery_image_id,
            "item_box": [round(v, 1) for v in evidence.item_box] if evidence.item_box else None,
            "frame_box": [round(v, 1) for v in evidence.frame_box],
        }
        out[video.video_id] = {
            "item_id": item_id,
            "frame_index": video.frame_index(evidence.pts),
            "result": [pair],
        }
    return out


def _nearest_annotated(truth: VideoTruth, frame_index: int) -> list[Box] | None:
    """Boxes of the sold instance at ``frame_index``, else at the nearest annotated frame at most
    ``NEAREST_FRAME_GAP`` frames away (data sets annotate every k-th frame, keyframes fall anywhere)."""
    for gap in range(NEAREST_FRAME_GAP + 1):
        for index in (frame_index - gap, frame_index + gap):
            if index in truth.frame_boxes:
                return truth.frame_boxes[index]
    return None


def _box_pair_correct(
    entry: Mapping[str, Any],
    truth: VideoTruth,
    shop_boxes: Mapping[tuple[str, str], list[tuple[Box, int]]],
) -> bool | None:
    """True/False for a judged pair; None when the chosen frame carries no annotation."""
    if not entry.get("result") or entry.get("item_id") != truth.item_id:
        return False if entry.get("result") else None
    frame_boxes = _nearest_annotated(truth, int(entry["frame_index"]))
    if frame_boxes is None:
        return None
    pair = entry["result"][0]
    frame_ok = any(box_iou(pair["frame_box"], box) >= IOU_THRESHOLD for box in frame_boxes)
    item_boxes = [b for b, inst in shop_boxes.get((str(truth.item_id), pair["img_name"]), []) if inst in (truth.instance_id, 0)]
    item_ok = pair["item_box"] is not None and any(box_iou(pair["item_box"], b) >= IOU_THRESHOLD for b in item_boxes)
    return frame_ok and item_ok


def evaluate(
    videos: Sequence[ReplayedVideo],
    truths: Mapping[str, VideoTruth],
    gallery_refs: Mapping[str, GalleryImageRef],
    shop_boxes: Mapping[tuple[str, str], list[tuple[Box, int]]],
    segments: Sequence[SegmentTruth] | None = None,
    refine: bool = False,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Score every replayed video.

    Args:
        videos: The replayed videos.
        truths: video id -> truth; videos whose truth has no item are reported but not scored.
        gallery_refs: gallery image id -> (item id, shop image name), for the submission.
        shop_boxes: (item id, img_name) -> annotated boxes with instance ids.
        segments: Optional per-segment truth.
        refine: Resolve videos that claim the same item (see :mod:`training.evaluation.refinement`).

    Returns:
        ``(report, result)``: the report dict and the challenge submission dict.
    """
    predicted = predictions(videos, refine)
    result = submission(videos, predicted, gallery_refs)
    per_video: list[dict[str, Any]] = []
    hits_at = dict.fromkeys(RECALL_KS, 0)
    correct = scored = 0
    latencies: list[float] = []
    pairs_judged = pairs_right = pairs_unannotated = 0
    for video in videos:
        truth = truths.get(video.video_id) or VideoTruth(video.video_id, None, 0, None)
        ranked = video.summary.ranked_items()
        row: dict[str, Any] = {
            "video_id": video.video_id,
            "truth": truth.item_id,
            "predicted": predicted.get(video.video_id),
            "decided": video.summary.prediction() is not None,
            "ranked": ranked[: max(RECALL_KS)],
            "events": video.summary.events,
            "frames": video.summary.frames,
        }
        if truth.item_id is not None:
            scored += 1
            rank = ranked.index(truth.item_id) + 1 if truth.item_id in ranked else None
            row["rank"] = rank
            row["correct"] = row["predicted"] == truth.item_id
            correct += int(row["correct"])
            for k in RECALL_KS:
                hits_at[k] += int(rank is not None and rank <= k)
            tally = video.summary.items.get(truth.item_id)
            if tally is not None and tally.first_match_s is not None and truth.first_frame is not None:
                latency = max(0.0, tally.first_match_s - video.seconds(truth.first_frame))
                row["time_to_first_correct_s"] = round(latency, 3)
                latencies.append(latency)
            judged = _box_pair_correct(result[video.video_id], truth, shop_boxes)
            row["box_pair_correct"] = judged
            if judged is None:
                pairs_unannotated += int(bool(result[video.video_id]["result"]))
            else:
                pairs_judged += 1
                pairs_right += int(judged)
        per_video.append(row)
    report: dict[str, Any] = {
        "videos": len(videos),
        "scored_videos": scored,
        "refined": refine,
        "top1_accuracy": _ratio(correct, scored),
        "recall_at": {str(k): _ratio(hits_at[k], scored) for k in RECALL_KS},
        "time_to_first_correct_s": {
            "found": len(latencies),
            "mean": round(statistics.fmean(latencies), 3) if latencies else None,
            "median": round(statistics.median(latencies), 3) if latencies else None,
        },
        "box_pair_precision": _ratio(pairs_right, pairs_judged),
        "box_pairs": {"judged": pairs_judged, "correct": pairs_right, "frame_not_annotated": pairs_unannotated},
        "segment_accuracy": segment_accuracy(videos, segments) if segments is not None else None,
        "per_video": per_video,
    }
    return report, result


def segment_accuracy(videos: Sequence[ReplayedVideo], segments: Sequence[SegmentTruth]) -> dict[str, Any]:
    """Share of truth segments whose longest-overlapping matched item is the segment's item."""
    by_video = {v.video_id: v for v in videos}
    judged = right = 0
    for segment in segments:
        video = by_video.get(segment.video_id)
        if video is None:
            continue
        judged += 1
        right += int(video.summary.item_at(segment.start_s, segment.end_s) == segment.item_id)
    return {"segments": judged, "correct": right, "accuracy": _ratio(right, judged)}


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None
