"""Photographic degradations that move synthetic renders toward real camera footage.

The synthetic generator draws garments and presenters in flat colours; real live streams show
shading, sensor noise, lens blur, white-balance casts, uneven light and compression artefacts. A
network trained on flat renders learns the renders. :func:`camera_effects` applies, each with its own
probability, a low-frequency shading field (folds and uneven light on every surface), vignetting,
white balance and gamma, defocus blur, sensor noise and JPEG re-compression, so that flat colour is
no longer a cue. Deterministic for a given ``numpy.random.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class CameraEffectsConfig:
    """Probabilities and ranges of each effect (see :func:`camera_effects`)."""

    shading_p: float = 0.7
    shading_strength: tuple[float, float] = (0.1, 0.35)
    vignette_p: float = 0.4
    white_balance_p: float = 0.6
    white_balance: float = 0.15
    gamma_p: float = 0.5
    gamma: tuple[float, float] = (0.7, 1.4)
    blur_p: float = 0.4
    blur_sigma: tuple[float, float] = (0.4, 1.8)
    noise_p: float = 0.6
    noise_sigma: tuple[float, float] = (2.0, 9.0)
    jpeg_p: float = 0.5
    jpeg_quality: tuple[int, int] = (25, 85)


def _shading_field(height: int, width: int, rng: np.random.Generator, strength: float) -> np.ndarray:
    """A smooth random multiplicative field around 1: (H, W, 1) float32."""
    cells = int(rng.integers(3, 9))
    coarse = rng.normal(0.0, 1.0, size=(cells, cells)).astype(np.float32)
    field = np.asarray(cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC), np.float32)
    field = field / max(float(np.abs(field).max()), 1e-6)
    return np.asarray((1.0 + strength * field)[..., None], np.float32)


def _vignette(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Light falling off toward the corners from a random centre: (H, W, 1) float32 in (0, 1]."""
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    radius = np.sqrt(((ys - cy) / height) ** 2 + ((xs - cx) / width) ** 2)
    return (1.0 - float(rng.uniform(0.15, 0.45)) * np.clip(radius, 0.0, 1.0) ** 2)[..., None]


def camera_effects(image: np.ndarray, rng: np.random.Generator,
                   config: CameraEffectsConfig | None = None) -> np.ndarray:
    """Apply random photographic degradations.

    Args:
        image: (H, W, 3) uint8 RGB.
        rng: The random source (one draw sequence per call, so a seeded generator repeats itself).
        config: Probabilities and ranges.

    Returns:
        (H, W, 3) uint8 RGB, a new array (geometry unchanged, so boxes stay valid).
    """
    cfg = config or CameraEffectsConfig()
    height, width = image.shape[:2]
    pixels: np.ndarray = image.astype(np.float32)
    if rng.random() < cfg.shading_p:
        pixels *= _shading_field(height, width, rng, float(rng.uniform(*cfg.shading_strength)))
    if rng.random() < cfg.vignette_p:
        pixels *= _vignette(height, width, rng)
    if rng.random() < cfg.white_balance_p:
        pixels *= (1.0 + rng.uniform(-cfg.white_balance, cfg.white_balance, size=3)).astype(np.float32)
    if rng.random() < cfg.gamma_p:
        pixels = 255.0 * (np.clip(pixels, 0.0, 255.0) / 255.0) ** float(rng.uniform(*cfg.gamma))
    if rng.random() < cfg.blur_p:
        pixels = np.asarray(cv2.GaussianBlur(pixels, (0, 0), float(rng.uniform(*cfg.blur_sigma))), np.float32)
    if rng.random() < cfg.noise_p:
        pixels += rng.normal(0.0, float(rng.uniform(*cfg.noise_sigma)), size=pixels.shape).astype(np.float32)
    out: np.ndarray = np.clip(pixels, 0.0, 255.0).astype(np.uint8)
    if rng.random() < cfg.jpeg_p:
        quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        ok, encoded = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED) if ok else None
        if decoded is not None:
            out = np.asarray(decoded, np.uint8)
    return np.ascontiguousarray(out)
