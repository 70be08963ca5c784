"""Image pre-processing and box post-processing shared by every backend (numpy + OpenCV, no torch).

Conventions (docs/design.md, "Model package"): frames and crops are RGB uint8 ``(H, W, 3)``; the
network input is either NCHW float32 ``(x * scale - mean) / std`` or, for a package whose graph
normalises its own input, the NHWC uint8 pixels as they are; ``letterbox`` scales by
``s = min(W / w, H / h)`` and places the image at the TOP-LEFT of a canvas filled with ``pad_value``,
so a network box maps back to frame pixels by dividing by ``s``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from engines.package import InputSpec, Normalization
from stream.errors import LiveTagError


class EngineInputError(LiveTagError):
    """An image handed to an engine is not an RGB uint8 (H, W, 3) array."""


def check_image(image: np.ndarray, what: str = "frame") -> None:
    """Raise :class:`EngineInputError` unless ``image`` is a non-empty (H, W, 3) uint8 array."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise EngineInputError(f"{what} must be an RGB uint8 array of shape (H, W, 3), got shape {shape} dtype {dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise EngineInputError(f"{what} is empty (shape {image.shape}); skip it before inference")


def area_resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Shrink ``image`` (h, w, C) to (height, width, C), averaging as OpenCV's ``INTER_AREA`` does, fast.

    OpenCV averages whole ``k x k`` blocks quickly when both factors are integers and takes a slow
    general path otherwise (about 1 ms for a 450 x 700 garment crop to 256 x 256). So the image is
    first resized bilinearly to the largest integer multiple of the target that it covers (a step
    of less than 2x, where bilinear sampling loses nothing to aliasing), then block-averaged: at
    half the cost or less, within 1-2 grey levels of ``INTER_AREA`` (mean 0.1; tested). Even factors
    are taken 2 x 2 at a time first, OpenCV's fastest path (a 1080p frame to 320 x 180: 1.4 -> 0.8 ms),
    each step rounding to whole grey levels (1 level at most against one block average).

    Args:
        image: (h, w) or (h, w, C) uint8 with ``h >= height`` and ``w >= width``.
        width: Target width.
        height: Target height.
    """
    kx, ky = image.shape[1] // width, image.shape[0] // height
    if (image.shape[1], image.shape[0]) != (width * kx, height * ky):
        image = cv2.resize(image, (width * kx, height * ky), interpolation=cv2.INTER_LINEAR)
    while kx % 2 == 0 and ky % 2 == 0:  # 2 x 2 averaging has OpenCV's fastest (SIMD) path: 6x = 2x, then 3x
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
        kx, ky = kx // 2, ky // 2
    if (kx, ky) == (1, 1):
        return image
    if 1 in (kx, ky) and kx * ky % 2 == 1:
        return _line_mean(image, kx, ky)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def _line_mean(image: np.ndarray, kx: int, ky: int) -> np.ndarray:
    """Means of ``kx x ky`` blocks along one axis (``kx`` or ``ky`` is 1, their product odd), the
    same to the bit as ``INTER_AREA`` (no sum of an odd count falls half-way between two levels),
    at a fifth of its time: OpenCV takes its general path for a block of 1 x 3 (a 256 x 768 luma
    plane: 0.18 -> 0.03 ms; RGB 0.52 -> 0.09 ms).

    Args:
        image: (h, w) or (h, w, C) uint8 with ``h`` a multiple of ``ky`` and ``w`` of ``kx``.
    """
    k = kx * ky
    total = image[0::ky, 0::kx].astype(np.uint16)  # k <= 257 keeps the sum under 2 ** 16
    for step in range(1, k):
        total += image[step::ky] if kx == 1 else image[:, step::kx]
    total += k // 2
    total //= k
    return total.astype(np.uint8)


def resize_to(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` (h, w, C) at (height, width, C): unchanged at its size, :func:`area_resize` when it
    shrinks, bilinear when it grows. The one resize of :func:`letterbox` and :func:`stretch`, so a
    frame scaled with it ahead of time (on a decode thread) gives the network the very same input."""
    return _resize(image, width, height)


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[1] == width and image.shape[0] == height:
        return image
    if width <= image.shape[1] and height <= image.shape[0]:
        return area_resize(image, width, height)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def letterbox(image: np.ndarray, height: int, width: int, pad_value: int = 114) -> tuple[np.ndarray, float]:
    """Scale ``image`` to fit ``height x width`` keeping its aspect, placed at the top-left.

    Args:
        image: (h, w, 3) uint8.
        height: Canvas height H.
        width: Canvas width W.
        pad_value: Fill of the uncovered area.

    Returns:
        ``(canvas, s)``: canvas (H, W, 3) uint8 and the scale ``s = min(W / w, H / h)``.
    """
    h, w = image.shape[:2]
    s = min(width / w, height / h)
    new_w = min(width, max(1, round(w * s)))
    new_h = min(height, max(1, round(h * s)))
    canvas = np.full((height, width, 3), pad_value, dtype=np.uint8)
    canvas[:new_h, :new_w] = _resize(image, new_w, new_h)
    return canvas, s


def scaled_size(inp: InputSpec, width: int, height: int) -> tuple[int, int]:
    """``(w, h)`` a ``width x height`` image takes inside the network input ``inp``: the fit of
    :func:`letterbox`, or the whole input for a stretching model (:func:`stretch`)."""
    if inp.resize != "letterbox":
        return inp.width, inp.height
    s = min(inp.width / width, inp.height / height)
    return min(inp.width, max(1, round(width * s))), min(inp.height, max(1, round(height * s)))


def stretch(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize ``image`` (h, w, 3) to (H, W, 3) ignoring its aspect ratio."""
    return _resize(image, width, height)


def normalisation_constants(norm: Normalization) -> tuple[np.ndarray, np.ndarray]:
    """``(mul, add)``: (3,) float32 each, so that ``x * mul + add == (x * scale - mean) / std``.

    One place for the constants, so the numpy path and a graph that normalises its own input
    (:mod:`engines.pixel_input`) multiply by the very same float32 values.
    """
    std = np.asarray(norm.std, np.float32)
    mul = (norm.scale / std).astype(np.float32)
    add = (-np.asarray(norm.mean, np.float32) / std).astype(np.float32)
    return mul, add


def normalise(images: Sequence[np.ndarray], norm: Normalization) -> np.ndarray:
    """Stack equally sized RGB uint8 images into a network batch.

    Args:
        images: N arrays of shape (H, W, 3) uint8.
        norm: Per-channel ``scale``, ``mean`` and ``std``.

    Returns:
        (N, 3, H, W) float32, C-contiguous: ``(x * scale - mean) / std``.
    """
    # NHWC -> NCHW on the uint8 bytes (a quarter of the memory traffic of float32), then one cast and
    # an in-place multiply-add per channel: 5x faster than casting first (benchmarks/frame_cost.py).
    batch = np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2)).astype(np.float32)
    mul, add = normalisation_constants(norm)
    batch *= mul[None, :, None, None]
    batch += add[None, :, None, None]
    return batch


def network_batch(images: Sequence[np.ndarray], inp: InputSpec, norm: Normalization) -> np.ndarray:
    """Stack equally sized RGB uint8 images into the batch the package's graph takes.

    Args:
        images: N arrays of shape (H, W, 3) uint8, already the input's size.
        inp: The package's input: uint8 pixels (normalised in the graph) or float32 planes.
        norm: The normalisation, applied here only for a float32 input.

    Returns:
        (N, H, W, 3) uint8 for a pixel input (one copy, no per-pixel arithmetic), else the
        (N, 3, H, W) float32 of :func:`normalise`.
    """
    if inp.takes_pixels:
        return np.stack(images)
    return normalise(images, norm)


def expand_box(box: Sequence[float], ratio: float, width: int, height: int) -> tuple[int, int, int, int]:
    """Grow a box by ``ratio`` of its size (half on each side) and clip it to the image.

    Args:
        box: ``x1, y1, x2, y2`` in pixels.
        ratio: Total growth; 0.1 makes the box 10 % wider and 10 % taller.
        width: Image width, the upper bound for x.
        height: Image height, the upper bound for y.

    Returns:
        Integer ``x1, y1, x2, y2`` with ``0 <= x1 < x2 <= width`` and ``0 <= y1 < y2 <= height``.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    dx = (x2 - x1) * ratio / 2.0
    dy = (y2 - y1) * ratio / 2.0
    left = int(np.clip(np.floor(x1 - dx), 0, max(width - 1, 0)))
    top = int(np.clip(np.floor(y1 - dy), 0, max(height - 1, 0)))
    right = int(np.clip(np.ceil(x2 + dx), left + 1, width))
    bottom = int(np.clip(np.ceil(y2 + dy), top + 1, height))
    return left, top, right, bottom


def crop(image: np.ndarray, box: Sequence[float], ratio: float = 0.1) -> np.ndarray:
    """The pixels of ``box`` expanded by ``ratio`` (see :func:`expand_box`); at least 1x1.

    Args:
        image: (H, W, 3) uint8 frame.
        box: ``x1, y1, x2, y2`` in frame pixels.
        ratio: Expansion before cropping.

    Returns:
        (h, w, 3) uint8 copy.
    """
    x1, y1, x2, y2 = expand_box(box, ratio, image.shape[1], image.shape[0])
    return np.ascontiguousarray(image[y1:y2, x1:x2])


def boxes_to_frame(boxes: np.ndarray, scale: float | tuple[float, float], width: int, height: int) -> np.ndarray:
    """Map network-input boxes back to frame pixels and clip them to the frame.

    Args:
        boxes: (N, 4) ``x1, y1, x2, y2`` in network-input pixels.
        scale: Letterbox ``s`` (one number) or stretch ``(sx, sy)`` = input size / frame size.
        width: Frame width w.
        height: Frame height h.

    Returns:
        (N, 4) float32 in ``[0, w] x [0, h]``.
    """
    sx, sy = (scale, scale) if isinstance(scale, int | float) else scale
    out = boxes.astype(np.float32, copy=True).reshape(-1, 4)
    out[:, [0, 2]] = np.clip(out[:, [0, 2]] / sx, 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]] / sy, 0, height)
    return out


def box_area(boxes: np.ndarray) -> np.ndarray:
    """(N,) areas of (N, 4) boxes; inverted boxes count as 0."""
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) intersection over union of boxes ``a`` (N, 4) and ``b`` (M, 4)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``[x1, y1, x2, y2]`` boxes (:func:`iou_matrix` of one pair)."""
    return float(iou_matrix(np.asarray([a], np.float64), np.asarray([b], np.float64))[0, 0])


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.6) -> np.ndarray:
    """Greedy class-agnostic non-maximum suppression.

    Args:
        boxes: (N, 4) ``x1, y1, x2, y2``.
        scores: (N,) higher is better.
        iou_threshold: A box is dropped when its IoU with a kept, higher-scoring box exceeds this.

    Returns:
        (M,) int64 indices of the kept boxes, best score first.
    """
    order = np.argsort(-scores, kind="stable")
    if order.size == 0:
        return order.astype(np.int64)
    ious = iou_matrix(boxes[order], boxes[order])
    suppressed = np.zeros(order.size, dtype=bool)
    keep: list[int] = []
    for i in range(order.size):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= ious[i] > iou_threshold
    return order[np.asarray(keep, dtype=np.int64)]
