"""Live-stream UI drawn over the camera picture: banners, comments, stickers, picture-in-picture."""

from __future__ import annotations

import string
from dataclasses import dataclass

import cv2
import numpy as np

from training.synth.compose import paste_at
from training.synth.ui_panels import make_panels


def _word(rng: np.random.Generator, lo: int, hi: int) -> str:
    letters = list(string.ascii_letters + string.digits)
    return "".join(rng.choice(letters, int(rng.integers(lo, hi))))


def text_patch(text: str, scale: float, fg: tuple[int, int, int], bg: tuple[int, int, int, int]) -> np.ndarray:
    """An RGBA (h, w, 4) bar with ``text`` in OpenCV's Hershey font (Latin script only)."""
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, int(scale * 2)))
    pad = int(6 * scale) + 4
    patch = np.zeros((th + base + 2 * pad, tw + 2 * pad, 4), np.uint8)
    patch[:] = bg
    cv2.putText(patch, text, (pad, pad + th), cv2.FONT_HERSHEY_SIMPLEX, scale, (*fg, 255), max(1, int(scale * 2)),
                cv2.LINE_AA)
    return patch


@dataclass
class Overlay:
    """Precomputed UI of one stream.

    Attributes:
        banner: RGBA title bar and its top-left position.
        comments: RGBA comment lines (a window of them scrolls).
        stickers: RGBA stickers (hearts, stars, a sale tag) with their drift parameters.
        pip: RGBA picture-in-picture and its top-left position.
        panels: RGBA live-commerce boards and avatars (``ui_panels``) with their top-left positions;
            drawn under the banner and comments, never boxed.
    """

    banner: tuple[np.ndarray, int, int]
    comments: list[np.ndarray]
    comment_origin: tuple[int, int]
    stickers: list[tuple[np.ndarray, float, float, float, float]]
    pip: tuple[np.ndarray, int, int] | None
    panels: list[tuple[np.ndarray, int, int]]


def make_overlay(rng: np.random.Generator, width: int, height: int) -> Overlay:
    """Build the UI of a stream (all drawing that does not change per frame)."""
    s = min(width, height) / 540.0
    title = f"LIVE  {_word(rng, 4, 9)}  {int(rng.integers(100, 99999))} watching"
    banner = text_patch(title, 0.7 * s, (255, 255, 255), (20, 20, 20, 150))
    cv2.rectangle(banner, (2, 2), (int(8 * s), banner.shape[0] - 3), (230, 30, 50, 255), -1)
    comments = [
        text_patch(f"{_word(rng, 3, 7)}: {_word(rng, 3, 12)} {_word(rng, 2, 8)}", 0.5 * s, (255, 255, 255),
                    (0, 0, 0, 110))
        for _ in range(12)
    ]
    stickers: list[tuple[np.ndarray, float, float, float, float]] = []
    for _ in range(int(rng.integers(2, 5))):
        size = int(rng.integers(26, 48) * s)
        st = np.zeros((size, size, 4), np.uint8)
        colour = (int(rng.integers(150, 256)), int(rng.integers(0, 120)), int(rng.integers(60, 200)), 230)
        c = size // 2
        if rng.random() < 0.5:  # heart
            cv2.circle(st, (int(size * 0.32), int(size * 0.38)), size // 4, colour, -1, cv2.LINE_AA)
            cv2.circle(st, (int(size * 0.68), int(size * 0.38)), size // 4, colour, -1, cv2.LINE_AA)
            tri = np.array([[size * 0.1, size * 0.48], [size * 0.9, size * 0.48], [c, size * 0.92]], np.int32)
            cv2.fillPoly(st, [tri], colour, cv2.LINE_AA)
        else:  # star
            a = np.linspace(-np.pi / 2, 1.5 * np.pi, 11)[:-1]
            r = np.where(np.arange(10) % 2 == 0, size * 0.48, size * 0.2)
            pts = np.stack([c + r * np.cos(a), c + r * np.sin(a)], 1).astype(np.int32)
            cv2.fillPoly(st, [pts], colour, cv2.LINE_AA)
        # (sticker, x as share of width, start y share, speed in heights per second, phase)
        stickers.append((st, float(rng.uniform(0.82, 0.94)), float(rng.uniform(0.5, 0.9)),
                         float(rng.uniform(0.05, 0.15)), float(rng.uniform(0, 1))))
    tag = text_patch(f"SALE -{int(rng.integers(1, 8)) * 10}%", 0.8 * s, (255, 255, 255), (210, 30, 40, 230))
    stickers.append((tag, float(rng.uniform(0.02, 0.1)), float(rng.uniform(0.55, 0.7)), 0.0, 0.0))
    pip = None
    if rng.random() < 0.7:
        pw, ph = int(width * 0.2), int(height * 0.13)
        thumb = np.zeros((ph, pw, 4), np.uint8)
        thumb[..., :3] = rng.integers(90, 200, 3)
        thumb[..., 3] = 255
        skin = (int(rng.integers(150, 240)), int(rng.integers(110, 190)), int(rng.integers(80, 160)), 255)
        cv2.circle(thumb, (pw // 2, int(ph * 0.45)), int(ph * 0.22), skin, -1, cv2.LINE_AA)
        cv2.ellipse(thumb, (pw // 2, ph), (int(pw * 0.3), int(ph * 0.3)), 0, 180, 360, (40, 40, 50, 255), -1)
        cv2.rectangle(thumb, (0, 0), (pw - 1, ph - 1), (255, 255, 255, 255), max(2, int(3 * s)))
        x = int(width * 0.76) if rng.random() < 0.5 else int(width * 0.04)
        pip = (thumb, x, banner.shape[0] + int(height * 0.02))
    return Overlay(
        banner=(banner, int(width * 0.02), int(height * 0.012)),
        comments=comments,
        comment_origin=(int(width * 0.02), int(height * 0.86)),
        stickers=stickers,
        pip=pip,
        panels=make_panels(np.random.default_rng(int(rng.integers(2**63))), width, height),
    )


def draw_overlay(frame: np.ndarray, overlay: Overlay, t: float) -> None:
    """Draw the UI for stream time ``t`` (seconds) onto ``frame`` (H, W, 3) uint8 in place."""
    h, w = frame.shape[:2]
    for panel, px, py in overlay.panels:
        paste_at(frame, panel, px, py)
    banner, bx, by = overlay.banner
    paste_at(frame, banner, bx, by)
    if overlay.pip is not None:
        paste_at(frame, *overlay.pip)
    first = int(t * 1.2)
    x, y = overlay.comment_origin
    for k in range(3):
        patch = overlay.comments[(first + k) % len(overlay.comments)]
        paste_at(frame, patch, x, y - (2 - k) * (patch.shape[0] + 4))
    for st, sx, sy, speed, phase in overlay.stickers:
        yy = sy - ((t * speed + phase) % 1.0) * 0.4 if speed > 0 else sy
        paste_at(frame, st, int(sx * w), int(yy * h))
