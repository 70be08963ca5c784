"""Embedder fusion: weighted concatenation keeps unit norm and averages cosines by weight."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines import Embedder, load_embedder
from engines.fusion import FusedEmbedder, FusionError, fuse_embeddings


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("weights", [(1.0, 1.0), (3.0, 1.0), (0.2, 0.8), (1.0, 0.0)])
def test_fused_cosine_is_the_weighted_mean_of_cosines(rng: np.random.Generator, weights: tuple[float, float]) -> None:
    a1, a2 = _unit(rng.normal(size=(4, 8))), _unit(rng.normal(size=(4, 8)))
    b1, b2 = _unit(rng.normal(size=(4, 5))), _unit(rng.normal(size=(4, 5)))
    fa, fb = fuse_embeddings([a1 * 2.0, b1], weights), fuse_embeddings([a2, b2 * 0.5], weights)
    assert fa.shape == (4, 13) and fa.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(fa, axis=1), 1.0, atol=1e-6)
    w = np.asarray(weights) / sum(weights)
    expected = w[0] * np.sum(a1 * a2, axis=1) + w[1] * np.sum(b1 * b2, axis=1)
    np.testing.assert_allclose(np.sum(fa * fb, axis=1), expected, atol=1e-5)


def test_bad_weights_and_shapes(rng: np.random.Generator) -> None:
    parts = [rng.normal(size=(3, 4)), rng.normal(size=(3, 2))]
    for weights in ([1.0], [-1.0, 2.0], [0.0, 0.0], [float("nan"), 1.0]):
        with pytest.raises(FusionError, match="weights"):
            fuse_embeddings(parts, weights)
    with pytest.raises(FusionError, match="every part"):
        fuse_embeddings([rng.normal(size=(3, 4)), rng.normal(size=(2, 2))], [1, 1])
    with pytest.raises(FusionError):
        FusedEmbedder([])


def test_fused_embedder_over_real_engines(tiny_packages: dict[str, Path], rng: np.random.Generator) -> None:
    first = load_embedder(tiny_packages["embedder"], device="cpu", intra_op_threads=1)
    second = load_embedder(tiny_packages["embedder"], backend="torch", device="cpu")
    fused = FusedEmbedder([first, second], weights=[2.0, 1.0])
    assert isinstance(fused, Embedder) and fused.dim == first.dim + second.dim
    crops = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(30, 20), (64, 64), (9, 40)]]
    vectors = fused.embed(crops)
    assert vectors.shape == (3, fused.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # the same model twice: the fused cosine equals the single model's cosine
    single = first.embed(crops)
    np.testing.assert_allclose(vectors @ vectors.T, single @ single.T, atol=1e-4)
    assert fused.embed([]).shape == (0, fused.dim) and fused.label == "tiny-embedder@2026.01.01-0+tiny-embedder@2026.01.01-0"
