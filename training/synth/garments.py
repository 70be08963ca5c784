"""Garment silhouettes per category and the textured garment sprite of a product.

Geometry is built in *units* (1 unit ~ the width of a top's canvas), with y pointing down. A shape
carries an anchor that tells the presenter renderer how to dress a body with it: ``shoulder``
(neck-base centre and shoulder half-width) or ``waist`` (waist centre and half-width).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from training.synth.catalog import Product, Shape
from training.synth.patterns import make_texture

FRONT, BACK = 0, 1
_CX = 0.5


@dataclass(frozen=True)
class GarmentShape:
    """Polygons of one garment view in units.

    Attributes:
        polygons: filled outline parts, each (N, 2) float32 x, y.
        details: open polylines drawn as seams (collars, plackets, pockets), each (N, 2).
        bands: (polygon, colour index) filled after texturing (sashes, belts).
        anchor_kind: ``"shoulder"`` or ``"waist"``.
        anchor: (x, y) of the neck base or waist centre.
        anchor_half_width: shoulder or waist half-width.
        print_anchor: (x, y) where a chest print is centred.
    """

    polygons: list[np.ndarray]
    details: list[np.ndarray]
    bands: list[tuple[np.ndarray, int]]
    anchor_kind: str
    anchor: tuple[float, float]
    anchor_half_width: float
    print_anchor: tuple[float, float]


def _pts(points: list[tuple[float, float]]) -> np.ndarray:
    return np.array(points, np.float32)


def _mirror(left: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(2 * _CX - x, y) for x, y in reversed(left)]


def _upper(p: Shape, view: int, sleeve: str, hem: float, hem_hw: float, *, neck_depth: float = 0.09,
           waist_hw: float = 0.95, body: float = 1.0) -> tuple[list[np.ndarray], float]:
    """Torso (+ sleeves) from the neck down to ``hem``; returns polygons and the shoulder half-width."""
    nw, sw, bw = 0.085 * p.neck, 0.22 * p.body * body, 0.19 * p.body * body
    ny, sy, ay = 0.04, 0.09, 0.3
    nd = neck_depth * p.neck if view == FRONT else 0.025
    polys: list[np.ndarray] = []
    if sleeve == "strap":
        top = 0.17
        left = [(_CX - bw, top + 0.02), (_CX - bw, ay)]
        start = [(_CX - 0.09, top)]
        for sx in (-1, 1):
            x0, x1 = _CX + sx * 0.1, _CX + sx * 0.12
            polys.append(_pts([(x0 - 0.012, top + 0.01), (x1 - 0.012, 0.0), (x1 + 0.012, 0.0), (x0 + 0.012, top + 0.01)]))
    elif sleeve == "vest":
        left = [(_CX - nw - 0.05, ny), (_CX - bw + 0.04, ay - 0.12), (_CX - bw, ay)]
        start = [(_CX - nw, ny)]
    elif sleeve == "none":
        left = [(_CX - sw * 0.88, sy), (_CX - bw + 0.01, ay - 0.06), (_CX - bw, ay)]
        start = [(_CX - nw, ny)]
    else:
        left = [(_CX - sw, sy), (_CX - bw, ay)]
        start = [(_CX - nw, ny)]
    if hem > 0.55:
        left.append((_CX - bw * waist_hw, 0.5))
    left.append((_CX - hem_hw, hem))
    outline = start + left[::-1][::-1]
    outline = start + left + _mirror(left) + _mirror(start)
    if sleeve != "strap":
        outline += [(_CX + nw * 0.6, ny + nd * 0.8), (_CX, ny + nd), (_CX - nw * 0.6, ny + nd * 0.8)]
    polys.insert(0, _pts(outline))
    if sleeve in ("short", "long", "wide"):
        s = p.sleeve
        if sleeve == "short":
            arm = [(_CX - sw, sy), (_CX - sw - 0.13, sy + 0.19 * s), (_CX - sw - 0.05, sy + 0.25 * s), (_CX - bw, ay)]
        elif sleeve == "long":
            arm = [(_CX - sw, sy), (_CX - sw - 0.16, 0.7 * s), (_CX - sw - 0.075, 0.73 * s), (_CX - bw, ay)]
        else:
            arm = [(_CX - sw, sy), (_CX - sw - 0.22, 0.42), (_CX - sw - 0.24, 0.76 * s), (_CX - bw - 0.03, 0.72 * s),
                   (_CX - bw, ay)]
        polys.append(_pts(arm))
        polys.append(_pts(_mirror(arm)))
    return polys, sw


def _skirt(p: Shape, top: float, length: float, ww: float) -> np.ndarray:
    hip = ww * 1.15
    hem = hip + (length - 0.18) * 0.22 * p.flare
    left = [(_CX - ww, top), (_CX - hip, top + 0.18), (_CX - hem, top + length)]
    return _pts(left + _mirror(left))


def _pants(p: Shape, top: float, length: float, ww: float) -> np.ndarray:
    hip = ww * 1.15
    leg = 0.1 * p.flare + 0.02
    return _pts([
        (_CX - ww, top), (_CX + ww, top), (_CX + hip, top + 0.18), (_CX + hip + 0.005, top + length),
        (_CX + hip - 2 * leg, top + length), (_CX, top + 0.32), (_CX - hip + 2 * leg, top + length),
        (_CX - hip - 0.005, top + length), (_CX - hip, top + 0.18),
    ])


def garment_shape(category: str, shape: Shape, view: int) -> GarmentShape:
    """The silhouette of a category with a design's shape variation, for the front or back view."""
    p = shape
    L = p.length
    details: list[np.ndarray] = []
    bands: list[tuple[np.ndarray, int]] = []
    front = view == FRONT
    chest = (_CX, 0.26)
    upper_cfg = {
        "短袖上衣": ("short", 0.72, 0.19, {}),
        "长袖上衣": ("long", 0.74, 0.19, {}),
        "短袖衬衫": ("short", 0.76, 0.2, {"neck_depth": 0.05}),
        "长袖衬衫": ("long", 0.78, 0.2, {"neck_depth": 0.05}),
        "背心上衣": ("vest", 0.7, 0.19, {"neck_depth": 0.12}),
        "吊带上衣": ("strap", 0.66, 0.2, {}),
        "无袖上衣": ("none", 0.7, 0.2, {}),
        "短外套": ("long", 0.7, 0.21, {"neck_depth": 0.2, "body": 1.08}),
        "短马甲": ("none", 0.64, 0.2, {"neck_depth": 0.28}),
        "长袖连衣裙": ("long", 1.3, 0.34, {"waist_hw": 0.85}),
        "短袖连衣裙": ("short", 1.2, 0.32, {"waist_hw": 0.85}),
        "无袖连衣裙": ("none", 1.2, 0.33, {"waist_hw": 0.85}),
        "长马甲": ("none", 1.25, 0.26, {"neck_depth": 0.3}),
        "长外套": ("long", 1.4, 0.3, {"neck_depth": 0.22, "body": 1.1}),
        "古风": ("wide", 1.5, 0.36, {"neck_depth": 0.16, "waist_hw": 0.9}),
    }
    if category in upper_cfg:
        sleeve, hem, hem_hw, kw = upper_cfg[category]
        hem = 0.3 + (hem - 0.3) * L
        hem_hw = hem_hw * (p.flare if hem > 0.9 else 1.0)
        polys, sw = _upper(p, view, sleeve, hem, hem_hw, **kw)
        if front and category in ("短袖衬衫", "长袖衬衫"):
            details.append(_pts([(_CX - 0.085, 0.04), (_CX - 0.02, 0.14), (_CX - 0.1, 0.13)]))
            details.append(_pts([(_CX + 0.085, 0.04), (_CX + 0.02, 0.14), (_CX + 0.1, 0.13)]))
            details.append(_pts([(_CX, 0.1), (_CX, hem)]))
        if front and category in ("短外套", "长外套", "短马甲", "长马甲"):
            details.append(_pts([(_CX, 0.04 + kw.get("neck_depth", 0.1)), (_CX, hem)]))
            details.append(_pts([(_CX - 0.085, 0.04), (_CX - 0.02, 0.04 + kw.get("neck_depth", 0.1))]))
            details.append(_pts([(_CX + 0.085, 0.04), (_CX + 0.02, 0.04 + kw.get("neck_depth", 0.1))]))
        if category == "长外套":
            bands.append((_pts([(_CX - 0.2, 0.5), (_CX + 0.2, 0.5), (_CX + 0.2, 0.54), (_CX - 0.2, 0.54)]), 2))
        if category == "古风":
            if front:
                details.append(_pts([(_CX - 0.085, 0.04), (_CX + 0.09, 0.3)]))
            bands.append((_pts([(_CX - 0.18, 0.47), (_CX + 0.18, 0.47), (_CX + 0.18, 0.53), (_CX - 0.18, 0.53)]), 1))
        if front and category in ("长袖连衣裙", "短袖连衣裙", "无袖连衣裙"):
            details.append(_pts([(_CX - 0.16, 0.5), (_CX + 0.16, 0.5)]))
        return GarmentShape(polys, details, bands, "shoulder", (_CX, 0.09), sw, chest)
    if category == "连体衣":
        polys, sw = _upper(p, view, "short" if p.sleeve > 1.0 else "none", 0.52, 0.17, waist_hw=0.9)
        polys.append(_pants(p, 0.5, 1.05 * L, 0.16))
        details.append(_pts([(_CX - 0.16, 0.5), (_CX + 0.16, 0.5)]))
        return GarmentShape(polys, details, bands, "shoulder", (_CX, 0.09), sw, chest)
    ww = 0.2 * p.body
    lower_len = {"短裙": 0.42, "中等半身裙": 0.78, "长半身裙": 1.15, "短裤": 0.42, "中裤": 0.8, "长裤": 1.2,
                 "背带裤": 1.2}
    if category not in lower_len:
        raise ValueError(f"no silhouette for category {category!r}")
    length = lower_len[category] * L
    thigh = (_CX - 0.1, 0.3)
    if category in ("短裙", "中等半身裙", "长半身裙"):
        polys = [_skirt(p, 0.0, length, ww)]
    else:
        polys = [_pants(p, 0.0, length, ww)]
    bands.append((_pts([(_CX - ww, 0.0), (_CX + ww, 0.0), (_CX + ww * 1.01, 0.04), (_CX - ww * 1.01, 0.04)]), 1))
    if front and category in ("短裤", "中裤", "长裤", "背带裤"):
        details.append(_pts([(_CX, 0.04), (_CX, 0.22)]))
        details.append(_pts([(_CX - ww + 0.02, 0.05), (_CX - ww + 0.08, 0.14)]))
        details.append(_pts([(_CX + ww - 0.02, 0.05), (_CX + ww - 0.08, 0.14)]))
    if category == "背带裤":
        polys.append(_pts([(_CX - 0.13, -0.32), (_CX + 0.13, -0.32), (_CX + 0.15, 0.02), (_CX - 0.15, 0.02)]))
        for sx in (-1, 1):
            x0, x1 = _CX + sx * 0.11, _CX + sx * 0.15
            polys.append(_pts([(x0 - 0.02, -0.3), (x1 - 0.02, -0.62), (x1 + 0.02, -0.62), (x0 + 0.02, -0.3)]))
        if front:
            details.append(_pts([(_CX - 0.07, -0.22), (_CX + 0.07, -0.22), (_CX + 0.07, -0.1), (_CX - 0.07, -0.1),
                                 (_CX - 0.07, -0.22)]))
        thigh = (_CX, -0.18)
    return GarmentShape(polys, details, bands, "waist", (_CX, 0.0), ww, thigh)


@dataclass(frozen=True)
class GarmentSprite:
    """A textured garment on a transparent canvas.

    Attributes:
        rgba: (h, w, 4) uint8, straight alpha.
        outline: (K, 2) float32 vertices of all filled parts in sprite pixels (the box of any
            projective transform of the garment is the box of the transformed outline).
        anchor_kind: ``"shoulder"`` or ``"waist"``.
        anchor: (x, y) anchor in sprite pixels.
        anchor_half_width: shoulder or waist half-width in sprite pixels.
    """

    rgba: np.ndarray
    outline: np.ndarray
    anchor_kind: str
    anchor: tuple[float, float]
    anchor_half_width: float


def render_garment(
    category: str,
    shape: Shape,
    pattern: str,
    colours: tuple,
    pattern_seed: int,
    view: int,
    unit_px: float,
) -> GarmentSprite:
    """Render a garment sprite.

    Args:
        category: Chinese category name.
        shape: silhouette variation.
        pattern: pattern kind (``"solid"`` allowed for plain clothes).
        colours: main, second, accent RGB.
        pattern_seed: pattern geometry seed.
        view: ``FRONT`` or ``BACK``.
        unit_px: pixels per shape unit (a top is about ``unit_px`` wide).

    Returns:
        The sprite; its size follows the silhouette.
    """
    gs = garment_shape(category, shape, view)
    allpts = np.concatenate(gs.polygons + [d for d in gs.details], 0)
    lo = allpts.min(0) - 0.03
    hi = allpts.max(0) + 0.03
    w = int(np.ceil((hi[0] - lo[0]) * unit_px))
    h = int(np.ceil((hi[1] - lo[1]) * unit_px))

    def px(a: np.ndarray) -> np.ndarray:
        return (a - lo) * unit_px

    pa = px(np.array(gs.print_anchor, np.float32))
    tex_pattern = pattern
    if view == BACK and pattern in ("text", "logo"):
        tex_pattern = "solid"
    tex = make_texture(tex_pattern, colours, pattern_seed, w, h, (float(pa[0]), float(pa[1])))
    if view == BACK and tex_pattern == pattern:
        tex = np.ascontiguousarray(tex[:, ::-1])
    mask = np.zeros((h, w), np.uint8)
    polys_px = [px(p) for p in gs.polygons]
    for poly in polys_px:
        cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    # soft shading: darker towards the sides and the hem, plus a few folds
    xs = np.linspace(-1.0, 1.0, w, dtype=np.float32)
    ys = np.linspace(0.0, 1.0, h, dtype=np.float32)
    shade = (1.0 - 0.16 * xs[None, :] ** 2) * (1.02 - 0.08 * ys[:, None])
    rng = np.random.default_rng(pattern_seed + 7)
    folds = np.zeros((h, w), np.float32)
    for _ in range(3):
        x0 = float(rng.uniform(0.25, 0.75)) * w
        cv2.line(folds, (int(x0), int(h * 0.35)), (int(x0 + rng.uniform(-0.1, 0.1) * w), h), 1.0, max(2, w // 40))
    soft = np.asarray(cv2.GaussianBlur(folds, (0, 0), max(1.0, w / 60)), np.float32)
    shade = np.asarray(shade - 0.12 * soft, np.float32)
    img = np.clip(tex.astype(np.float32) * shade[..., None], 0, 255).astype(np.uint8)
    for band, ci in gs.bands:
        cv2.fillPoly(img, [np.round(px(band) * 16).astype(np.int32)], colours[ci], cv2.LINE_AA, shift=4)
    dark = tuple(int(c * 0.55) for c in colours[0])
    line_w = max(1, int(round(unit_px / 90)))
    for d in gs.details:
        cv2.polylines(img, [np.round(px(d) * 16).astype(np.int32)], False, dark, line_w, cv2.LINE_AA, shift=4)
    for poly in polys_px:
        cv2.polylines(img, [np.round(poly * 16).astype(np.int32)], True, dark, line_w, cv2.LINE_AA, shift=4)
    rgba = np.dstack([img, mask])
    ax, ay = px(np.array(gs.anchor, np.float32))
    return GarmentSprite(
        rgba=rgba,
        outline=np.concatenate(polys_px, 0).astype(np.float32),
        anchor_kind=gs.anchor_kind,
        anchor=(float(ax), float(ay)),
        anchor_half_width=float(gs.anchor_half_width * unit_px),
    )


def product_sprite(product: Product, view: int, unit_px: float) -> GarmentSprite:
    """The sprite of a catalog product."""
    return render_garment(product.category, product.shape, product.pattern, product.colours,
                          product.pattern_seed, view, unit_px)
