"""Live-commerce UI panels: the saturated, text-dense boards that real shopping streams lay over the picture.

Real streams carry large pink, purple or red panels with rows of CJK text (prices, sizes, coupons), a
shop logo, round avatars with coloured rings and product cards. They are bright and textured like a
printed garment, and a detector trained without them takes them for the sold item. These panels are
drawn as negatives: they get no box.

Everything is drawn with OpenCV primitives from the stream's generator, so a stream renders the same
way on every machine.
"""

from __future__ import annotations

import cv2
import numpy as np

# Background colours of real live-commerce panels (RGB): hot pink, rose, purple, violet, red, orange,
# sky blue, white, black.
PANEL_COLOURS: tuple[tuple[int, int, int], ...] = (
    (236, 64, 140), (250, 150, 190), (150, 60, 200), (110, 70, 230), (220, 30, 50), (250, 130, 40),
    (90, 170, 240), (250, 250, 250), (30, 30, 35),
)
TEXT_COLOURS: tuple[tuple[int, int, int], ...] = ((255, 255, 255), (255, 235, 60), (30, 30, 30), (230, 20, 40))


def _pick(rng: np.random.Generator, colours: tuple[tuple[int, int, int], ...]) -> tuple[int, int, int]:
    return colours[int(rng.integers(len(colours)))]


def glyph_line(rng: np.random.Generator, chars: int, size: int, colour: tuple[int, int, int]) -> np.ndarray:
    """A line of CJK-like glyphs: each character is 2-5 strokes inside a square cell.

    Args:
        rng: the stream's generator.
        chars: number of characters.
        size: cell side in pixels (>= 6).
        colour: stroke colour.

    Returns:
        (size, chars * size, 4) uint8 RGBA, transparent between strokes.
    """
    size = max(6, int(size))
    out = np.zeros((size, chars * size, 4), np.uint8)
    thick = max(1, size // 9)
    lo, hi = int(size * 0.12), int(size * 0.88)
    for c in range(chars):
        x0 = c * size
        for _ in range(int(rng.integers(2, 6))):
            kind = int(rng.integers(4))
            a = int(rng.integers(lo, hi))
            b0, b1 = sorted(int(v) for v in rng.integers(lo, hi, 2))
            if kind == 0:  # horizontal stroke
                p, q = (x0 + b0, a), (x0 + max(b1, b0 + 3), a)
            elif kind == 1:  # vertical stroke
                p, q = (x0 + a, b0), (x0 + a, max(b1, b0 + 3))
            elif kind == 2:  # falling diagonal
                p, q = (x0 + b0, b0), (x0 + b1, b1)
            else:  # rising diagonal
                p, q = (x0 + b0, b1), (x0 + b1, b0)
            cv2.line(out, p, q, (*colour, 255), thick, cv2.LINE_AA)
        if rng.random() < 0.25:  # an enclosing radical
            cv2.rectangle(out, (x0 + lo, lo), (x0 + hi, hi), (*colour, 255), thick, cv2.LINE_AA)
    return out


def _stamp(dst: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    """Alpha-composite an RGBA patch into an RGBA layer at (x, y), clipped."""
    h, w = patch.shape[:2]
    x1, y1, x2, y2 = max(0, x), max(0, y), min(dst.shape[1], x + w), min(dst.shape[0], y + h)
    if x2 <= x1 or y2 <= y1:
        return
    src = patch[y1 - y : y2 - y, x1 - x : x2 - x].astype(np.float32)
    roi = dst[y1:y2, x1:x2].astype(np.float32)
    a = src[..., 3:4] / 255.0
    roi[..., :3] = src[..., :3] * a + roi[..., :3] * (1.0 - a)
    roi[..., 3:4] = np.maximum(roi[..., 3:4], src[..., 3:4])
    dst[y1:y2, x1:x2] = roi.astype(np.uint8)


def info_panel(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A board of prices, sizes or coupons: rounded, saturated or gradient, rows of glyph text.

    Args:
        rng: the stream's generator.
        width: panel width in pixels (>= 40).
        height: panel height in pixels (>= 40).

    Returns:
        (height, width, 4) uint8 RGBA.
    """
    panel = np.zeros((height, width, 4), np.uint8)
    top, bottom = np.array(_pick(rng, PANEL_COLOURS), float), np.array(_pick(rng, PANEL_COLOURS), float)
    if rng.random() < 0.5:
        bottom = top
    ramp = np.linspace(0.0, 1.0, height)[:, None]
    panel[..., :3] = (top * (1 - ramp) + bottom * ramp)[:, None, :].astype(np.uint8)
    alpha = int(rng.integers(190, 256))
    mask = np.zeros((height, width), np.uint8)
    radius = int(min(width, height) * rng.uniform(0.02, 0.12))
    cv2.rectangle(mask, (radius, 0), (width - 1 - radius, height - 1), 255, -1)
    cv2.rectangle(mask, (0, radius), (width - 1, height - 1 - radius), 255, -1)
    for cx, cy in ((radius, radius), (width - 1 - radius, radius), (radius, height - 1 - radius),
                   (width - 1 - radius, height - 1 - radius)):
        cv2.circle(mask, (cx, cy), radius, 255, -1, cv2.LINE_AA)
    panel[..., 3] = (mask.astype(np.uint16) * alpha // 255).astype(np.uint8)
    if rng.random() < 0.5:  # a border in a second colour
        cv2.rectangle(panel, (2, 2), (width - 3, height - 3), (*_pick(rng, PANEL_COLOURS), alpha),
                      max(2, min(width, height) // 40))
    y = int(height * 0.06)
    if rng.random() < 0.6:  # a header band
        band = int(height * rng.uniform(0.12, 0.22))
        cv2.rectangle(panel, (0, y), (width - 1, y + band), (*_pick(rng, PANEL_COLOURS), alpha), -1)
        text = glyph_line(rng, max(2, int(width * 0.8 / max(band * 0.7, 6))), int(band * 0.7),
                          _pick(rng, TEXT_COLOURS))
        _stamp(panel, text, int(width * 0.08), y + int(band * 0.15))
        y += band + int(height * 0.04)
    size = max(6, int(min(width * 0.09, height * 0.1) * rng.uniform(0.6, 1.2)))
    colour = _pick(rng, TEXT_COLOURS)
    while y + size < height * 0.94:
        chars = int(rng.integers(3, max(4, int(width * 0.85 / size) + 1)))
        _stamp(panel, glyph_line(rng, chars, size, colour), int(width * 0.06), y)
        if rng.random() < 0.3:  # a price in bigger digits
            cv2.putText(panel, f"{int(rng.integers(29, 999))}", (int(width * 0.6), y + size), cv2.FONT_HERSHEY_DUPLEX,
                        size / 22.0, (*_pick(rng, TEXT_COLOURS), 255), max(1, size // 10), cv2.LINE_AA)
        y += int(size * rng.uniform(1.3, 1.9))
    return panel


def avatar(rng: np.random.Generator, size: int) -> np.ndarray:
    """A round profile picture with a coloured ring (a face on a plain or patterned ground).

    Returns:
        (size, size, 4) uint8 RGBA.
    """
    out = np.zeros((size, size, 4), np.uint8)
    c, r = size // 2, size // 2 - 1
    ground = tuple(int(v) for v in rng.integers(60, 256, 3))
    cv2.circle(out, (c, c), r, (*ground, 255), -1, cv2.LINE_AA)
    skin = (int(rng.integers(190, 250)), int(rng.integers(150, 210)), int(rng.integers(120, 180)), 255)
    hair = (int(rng.integers(10, 90)), int(rng.integers(10, 60)), int(rng.integers(10, 50)), 255)
    cv2.ellipse(out, (c, int(c * 0.95)), (int(r * 0.55), int(r * 0.7)), 0, 0, 360, hair, -1, cv2.LINE_AA)
    cv2.ellipse(out, (c, int(c * 1.05)), (int(r * 0.38), int(r * 0.48)), 0, 0, 360, skin, -1, cv2.LINE_AA)
    cv2.circle(out, (c, c), r, (*_pick(rng, PANEL_COLOURS), 255), max(2, size // 14), cv2.LINE_AA)
    return out


def make_panels(rng: np.random.Generator, width: int, height: int) -> list[tuple[np.ndarray, int, int]]:
    """The panels of one stream and their top-left corners (they stay put, as real ones do).

    Panels hug the frame's left and right edges (a wide one reaches over the presenter's side); avatars
    go anywhere; some streams have none, as some real ones do.

    Args:
        rng: the stream's generator.
        width: frame width.
        height: frame height.

    Returns:
        ``(rgba, x, y)`` for each panel and avatar.
    """
    out: list[tuple[np.ndarray, int, int]] = []
    if rng.random() < 0.15:
        return out
    for _ in range(int(rng.integers(1, 4))):
        pw = int(width * rng.uniform(0.14, 0.32))
        ph = int(height * rng.uniform(0.08, 0.34))
        margin = int(width * rng.uniform(0.0, 0.05))
        x = width - pw - margin if rng.random() < 0.5 else margin
        y = int(height * rng.uniform(0.08, 0.72))
        out.append((info_panel(rng, max(pw, 40), max(ph, 40)), x, y))
    for _ in range(int(rng.integers(0, 3))):
        size = int(min(width, height) * rng.uniform(0.08, 0.16))
        x = int(width * rng.uniform(0.02, 0.9 - size / width))
        y = int(height * rng.uniform(0.05, 0.8))
        out.append((avatar(rng, size), x, y))
    return out
