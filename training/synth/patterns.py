"""Fabric textures: the pattern of a product drawn on a flat canvas.

The geometry of a pattern comes from ``pattern_seed`` alone and the colours from the colourway, so
colour variants of one design share their stripes, dots or print layout exactly.
"""

from __future__ import annotations

import string

import cv2
import numpy as np

Colours = tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]


def _coords(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs, ys


def _fill(height: int, width: int, rgb: tuple[int, int, int]) -> np.ndarray:
    out = np.empty((height, width, 3), np.uint8)
    out[:] = rgb
    return out


def _paint(base: np.ndarray, mask: np.ndarray, rgb: tuple[int, int, int]) -> None:
    base[mask] = rgb


def _stripes(rng: np.random.Generator, c: Colours, h: int, w: int, unit: float) -> np.ndarray:
    angle = float(rng.choice([0.0, 90.0, 45.0, -45.0, float(rng.uniform(-60, 60))]))
    period = float(rng.uniform(0.06, 0.2)) * unit
    duty = float(rng.uniform(0.25, 0.6))
    xs, ys = _coords(h, w)
    t = np.deg2rad(angle)
    u = (xs * np.cos(t) + ys * np.sin(t)) % period
    out = _fill(h, w, c[0])
    _paint(out, u < duty * period, c[1])
    if rng.random() < 0.5:
        _paint(out, np.abs(u - (duty + 1) * period / 2) < 0.06 * period, c[2])
    return out


def _checks(rng: np.random.Generator, c: Colours, h: int, w: int, unit: float) -> np.ndarray:
    period = float(rng.uniform(0.08, 0.22)) * unit
    duty = float(rng.uniform(0.3, 0.55))
    xs, ys = _coords(h, w)
    a = (xs % period) < duty * period
    b = (ys % period) < duty * period
    out = _fill(h, w, c[0])
    mixed = ((np.array(c[0], np.float32) + np.array(c[1], np.float32)) / 2).astype(np.uint8)
    out[a ^ b] = mixed
    out[a & b] = c[1]
    if rng.random() < 0.6:
        line = (np.abs((xs % period) - 0.75 * period) < 0.04 * period) | (
            np.abs((ys % period) - 0.75 * period) < 0.04 * period
        )
        _paint(out, line, c[2])
    return out


def _dots(rng: np.random.Generator, c: Colours, h: int, w: int, unit: float) -> np.ndarray:
    spacing = float(rng.uniform(0.08, 0.2)) * unit
    radius = float(rng.uniform(0.18, 0.38)) * spacing
    xs, ys = _coords(h, w)
    row = np.floor(ys / spacing)
    shift = (row % 2) * spacing / 2 if rng.random() < 0.7 else 0.0
    dx = ((xs + shift) % spacing) - spacing / 2
    dy = (ys % spacing) - spacing / 2
    out = _fill(h, w, c[0])
    _paint(out, dx * dx + dy * dy < radius * radius, c[1])
    if rng.random() < 0.4:
        _paint(out, dx * dx + dy * dy < (radius * 0.4) ** 2, c[2])
    return out


def _print(rng: np.random.Generator, c: Colours, h: int, w: int, unit: float) -> np.ndarray:
    out = _fill(h, w, c[0])
    motif = int(rng.integers(3))
    size = float(rng.uniform(0.05, 0.12)) * unit
    count = int(h * w / (size * size * rng.uniform(5, 10))) + 3
    for _ in range(count):
        x, y = float(rng.uniform(0, w)), float(rng.uniform(0, h))
        s = size * float(rng.uniform(0.7, 1.3))
        colour = c[1] if rng.random() < 0.7 else c[2]
        if motif == 0:  # flowers: petals around a centre
            for k in range(5):
                a = 2 * np.pi * k / 5
                cv2.circle(out, (int(x + 0.5 * s * np.cos(a)), int(y + 0.5 * s * np.sin(a))),
                           max(1, int(0.35 * s)), colour, -1, cv2.LINE_AA)
            cv2.circle(out, (int(x), int(y)), max(1, int(0.25 * s)), c[2], -1, cv2.LINE_AA)
        elif motif == 1:  # leaves
            cv2.ellipse(out, (int(x), int(y)), (max(1, int(s * 0.7)), max(1, int(s * 0.25))),
                        float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
        else:  # triangles and squares
            pts = (np.array([[0, -1], [0.87, 0.5], [-0.87, 0.5]]) if rng.random() < 0.5
                   else np.array([[-0.7, -0.7], [0.7, -0.7], [0.7, 0.7], [-0.7, 0.7]]))
            a = float(rng.uniform(0, np.pi))
            rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
            poly = (pts @ rot.T * s * 0.6 + [x, y]).astype(np.int32)
            cv2.fillPoly(out, [poly], colour, cv2.LINE_AA)
    return out


def _text(rng: np.random.Generator, c: Colours, h: int, w: int, unit: float, anchor: tuple[float, float]) -> np.ndarray:
    out = _fill(h, w, c[0])
    word = "".join(rng.choice(list(string.ascii_uppercase), int(rng.integers(2, 6))))
    font = int(rng.choice([cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_TRIPLEX]))
    thickness = max(2, int(unit * 0.02))
    (tw, th), _ = cv2.getTextSize(word, font, 1.0, thickness)
    scale = 0.42 * unit / max(tw, 1)
    thickness = max(2, int(thickness * scale))
    (tw, th), _ = cv2.getTextSize(word, font, scale, thickness)
    x = int(anchor[0] - tw / 2)
    y = int(anchor[1] + th / 2)
    if rng.random() < 0.5:
        cv2.rectangle(out, (x - 6, y - th - 8), (x + tw + 6, y + 8), c[2], -1)
    cv2.putText(out, word, (x, y), font, scale, c[1], thickness, cv2.LINE_AA)
    small = "".join(rng.choice(list(string.ascii_uppercase + string.digits), int(rng.integers(4, 9))))
    cv2.putText(out, small, (x, y + int(th * 0.9) + 6), cv2.FONT_HERSHEY_SIMPLEX, scale * 0.4,
                c[1], max(1, thickness // 2), cv2.LINE_AA)
    return out


def _logo(rng: np.random.Generator, c: Colours, h: int, w: int, unit: float, anchor: tuple[float, float]) -> np.ndarray:
    out = _fill(h, w, c[0])
    r = float(rng.uniform(0.1, 0.17)) * unit
    cx, cy = int(anchor[0] + rng.uniform(-0.1, 0.1) * unit), int(anchor[1])
    kind = int(rng.integers(4))
    if kind == 0:
        cv2.circle(out, (cx, cy), int(r), c[1], -1, cv2.LINE_AA)
        cv2.circle(out, (cx, cy), int(r * 0.55), c[2], -1, cv2.LINE_AA)
    elif kind == 1:
        pts = np.array([[cx, cy - r], [cx + r, cy + r * 0.8], [cx - r, cy + r * 0.8]], np.int32)
        cv2.fillPoly(out, [pts], c[1], cv2.LINE_AA)
        cv2.circle(out, (cx, int(cy + r * 0.2)), int(r * 0.3), c[2], -1, cv2.LINE_AA)
    elif kind == 2:
        a = np.linspace(-np.pi / 2, 1.5 * np.pi, 11)[:-1]
        rad = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
        pts = np.stack([cx + rad * np.cos(a), cy + rad * np.sin(a)], 1).astype(np.int32)
        cv2.fillPoly(out, [pts], c[1], cv2.LINE_AA)
    else:
        cv2.rectangle(out, (int(cx - r), int(cy - r * 0.6)), (int(cx + r), int(cy + r * 0.6)), c[1], -1)
        cv2.line(out, (int(cx - r), int(cy + r * 0.6)), (int(cx + r), int(cy - r * 0.6)), c[2],
                 max(2, int(r * 0.2)), cv2.LINE_AA)
    if rng.random() < 0.5:  # a band across the garment under the logo
        y0 = int(cy + r * 1.4)
        cv2.rectangle(out, (0, y0), (w, y0 + int(r * 0.35)), c[2], -1)
    return out


def _gradient(rng: np.random.Generator, c: Colours, h: int, w: int, unit: float) -> np.ndarray:
    xs, ys = _coords(h, w)
    t = np.deg2rad(float(rng.uniform(0, 360)))
    u = xs * np.cos(t) + ys * np.sin(t)
    u = (u - u.min()) / max(float(u.max() - u.min()), 1e-6)
    c0, c1, c2 = (np.array(x, np.float32) for x in c)
    if rng.random() < 0.5:
        img = c0 * (1 - u[..., None]) + c1 * u[..., None]
    else:
        lo = np.clip(u * 2, 0, 1)[..., None]
        hi = np.clip(u * 2 - 1, 0, 1)[..., None]
        img = c0 * (1 - lo) + c1 * lo * (1 - hi) + c2 * hi
    return np.clip(img, 0, 255).astype(np.uint8)


def _noise(rng: np.random.Generator, c: Colours, h: int, w: int, unit: float) -> np.ndarray:
    cells = int(rng.integers(3, 8))
    grid = rng.random((max(2, int(cells * h / w)), cells)).astype(np.float32)
    field = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    fine = cv2.resize(rng.random((max(2, int(cells * 3 * h / w)), cells * 3)).astype(np.float32), (w, h),
                      interpolation=cv2.INTER_CUBIC)
    field = 0.75 * field + 0.25 * fine
    if rng.random() < 0.5:  # camouflage: hard levels
        q1, q2 = np.quantile(field, [0.4, 0.75])
        out = _fill(h, w, c[0])
        _paint(out, field > q1, c[1])
        _paint(out, field > q2, c[2])
        return out
    u = np.clip((field - field.min()) / max(float(np.ptp(field)), 1e-6), 0, 1)[..., None]
    img = np.array(c[0], np.float32) * (1 - u) + np.array(c[1], np.float32) * u
    return np.clip(img, 0, 255).astype(np.uint8)


def _trim(rng: np.random.Generator, c: Colours, h: int, w: int, unit: float) -> np.ndarray:
    out = _fill(h, w, c[0])
    band = max(3, int(float(rng.uniform(0.03, 0.07)) * unit))
    n = int(rng.integers(1, 4))
    for k in range(n):
        y = int(h - (k + 1) * band * 2.2)
        cv2.rectangle(out, (0, y), (w, y + band), c[1] if k % 2 == 0 else c[2], -1)
    if rng.random() < 0.5:
        cv2.rectangle(out, (int(w * 0.5 - band / 2), 0), (int(w * 0.5 + band / 2), h), c[1], -1)
    return out


def make_texture(
    pattern: str,
    colours: Colours,
    pattern_seed: int,
    width: int,
    height: int,
    anchor: tuple[float, float],
) -> np.ndarray:
    """Draw a fabric texture.

    Args:
        pattern: one of ``catalog.PATTERNS``.
        colours: main, second and accent RGB colours.
        pattern_seed: seeds the geometry only.
        width: canvas width in pixels (also the unit that pattern sizes scale with).
        height: canvas height in pixels.
        anchor: (x, y) pixel where a chest print (text, logo) is centred.

    Returns:
        (height, width, 3) uint8 RGB.
    """
    rng = np.random.default_rng(pattern_seed)
    unit = float(width)
    if pattern == "stripes":
        tex = _stripes(rng, colours, height, width, unit)
    elif pattern == "checks":
        tex = _checks(rng, colours, height, width, unit)
    elif pattern == "dots":
        tex = _dots(rng, colours, height, width, unit)
    elif pattern == "print":
        tex = _print(rng, colours, height, width, unit)
    elif pattern == "text":
        tex = _text(rng, colours, height, width, unit, anchor)
    elif pattern == "logo":
        tex = _logo(rng, colours, height, width, unit, anchor)
    elif pattern == "gradient":
        tex = _gradient(rng, colours, height, width, unit)
    elif pattern == "noise":
        tex = _noise(rng, colours, height, width, unit)
    elif pattern == "trim":
        tex = _trim(rng, colours, height, width, unit)
    elif pattern == "solid":
        tex = _fill(height, width, colours[0])
    else:
        raise ValueError(f"unknown pattern {pattern!r}")
    grain = rng.normal(0.0, 4.0, (height, width, 1)).astype(np.float32)
    return np.clip(tex.astype(np.float32) + grain, 0, 255).astype(np.uint8)
