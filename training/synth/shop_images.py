"""Shop (catalog) images of a product: clean backgrounds, front and back views, a worn shot."""

from __future__ import annotations

import cv2
import numpy as np

from training.synth.catalog import Product
from training.synth.compose import box_of, paste, project, similarity
from training.synth.garments import BACK, FRONT, product_sprite
from training.synth.scenes import make_actor

SIZES = ((480, 640), (600, 600), (540, 720))


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    kind = int(rng.integers(4))
    img = np.empty((height, width, 3), np.uint8)
    if kind == 0:
        img[:] = 255 - int(rng.integers(0, 8))
    elif kind == 1:
        img[:] = int(rng.integers(200, 240))
    elif kind == 2:
        img[:] = [int(x) for x in rng.integers(205, 250, 3)]
    else:
        top = rng.integers(215, 255, 3).astype(np.float32)
        bottom = top - rng.integers(15, 45, 3)
        ramp = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
        img[:] = (top * (1 - ramp) + bottom * ramp).astype(np.uint8)
    return img


def _shadow(img: np.ndarray, rgba: np.ndarray, hom: np.ndarray, rng: np.random.Generator) -> None:
    """A soft drop shadow under the garment."""
    h, w = img.shape[:2]
    alpha = cv2.warpPerspective(rgba[..., 3], hom, (w, h))
    off = int(rng.integers(4, 12))
    alpha = np.roll(np.roll(alpha, off, 0), off // 2, 1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 6)
    shade = (alpha.astype(np.float32) * (0.25 / 255.0))[..., None]
    img[:] = (img.astype(np.float32) * (1 - shade)).astype(np.uint8)


def render_shop_images(product: Product, seed: int) -> list[tuple[np.ndarray, dict]]:
    """Render the 4-8 shop images of a product.

    Args:
        product: the catalog product.
        seed: data set seed (the product's generator is seeded with ``(seed, 1, instance_id)``).

    Returns:
        [(RGB uint8 (H, W, 3) image, annotation dict with box/label/viewpoint/display/instance_id)].
    """
    rng = np.random.default_rng([seed, 1, product.instance_id])
    count = int(rng.integers(4, 9))
    views = [FRONT, BACK] + [FRONT if rng.random() < 0.7 else BACK for _ in range(count - 2)]
    worn_at = int(rng.integers(2, count)) if count >= 5 else -1
    sprites = {v: product_sprite(product, v, 260.0) for v in (FRONT, BACK)}
    out: list[tuple[np.ndarray, dict]] = []
    for n, view in enumerate(views):
        width, height = SIZES[int(rng.integers(len(SIZES)))]
        img = _background(rng, width, height)
        if n == worn_at:
            actor = make_actor(rng, product, "wear", 60.0)
            sold = next(g for g in actor.garments if g.instance_id > 0)
            lo, hi = sold.outline.min(0), sold.outline.max(0)
            scale = float(rng.uniform(0.65, 0.85)) * min(width / (hi[0] - lo[0] + 1), height / (hi[1] - lo[1] + 1))
            hom = similarity(((lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2), (width / 2, height / 2), scale,
                             float(rng.uniform(-3, 3)))
            paste(img, actor.rgba, hom)
            box = box_of(project(sold.outline, hom), width, height, min_visible=0.0)
            view, display = FRONT, 1
        else:
            sprite = sprites[view]
            sh, sw = sprite.rgba.shape[:2]
            scale = float(rng.uniform(0.6, 0.9)) * min(width / sw, height / sh)
            angle = float(rng.uniform(-12, 12)) if n > 0 else float(rng.uniform(-3, 3))
            tilt = (float(rng.uniform(-1, 1)) * 0.15 / sw, float(rng.uniform(-1, 1)) * 0.1 / sh) if n > 1 else (0.0, 0.0)
            centre = (width * (0.5 + rng.uniform(-0.06, 0.06)), height * (0.5 + rng.uniform(-0.05, 0.05)))
            hom = similarity((sw / 2, sh / 2), centre, scale, angle, tilt)
            if rng.random() < 0.6:
                _shadow(img, sprite.rgba, hom, rng)
            paste(img, sprite.rgba, hom)
            box = box_of(project(sprite.outline, hom), width, height, min_visible=0.0)
            display = 0
        if rng.random() < 0.3:  # a small shop watermark in a corner
            cv2.putText(img, "SHOP", (8, height - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (170, 170, 170), 1, cv2.LINE_AA)
        assert box is not None
        out.append((img, {"box": box, "label": product.category, "viewpoint": int(view), "display": display,
                          "instance_id": product.instance_id}))
    return out

