"""Projective placement of RGBA sprites into frames, and the box that results."""

from __future__ import annotations

import cv2
import numpy as np


def similarity(pivot: tuple[float, float], target: tuple[float, float], scale: float, angle_deg: float,
               tilt: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Homography that maps ``pivot`` (sprite pixels) to ``target`` (frame pixels).

    Args:
        pivot: (x, y) in the source.
        target: (x, y) in the destination.
        scale: isotropic scale.
        angle_deg: rotation, counter-clockwise on screen.
        tilt: perspective terms (px, py) in 1/source-pixels; 1e-4..1e-3 gives a visible turn.

    Returns:
        (3, 3) float64.
    """
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a) * scale, np.sin(a) * scale
    to_origin = np.array([[1, 0, -pivot[0]], [0, 1, -pivot[1]], [0, 0, 1]], np.float64)
    persp = np.array([[1, 0, 0], [0, 1, 0], [tilt[0], tilt[1], 1]], np.float64)
    rot = np.array([[c, s, target[0]], [-s, c, target[1]], [0, 0, 1]], np.float64)
    return rot @ persp @ to_origin


def project(points: np.ndarray, hom: np.ndarray) -> np.ndarray:
    """Apply a homography to (N, 2) points; returns (N, 2) float32."""
    pts = np.asarray(points, np.float64).reshape(-1, 1, 2)
    return cv2.perspectiveTransform(pts, hom).reshape(-1, 2).astype(np.float32)


def box_of(points: np.ndarray, width: int, height: int, min_visible: float = 0.35) -> list[float] | None:
    """Axis-aligned box of points clipped to the frame.

    Returns:
        ``[x1, y1, x2, y2]`` rounded to 0.1 px, or None when less than ``min_visible`` of the unclipped
        box area is inside the frame or the clipped box is under 6 px on a side.
    """
    x1, y1 = points.min(0)
    x2, y2 = points.max(0)
    full = max(float((x2 - x1) * (y2 - y1)), 1e-6)
    cx1, cy1 = max(0.0, float(x1)), max(0.0, float(y1))
    cx2, cy2 = min(float(width), float(x2)), min(float(height), float(y2))
    if cx2 - cx1 < 6 or cy2 - cy1 < 6 or (cx2 - cx1) * (cy2 - cy1) < min_visible * full:
        return None
    return [round(cx1, 1), round(cy1, 1), round(cx2, 1), round(cy2, 1)]


def paste(dst: np.ndarray, rgba: np.ndarray, hom: np.ndarray) -> None:
    """Warp an RGBA sprite by ``hom`` and alpha-blend it into ``dst`` in place.

    Args:
        dst: (H, W, 3) uint8 frame.
        rgba: (h, w, 4) uint8 sprite, straight alpha.
        hom: (3, 3) sprite -> frame homography.
    """
    h, w = rgba.shape[:2]
    corners = project(np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32), hom)
    x1 = max(0, int(np.floor(corners[:, 0].min())))
    y1 = max(0, int(np.floor(corners[:, 1].min())))
    x2 = min(dst.shape[1], int(np.ceil(corners[:, 0].max())) + 1)
    y2 = min(dst.shape[0], int(np.ceil(corners[:, 1].max())) + 1)
    if x2 <= x1 or y2 <= y1:
        return
    shift = np.array([[1, 0, -x1], [0, 1, -y1], [0, 0, 1]], np.float64)
    warped = cv2.warpPerspective(rgba, shift @ hom, (x2 - x1, y2 - y1), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    blend(dst[y1:y2, x1:x2], warped)


def blend(roi: np.ndarray, rgba: np.ndarray) -> None:
    """Alpha-blend an RGBA patch of the same size into ``roi`` in place.

    Args:
        roi: (H, W, 3) uint8 picture or (H, W, 4) uint8 straight-alpha layer.
        rgba: (H, W, 4) uint8 straight-alpha patch.
    """
    alpha = cv2.extractChannel(rgba, 3)
    if not cv2.countNonZero(alpha):
        return
    if roi.shape[2] == 3:
        a3 = cv2.merge([alpha, alpha, alpha])
        rgb = cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB)
        fg = cv2.multiply(rgb, a3, scale=1.0 / 255.0)
        bg = cv2.multiply(roi, cv2.bitwise_not(a3), scale=1.0 / 255.0)
        roi[:] = cv2.add(fg, bg)
        return
    a = alpha.astype(np.float32) * (1.0 / 255.0)
    under = roi[..., 3].astype(np.float32) * (1.0 / 255.0) * (1.0 - a)
    total = a + under
    safe = np.where(total > 0, total, 1.0)
    rgb = (rgba[..., :3].astype(np.float32) * a[..., None] + roi[..., :3].astype(np.float32) * under[..., None])
    roi[..., :3] = (rgb / safe[..., None]).astype(np.uint8)
    roi[..., 3] = np.clip(total * 255.0 + 0.5, 0, 255).astype(np.uint8)


def paste_at(dst: np.ndarray, rgba: np.ndarray, x: int, y: int) -> None:
    """Alpha-blend an RGBA patch with its top-left at integer (x, y), clipped to ``dst``."""
    h, w = rgba.shape[:2]
    x1, y1 = max(0, x), max(0, y)
    x2, y2 = min(dst.shape[1], x + w), min(dst.shape[0], y + h)
    if x2 <= x1 or y2 <= y1:
        return
    blend(dst[y1:y2, x1:x2], rgba[y1 - y : y2 - y, x1 - x : x2 - x])
