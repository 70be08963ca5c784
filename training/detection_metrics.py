"""Detector evaluation: mAP@0.5 (all garments, per category, sold item) and sold-item precision/recall.

Predictions go through the same post-processing as the runtime (docs/design.md): drop
``score < score_threshold``, then class-agnostic NMS at IoU 0.6. Average precision is the area under
the all-point interpolated precision/recall curve (VOC 2010+), pooled over frames.

* ``map50``: class-agnostic AP of garment boxes, ranked by objectness.
* ``map50_classes``: mean over categories present in the ground truth of the AP of that category,
  each detection counted for its most likely category with score objectness x class probability.
* ``ap50_sold``: AP of the sold-item boxes only, ranked by objectness x sold probability.
* ``sold_precision`` / ``sold_recall``: detections with objectness x sold >= ``sold_threshold``
  against the sold-item boxes (IoU >= 0.5).
* ``sold_top1``: share of frames with a sold item whose single highest objectness x sold detection
  hits it (what a per-frame "which garment is sold" decision sees).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from engines.preprocess import iou_matrix, nms
from training.detection_data import DetectionCache, normalise_images
from training.engine import unwrap


@dataclass(frozen=True)
class FramePrediction:
    """Post-processed detections of one sample (input pixels).

    Attributes:
        boxes: (N, 4) float32.
        scores: (N,) objectness.
        class_probs: (N, C).
        sold: (N,) sold-item probability.
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_probs: np.ndarray
    sold: np.ndarray


def average_precision(scores: np.ndarray, hits: np.ndarray, num_truth: int) -> float:
    """All-point interpolated AP.

    Args:
        scores: (N,) detection scores pooled over frames.
        hits: (N,) bool, True where the detection matched an unmatched ground-truth box.
        num_truth: Number of ground-truth boxes.

    Returns:
        AP in [0, 1]; NaN when there is no ground truth.
    """
    if num_truth == 0:
        return float("nan")
    if scores.size == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(hits[order].astype(np.float64))
    fp = np.cumsum(~hits[order])
    recall = tp / num_truth
    precision = tp / np.maximum(tp + fp, 1e-12)
    recall = np.concatenate([[0.0], recall, [recall[-1]]])
    precision = np.concatenate([[1.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def match(pred_boxes: np.ndarray, pred_scores: np.ndarray, truth: np.ndarray, iou_threshold: float = 0.5) -> np.ndarray:
    """Greedy matching by descending score; each truth box is matched at most once.

    Args:
        pred_boxes: (N, 4).
        pred_scores: (N,).
        truth: (M, 4).
        iou_threshold: Minimum IoU of a match.

    Returns:
        (N,) bool hits, in the order of ``pred_boxes``.
    """
    hits = np.zeros(len(pred_boxes), bool)
    if len(pred_boxes) == 0 or len(truth) == 0:
        return hits
    ious = iou_matrix(pred_boxes.astype(np.float64), truth.astype(np.float64))
    taken = np.zeros(len(truth), bool)
    for i in np.argsort(-pred_scores, kind="stable"):
        candidates = np.where(taken, -1.0, ious[i])
        j = int(np.argmax(candidates))
        if candidates[j] >= iou_threshold:
            taken[j] = True
            hits[i] = True
    return hits


def postprocess(
    boxes: np.ndarray, scores: np.ndarray, class_probs: np.ndarray, sold: np.ndarray,
    score_threshold: float = 0.05, nms_iou: float = 0.6,
) -> FramePrediction:
    """Runtime post-processing of one sample's raw top-K outputs (K, ...): threshold then NMS."""
    keep = scores >= score_threshold
    boxes, scores, class_probs, sold = boxes[keep], scores[keep], class_probs[keep], sold[keep]
    order = nms(boxes, scores, nms_iou)
    return FramePrediction(boxes[order], scores[order], class_probs[order], sold[order])


def detection_metrics(
    predictions: Sequence[FramePrediction],
    truths: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    num_classes: int,
    sold_threshold: float = 0.5,
) -> dict[str, float]:
    """All metrics of the module docstring.

    Args:
        predictions: One ``FramePrediction`` per sample.
        truths: Per sample: boxes (n, 4), classes (n,), sold (n,) flags.
        num_classes: Number of categories.
        sold_threshold: Operating point of the sold-item precision/recall.

    Returns:
        ``map50``, ``map50_classes``, ``ap50_sold``, ``sold_precision``, ``sold_recall``,
        ``sold_top1`` and ``frames``.
    """
    agnostic: list[tuple[np.ndarray, np.ndarray]] = []
    per_class: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {c: [] for c in range(num_classes)}
    class_truth = np.zeros(num_classes, np.int64)
    sold_scored: list[tuple[np.ndarray, np.ndarray]] = []
    n_truth = n_sold = tp_op = n_op = top1_hits = frames_with_sold = 0
    for pred, (boxes, classes, sold) in zip(predictions, truths, strict=True):
        n_truth += len(boxes)
        agnostic.append((pred.scores, match(pred.boxes, pred.scores, boxes)))
        labels = pred.class_probs.argmax(1) if len(pred.scores) else np.zeros(0, np.int64)
        class_scores = pred.scores * (pred.class_probs.max(1) if len(pred.scores) else 0.0)
        for c in range(num_classes):
            truth_c = boxes[classes == c]
            class_truth[c] += len(truth_c)
            chosen = labels == c
            if chosen.any() or len(truth_c):
                per_class[c].append((class_scores[chosen], match(pred.boxes[chosen], class_scores[chosen], truth_c)))
        sold_boxes = boxes[sold > 0]
        n_sold += len(sold_boxes)
        sold_score = pred.scores * pred.sold
        sold_hits = match(pred.boxes, sold_score, sold_boxes)
        sold_scored.append((sold_score, sold_hits))
        chosen = sold_score >= sold_threshold
        n_op += int(chosen.sum())
        tp_op += int(match(pred.boxes[chosen], sold_score[chosen], sold_boxes).sum())
        if len(sold_boxes):
            frames_with_sold += 1
            if len(sold_score):
                best = int(np.argmax(sold_score))
                top1_hits += int(match(pred.boxes[best : best + 1], sold_score[best : best + 1], sold_boxes)[0])

    def pooled(parts: list[tuple[np.ndarray, np.ndarray]], total: int) -> float:
        if not parts:
            return average_precision(np.zeros(0), np.zeros(0, bool), total)
        return average_precision(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), total)

    class_aps = [pooled(per_class[c], int(class_truth[c])) for c in range(num_classes) if class_truth[c] > 0]
    return {
        "map50": pooled(agnostic, n_truth),
        "map50_classes": float(np.mean(class_aps)) if class_aps else float("nan"),
        "ap50_sold": pooled(sold_scored, n_sold),
        "sold_precision": tp_op / n_op if n_op else 0.0,
        "sold_recall": tp_op / n_sold if n_sold else float("nan"),
        "sold_top1": top1_hits / frames_with_sold if frames_with_sold else float("nan"),
        "frames": float(len(predictions)),
    }


@torch.no_grad()
def predict(
    model: nn.Module, cache: DetectionCache, indices: Sequence[int], device: torch.device, *,
    batch_size: int = 32, score_threshold: float = 0.05, progress: bool = True,
) -> list[FramePrediction]:
    """Run the decoded model over cached samples and post-process each one."""
    module = unwrap(model)
    was_training = module.training
    module.eval()
    out: list[FramePrediction] = []
    order = list(indices)
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc="evaluate", disable=not progress, leave=False):
        chunk = order[start : start + batch_size]
        images = normalise_images(np.stack([np.asarray(cache.images[i]) for i in chunk])).to(device)
        boxes, scores, class_probs, sold = (t.float().cpu().numpy() for t in module(images))
        for b in range(len(chunk)):
            out.append(postprocess(boxes[b], scores[b], class_probs[b], sold[b], score_threshold))
    module.train(was_training)
    return out


def evaluate(
    model: nn.Module, cache: DetectionCache, device: torch.device, *, indices: Sequence[int] | None = None,
    batch_size: int = 32, progress: bool = True,
) -> dict[str, float]:
    """Metrics of ``model`` on a cache (all samples unless ``indices`` is given)."""
    chosen = list(range(len(cache))) if indices is None else [int(i) for i in indices]
    preds = predict(model, cache, chosen, device, batch_size=batch_size, score_threshold=0.01, progress=progress)
    truths = [cache.targets(i) for i in chosen]
    return detection_metrics(preds, truths, num_classes=unwrap(model).config.num_classes)  # type: ignore[union-attr,arg-type]
