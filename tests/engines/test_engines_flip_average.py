"""Flip test-time augmentation: mirror-invariant unit vectors, equal to the mean of both views."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engines import Embedder, load_embedder
from engines.flip_average import FlipAveragedEmbedder


def test_flip_average_is_the_normalised_mean_of_both_views(tiny_packages: dict[str, Path], rng: np.random.Generator) -> None:
    inner = load_embedder(tiny_packages["embedder"], device="cpu", intra_op_threads=1)
    tta = FlipAveragedEmbedder(inner)
    assert isinstance(tta, Embedder) and tta.dim == inner.dim and tta.spec is inner.spec
    crops = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(30, 20), (64, 48), (9, 40)]]
    vectors = tta.embed(crops)
    assert vectors.shape == (3, inner.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    plain, mirrored = inner.embed(crops), inner.embed([c[:, ::-1].copy() for c in crops])
    expected = (plain + mirrored) / np.linalg.norm(plain + mirrored, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    # a crop and its mirror image now embed to the same vector, which the plain embedder does not do
    again = tta.embed([c[:, ::-1].copy() for c in crops])
    np.testing.assert_allclose(again, vectors, atol=1e-5)
    assert not np.allclose(plain, mirrored, atol=1e-3)
    assert tta.embed([]).shape == (0, inner.dim)
