"""Fusion of several embedders into one vector: weighted concatenation, re-normalised.

Each part (a unit vector) is scaled by ``sqrt(w_i / sum(w))`` before concatenation, so the fused
vector is unit-norm already and the cosine similarity of two fused vectors is the weighted average
``sum(w_i * cos_i) / sum(w)`` of the parts' cosines: weights read as "how much each model counts".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engines.base import Embedder
from engines.package import ModelSpec
from stream.errors import LiveTagError


class FusionError(LiveTagError):
    """Embedders or weights that cannot be fused."""


def _check_weights(weights: Sequence[float], count: int) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (count,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise FusionError(f"need {count} finite weights >= 0 with a positive sum, got {list(weights)}")
    return w / w.sum()


def fuse_embeddings(parts: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Fuse per-model embeddings of the same N crops.

    Args:
        parts: M arrays (N, D_i) float32 (rows are re-normalised first).
        weights: M non-negative weights.

    Returns:
        (N, sum(D_i)) float32 unit rows.
    """
    if not parts:
        raise FusionError("nothing to fuse: pass at least one embedding array")
    w = _check_weights(weights, len(parts))
    n = parts[0].shape[0]
    scaled = []
    for part, weight in zip(parts, w, strict=True):
        if part.ndim != 2 or part.shape[0] != n:
            raise FusionError(f"every part must be (N={n}, D), got {part.shape}")
        norms = np.linalg.norm(part, axis=1, keepdims=True)
        scaled.append(part / np.maximum(norms, 1e-12) * np.sqrt(weight))
    fused = np.concatenate(scaled, axis=1)
    norms = np.linalg.norm(fused, axis=1, keepdims=True)
    return np.ascontiguousarray(fused / np.maximum(norms, 1e-12), dtype=np.float32)


class FusedEmbedder:
    """An :class:`Embedder` made of several embedders with weights.

    Args:
        embedders: The member embedders (each sees the same crops).
        weights: One weight per embedder; default equal.

    Attributes:
        spec: The first member's spec (pre-processing differs per member; each does its own).
        specs: Every member's spec.
        dim: Sum of the members' dims.
    """

    def __init__(self, embedders: Sequence[Embedder], weights: Sequence[float] | None = None) -> None:
        if not embedders:
            raise FusionError("a fused embedder needs at least one embedder")
        self.embedders = list(embedders)
        self.weights = _check_weights(weights if weights is not None else [1.0] * len(self.embedders), len(self.embedders))
        self.specs: list[ModelSpec] = [e.spec for e in self.embedders]
        self.spec = self.specs[0]
        self.dim = int(sum(e.dim for e in self.embedders))

    @property
    def label(self) -> str:
        """``name@version`` of every member joined by ``+``, for match events."""
        return "+".join(s.label for s in self.specs)

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(N, dim) float32 unit rows for N RGB uint8 (h, w, 3) crops."""
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        return fuse_embeddings([e.embed(crops) for e in self.embedders], self.weights.tolist())
