"""Detector targets and losses (CenterNet-style heat map, GIoU boxes, category and sold-item heads).

Targets on the stride-8 grid of an S x S input (h = w = S / 8):

* ``heat`` (1, h, w): per box, an elliptic Gaussian around the center cell (sigma = box side / 6 in
  cells, at least 0.5), exactly 1 at the cell holding the box center; the max over boxes.
* ``weight`` (h, w): regression weight, the box's Gaussian value on the 3x3 cells around its center
  whose centers fall inside the box (smaller boxes overwrite larger ones), else 0.
* ``box`` (4, h, w) the assigned box in input pixels; ``cls`` (h, w) its category (-1 where
  unassigned); ``sold`` (h, w) 1.0 where the assigned box is the sold item.

Loss = focal(heat) + 2 * GIoU + 0.5 * L1(log-distances) + CE(category) + BCE(sold), where the last
four are averaged with ``weight``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training.engine import unwrap
from training.models.detector import cell_centers, distances_to_boxes

LOSS_WEIGHTS = {"heat": 1.0, "giou": 2.0, "l1": 0.5, "cls": 1.0, "sold": 1.0}


def encode_targets(
    boxes: np.ndarray, classes: np.ndarray, sold: np.ndarray, height: int, width: int, stride: int
) -> dict[str, np.ndarray]:
    """Build the training targets of one sample.

    Args:
        boxes: (n, 4) float32 x1, y1, x2, y2 in input pixels.
        classes: (n,) int category indices.
        sold: (n,) 1 for the sold item, else 0.
        height: Input height H.
        width: Input width W.
        stride: Output stride.

    Returns:
        ``heat`` (1, h, w), ``weight`` (h, w), ``box`` (4, h, w) float32, ``cls`` (h, w) int64,
        ``sold`` (h, w) float32; h = H // stride, w = W // stride.
    """
    h, w = height // stride, width // stride
    heat = np.zeros((h, w), np.float32)
    weight = np.zeros((h, w), np.float32)
    box_t = np.zeros((4, h, w), np.float32)
    cls_t = np.full((h, w), -1, np.int64)
    sold_t = np.zeros((h, w), np.float32)
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) if len(boxes) else np.zeros(0)
    for i in np.argsort(-areas, kind="stable"):
        x1, y1, x2, y2 = (float(v) for v in boxes[i])
        if x2 - x1 < 1 or y2 - y1 < 1:
            continue
        cx, cy = (x1 + x2) / 2 / stride, (y1 + y2) / 2 / stride
        ci, cj = min(int(cx), w - 1), min(int(cy), h - 1)
        sx = max((x2 - x1) / stride / 6.0, 0.5)
        sy = max((y2 - y1) / stride / 6.0, 0.5)
        gauss = np.exp(-((gx - ci) ** 2) / (2 * sx * sx) - ((gy - cj) ** 2) / (2 * sy * sy))
        np.maximum(heat, gauss, out=heat)
        heat[cj, ci] = 1.0
        for dj in (-1, 0, 1):
            for di in (-1, 0, 1):
                j, k = cj + dj, ci + di
                if not (0 <= j < h and 0 <= k < w):
                    continue
                px, py = (k + 0.5) * stride, (j + 0.5) * stride
                inside = x1 < px < x2 and y1 < py < y2
                if not (inside or (dj == 0 and di == 0)):
                    continue
                weight[j, k] = gauss[j, k] if (dj or di) else 1.0
                box_t[:, j, k] = (x1, y1, x2, y2)
                cls_t[j, k] = int(classes[i])
                sold_t[j, k] = float(sold[i])
    return {"heat": heat[None], "weight": weight, "box": box_t, "cls": cls_t, "sold": sold_t}


def focal_heat_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss.

    Args:
        logits: (B, 1, h, w) center logits.
        target: (B, 1, h, w) Gaussian heat targets with exact 1 at centers.

    Returns:
        Scalar: summed loss divided by the number of centers (at least 1).
    """
    pred = torch.sigmoid(logits.float()).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1.0).float()
    neg_weight = torch.pow(1 - target, 4)
    pos_loss = torch.log(pred) * torch.pow(1 - pred, 2) * pos
    neg_loss = torch.log(1 - pred) * torch.pow(pred, 2) * neg_weight * (1 - pos)
    return -(pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1.0)


def giou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Generalised IoU of matching boxes.

    Args:
        pred: (N, 4) x1, y1, x2, y2.
        target: (N, 4) x1, y1, x2, y2.

    Returns:
        (N,) GIoU in [-1, 1].
    """
    lt = torch.max(pred[:, :2], target[:, :2])
    rb = torch.min(pred[:, 2:], target[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    area_p = (pred[:, 2:] - pred[:, :2]).clamp(min=0).prod(dim=1)
    area_t = (target[:, 2:] - target[:, :2]).clamp(min=0).prod(dim=1)
    union = area_p + area_t - inter
    iou = inter / union.clamp(min=1e-6)
    hull = (torch.max(pred[:, 2:], target[:, 2:]) - torch.min(pred[:, :2], target[:, :2])).prod(dim=1)
    return iou - (hull - union) / hull.clamp(min=1e-6)


def detection_losses(maps: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor], stride: int) -> dict[str, torch.Tensor]:
    """Every loss term, unweighted.

    Args:
        maps: ``GarmentDetector.raw`` output for the batch.
        batch: Targets from ``encode_targets``, stacked (B leading) and on the maps' device.
        stride: Output stride.

    Returns:
        Scalars ``heat``, ``giou``, ``l1``, ``cls``, ``sold``.
    """
    heat_loss = focal_heat_loss(maps["center"], batch["heat"])
    weight = batch["weight"]  # (B, h, w)
    mask = weight > 0
    norm = weight[mask].sum().clamp(min=1e-6)
    _, _, h, w = maps["center"].shape
    cx, cy = cell_centers(h, w, stride, weight.device)
    cx = cx.view(1, h, w).expand_as(weight)[mask]
    cy = cy.view(1, h, w).expand_as(weight)[mask]
    dist = maps["distances"].float().permute(0, 2, 3, 1)[mask]  # (P, 4)
    target_box = batch["box"].permute(0, 2, 3, 1)[mask]  # (P, 4)
    pred_box = distances_to_boxes(dist, cx, cy, stride)
    wpos = weight[mask]
    giou_loss = ((1.0 - giou(pred_box, target_box)) * wpos).sum() / norm
    target_dist = torch.stack(
        [cx - target_box[:, 0], cy - target_box[:, 1], target_box[:, 2] - cx, target_box[:, 3] - cy], dim=1
    )
    target_log = torch.log(target_dist.clamp(min=0.5) / stride)
    l1_loss = (F.smooth_l1_loss(dist, target_log, reduction="none").sum(1) * wpos).sum() / norm
    logits = maps["classes"].float().permute(0, 2, 3, 1)[mask]
    cls_loss = (F.cross_entropy(logits, batch["cls"][mask], reduction="none") * wpos).sum() / norm
    sold_logits = maps["sold"].float()[:, 0][mask]
    sold_loss = (F.binary_cross_entropy_with_logits(sold_logits, batch["sold"][mask], reduction="none") * wpos).sum() / norm
    return {"heat": heat_loss, "giou": giou_loss, "l1": l1_loss, "cls": cls_loss, "sold": sold_loss}


def detector_loss_fn(
    model: nn.Module, batch: Mapping[str, torch.Tensor], device: torch.device
) -> tuple[torch.Tensor, dict[str, float]]:
    """``train_one_epoch`` loss function: weighted sum of ``detection_losses``."""
    moved = {name: t.to(device, non_blocking=True) for name, t in batch.items()}
    moved["image"] = moved["image"].contiguous(memory_format=torch.channels_last)
    module = unwrap(model)
    maps = model(moved["image"]) if model.training else module.raw(moved["image"])  # type: ignore[operator]
    if not isinstance(maps, dict):
        raise TypeError("the detector must return its raw maps in train mode")
    parts = detection_losses(maps, moved, module.config.stride)  # type: ignore[union-attr,arg-type]
    total = sum(LOSS_WEIGHTS[name] * value for name, value in parts.items())
    assert isinstance(total, torch.Tensor)
    return total, {name: float(value.detach()) for name, value in parts.items()}
