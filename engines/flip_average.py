"""Flip test-time augmentation for an embedder: average a crop's vector with its mirror image's.

A garment seen in a live stream is often mirrored or turned relative to its shop photo; averaging
the two views makes the vector less sensitive to left-right layout. It costs one extra embedder pass
per crop (both views go through one batch), so it is an option, off by default on the live path.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engines.base import Embedder
from engines.package import ModelSpec


class FlipAveragedEmbedder:
    """An :class:`engines.base.Embedder` that embeds each crop and its horizontal mirror.

    Args:
        inner: The embedder to wrap.
    """

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.spec: ModelSpec = inner.spec
        self.dim: int = inner.dim

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(N, dim) float32 unit rows: the normalised mean of the crop's and its mirror's vectors.

        Args:
            crops: N RGB uint8 (h, w, 3) crops; sizes may differ.
        """
        n = len(crops)
        if n == 0:
            return np.zeros((0, self.dim), np.float32)
        mirrored = [np.ascontiguousarray(c[:, ::-1]) for c in crops]
        both = self.inner.embed([*crops, *mirrored])
        mean = both[:n] + both[n:]
        norms = np.linalg.norm(mean, axis=1, keepdims=True)
        return np.ascontiguousarray(mean / np.maximum(norms, 1e-12), dtype=np.float32)
