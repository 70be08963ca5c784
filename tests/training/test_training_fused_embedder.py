"""The fused embedder: one graph with the synthetic-trained CNN and the frozen ImageNet branch, its
garment probability, float16 storage, and the engines' ``embed_scored``."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import engines
from training.export import check_parity, export_package
from training.models.embedder import EmbedderConfig, to_network_input
from training.models.fused_embedder import (
    FUSED_INPUT,
    GARMENT_CLASSES,
    FusedEmbedderNet,
    build_fused_embedder,
)
from training.models.pretrained import pretrained_network

TINY = EmbedderConfig(widths=(8, 16, 32), blocks=(0, 1), head_channels=32, embedding_dim=16)
IMAGENET = EmbedderConfig(backbone="efficientnet_lite0", input_size=FUSED_INPUT, pool="center", projection=False)


@pytest.fixture(scope="module")
def fused() -> FusedEmbedderNet:
    torch.manual_seed(0)
    net = FusedEmbedderNet(TINY, IMAGENET, (1.0, 3.0))
    net.load_pretrained()
    return net.eval()


def _crops(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, FUSED_INPUT, FUSED_INPUT, 3), dtype=np.uint8)


def test_outputs_are_unit_vectors_whose_dot_is_the_weighted_mean_of_the_branch_cosines(fused: FusedEmbedderNet) -> None:
    x = to_network_input(_crops(3, 1))
    with torch.no_grad():
        vectors, garment = fused(x)
        a = fused.cnn(torch.nn.functional.avg_pool2d(x, 2))
        b = fused.imagenet(x)
    assert vectors.shape == (3, 16 + 1280) and garment.shape == (3,)
    torch.testing.assert_close(vectors.norm(dim=1), torch.ones(3))
    expected = 0.25 * (a[0] @ a[1]) + 0.75 * (b[0] @ b[1])
    torch.testing.assert_close(vectors[0] @ vectors[1], expected, atol=1e-5, rtol=0)


def test_garment_is_the_imagenet_probability_of_the_clothing_classes(fused: FusedEmbedderNet) -> None:
    data = pytest.importorskip("skimage.data")
    photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 255.0
    photo = torch.nn.functional.interpolate(photo, size=(FUSED_INPUT, FUSED_INPUT), mode="bilinear")
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        _, garment = fused((photo - mean) / std)
        probs = pretrained_network("efficientnet_lite0")((photo - 0.5) / 0.5).softmax(dim=1)
    torch.testing.assert_close(garment, probs[:, list(GARMENT_CLASSES)].sum(dim=1), atol=1e-4, rtol=0)
    assert 0.0 < float(garment) < 1.0


def test_half_storage_package_is_faithful_smaller_and_gives_the_garment_to_the_engine(
        fused: FusedEmbedderNet, tmp_path: Path) -> None:
    spec = {"name": "livetag-embedder", "version": "1-{onnx_sha8}",
            "input": {"resize": "stretch", "box_expand": 0.1},
            "normalization": {"scale": 1 / 255, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
            "embedding_dim": fused.embedding_dim,
            "torch": {"factory": "training.models.fused_embedder:build_fused_embedder",
                      "config": {"cnn": TINY.to_dict(), "imagenet": IMAGENET.to_dict(), "weights": list(fused.weights)}}}
    fused = copy.deepcopy(fused)  # half storage rounds the module's weights in place
    package = tmp_path / "embedder"
    export_package(fused, package, role="embedder", example_input=torch.zeros(1, 3, FUSED_INPUT, FUSED_INPUT),
                   output_names=["embeddings", "garment"], spec=spec, half_storage=True)
    crops = _crops(4, 2)
    assert check_parity(fused, package, to_network_input(crops).numpy(), atol=1e-4) <= 1e-4
    state = torch.load(package / "weights.pt", weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    params = sum(p.numel() for p in fused.parameters())
    assert (package / "model.onnx").stat().st_size < 2.4 * params  # float16: ~2 bytes a weight, not 4

    rebuilt = build_fused_embedder(**json.loads((package / "spec.json").read_text())["torch"]["config"])
    rebuilt.load_state_dict(state)
    embedder = engines.load_embedder(package)
    vectors, garment = embedder.embed_scored(list(crops))
    assert embedder.has_garment and vectors.shape == (4, fused.embedding_dim) and garment is not None
    with torch.no_grad():
        _, expected = rebuilt.eval()(to_network_input(crops))
    np.testing.assert_allclose(garment, expected.numpy(), atol=1e-4)
    np.testing.assert_allclose(embedder.embed(list(crops)), vectors)
