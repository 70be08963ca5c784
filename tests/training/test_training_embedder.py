"""Embedder: network contract, staged ArcFace, triplet loss, P x K sampler, augmentation, training,
resume and export (real optimisation steps on tiny crop sets, real ONNX Runtime)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from stream.errors import LiveTagError
from training.commands import train_embedder as command
from training.embedding_batches import AugmentedBatches, CropAugmenter, PKBatchSampler
from training.embedding_data import (
    EVAL_CONTEXT,
    SOURCE_FRAME,
    SOURCE_SHOP,
    TRAIN_CONTEXT,
    TRAIN_CROP_SIZE,
    CropSet,
)
from training.engine import CheckpointError, DistInfo, seed_everything, train_one_epoch
from training.metric_losses import (
    ArcFaceHead,
    EmbedderLoss,
    EmbedderWithHead,
    LossSchedule,
    batch_hard_triplet_loss,
)
from training.models.embedder import INPUT_SIZE, EmbedderConfig, EmbedderNet, to_network_input

TINY = EmbedderConfig(widths=(8, 16, 32), blocks=(0, 1), head_channels=32, embedding_dim=16)


def test_embeddings_have_shape_and_unit_norm() -> None:
    net = EmbedderNet().eval()
    with torch.no_grad():
        out = net(torch.randn(3, 3, INPUT_SIZE, INPUT_SIZE))
    assert out.shape == (3, 256)
    np.testing.assert_allclose(out.norm(dim=1).numpy(), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("epochs", "starts", "triplet_from"),
    [
        (8, ((0, 0.1), (1, 0.3), (2, 0.5), (3, 0.7)), 5),
        (20, ((0, 0.1), (2, 0.3), (5, 0.5), (8, 0.7)), 12),
        (2, ((0, 0.1), (1, 0.7)), 1),  # short runs merge colliding stages, the later margin wins
    ],
)
def test_margin_schedule_stages(epochs: int, starts: tuple, triplet_from: int) -> None:
    schedule = LossSchedule.staged(epochs)
    assert schedule.margin_starts == starts
    assert schedule.triplet_from == triplet_from
    margins = [schedule.margin_at(e) for e in range(epochs)]
    assert margins == sorted(margins) and margins[0] == 0.1 and margins[-1] == 0.7
    assert [schedule.triplet_weight_at(e) > 0 for e in range(epochs)] == [e >= triplet_from for e in range(epochs)]


def test_schedule_rejects_bad_stages() -> None:
    with pytest.raises(ValueError, match="epoch 0"):
        LossSchedule(margin_starts=((1, 0.1),), triplet_from=None)
    with pytest.raises(ValueError, match="increasing"):
        LossSchedule(margin_starts=((0, 0.1), (3, 0.3), (2, 0.5)), triplet_from=None)


def test_arcface_adds_the_margin_to_the_target_angle_only() -> None:
    head = ArcFaceHead(in_dim=2, num_classes=2, scale=10.0, margin=0.3)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    theta = 0.4
    feature = torch.tensor([[math.cos(theta), math.sin(theta)]])
    logits = head(feature, torch.tensor([0]))
    assert logits[0, 0].item() == pytest.approx(10.0 * math.cos(theta + 0.3), abs=1e-5)
    assert logits[0, 1].item() == pytest.approx(10.0 * math.sin(theta), abs=1e-5)
    head.set_margin(0.0)
    assert head(feature, torch.tensor([0]))[0, 0].item() == pytest.approx(10.0 * math.cos(theta), abs=1e-5)
    with pytest.raises(ValueError):
        head.set_margin(2.0)


def test_batch_hard_triplet_on_a_hand_made_batch() -> None:
    # a0, a1 share label 0; b0 has label 1. Unit vectors on a circle at angles 0, 90, 60 degrees.
    angles = np.radians([0.0, 90.0, 60.0])
    feats = torch.tensor(np.stack([np.cos(angles), np.sin(angles)], axis=1), dtype=torch.float32)
    labels = torch.tensor([0, 0, 1])
    chord = lambda deg: 2 * math.sin(math.radians(deg) / 2)  # noqa: E731
    loss, active = batch_hard_triplet_loss(feats, labels, margin=0.3)
    # anchor 0: d(p)=chord 90, d(n)=chord 60; anchor 1: d(p)=chord 90, d(n)=chord 30; anchor 2 has no positive
    expected = (max(0, chord(90) - chord(60) + 0.3) + max(0, chord(90) - chord(30) + 0.3)) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    assert active == 1.0


@pytest.mark.parametrize(("p", "k"), [(4, 3), (2, 5)])
def test_pk_sampler_yields_p_labels_times_k(p: int, k: int) -> None:
    labels = np.repeat(np.arange(6), [2, 3, 7, 4, 9, 1])  # label 5 has a single sample: drawn with replacement
    sampler = PKBatchSampler(labels, p, k, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) == max(1, len(labels) // (p * k))
    for batch in batches:
        counts = np.bincount(labels[batch], minlength=6)
        assert sorted(counts[counts > 0].tolist()) == [k] * p
    sampler.set_epoch(1)
    assert list(sampler) != batches or len(batches) == 1


def test_pk_sampler_gives_ranks_disjoint_equal_shares() -> None:
    labels = np.repeat(np.arange(10), 8)
    ranks = [PKBatchSampler(labels, 4, 2, seed=1, rank=r, world_size=3) for r in range(3)]
    shares = [list(s) for s in ranks]
    single = list(PKBatchSampler(labels, 4, 2, seed=1, batches_per_epoch=ranks[0].total_batches))
    assert len({len(s) for s in shares}) == 1
    assert sorted(map(tuple, sum(shares, []))) == sorted(map(tuple, single))


def test_pk_sampler_needs_p_labels() -> None:
    with pytest.raises(ValueError, match="only 2 labels"):
        PKBatchSampler([0, 0, 1, 1], 3, 2)


def test_augmenter_output_is_normalised_batch_and_seeded() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, TRAIN_CROP_SIZE, TRAIN_CROP_SIZE, 3), dtype=np.uint8)
    inner = np.tile(np.array([[0.1, 0.1, 0.9, 0.9]], np.float32), (5, 1))
    a = CropAugmenter(seed=7)(images, inner)
    b = CropAugmenter(seed=7)(images, inner)
    c = CropAugmenter(seed=8)(images, inner)
    assert a.shape == (5, 3, INPUT_SIZE, INPUT_SIZE) and a.dtype == torch.float32
    assert torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.equal(a, c)


def _toy_crops(n_products: int, per_product: int, size: int, seed: int = 0) -> CropSet:
    """Products are two-colour blocks plus noise; shop and frame crops alternate."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for product in range(n_products):
        top, bottom = rng.integers(0, 256, size=(2, 3))
        for _ in range(per_product):
            img = np.empty((size, size, 3), np.float32)
            img[: size // 2], img[size // 2 :] = top, bottom
            img += rng.normal(0, 25, img.shape)
            images.append(np.clip(img, 0, 255).astype(np.uint8))
            labels.append(product)
    n = len(labels)
    inner = np.tile(np.array([[0.05, 0.05, 0.95, 0.95]], np.float32), (n, 1))
    sources = np.where(np.arange(n) % 2 == 0, SOURCE_SHOP, SOURCE_FRAME).astype(np.uint8)
    item_ids = np.array([f"i{p:06d}" for p in range(n_products)])
    return CropSet(np.stack(images), inner, np.array(labels, np.int64), item_ids, sources)


def test_real_optimisation_steps_lower_the_loss() -> None:
    seed_everything(0)
    crops = _toy_crops(n_products=6, per_product=8, size=48)
    model = EmbedderWithHead(EmbedderNet(TINY), num_classes=6, scale=16.0, margin=0.1)
    sampler = PKBatchSampler(crops.labels, 4, 4, seed=0, batches_per_epoch=4)
    batches = AugmentedBatches(crops.images, crops.inner_boxes, crops.labels, sampler, CropAugmenter(out_size=40))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    loss_fn = EmbedderLoss(triplet_weight=1.0)
    losses = []
    for epoch in range(8):
        sampler.set_epoch(epoch)
        parts = train_one_epoch(model, loss_fn, optimizer, batches, torch.device("cpu"), epoch, progress=False)
        losses.append(parts["loss"])
        assert "triplet" in parts and "arcface" in parts
    assert losses[-1] < 0.6 * losses[0], losses


def _write_cached_dataset(root: Path) -> None:
    """A data folder whose crop caches exist already (built from toy crops), as a run leaves them."""
    root.mkdir()
    (root / "catalog.json").write_text('{"categories": [], "products": []}', encoding="utf-8")
    from training.embedding_data import data_fingerprint

    fp = data_fingerprint(root)
    train = _toy_crops(n_products=4, per_product=6, size=TRAIN_CROP_SIZE, seed=1)
    test = _toy_crops(n_products=3, per_product=4, size=INPUT_SIZE, seed=2)
    train.save(root / "cache" / f"embedder-train-{TRAIN_CROP_SIZE}px-ctx{TRAIN_CONTEXT:g}-f2.npz", fp)
    test.save(root / "cache" / f"embedder-test-{INPUT_SIZE}px-ctx{EVAL_CONTEXT:g}-f1.npz", fp)


def _settings(data: Path, out: Path, **extra: object) -> command.EmbedderTrainSettings:
    base = dict(data=data, out=out, epochs=2, batch_p=2, batch_k=2, lr=1e-3, device="cpu",
                frames_per_instance=2, eval_frames_per_instance=1, eval_every=1, progress=False)
    base.update(extra)
    return command.EmbedderTrainSettings(**base)  # type: ignore[arg-type]


def test_resume_continues_from_the_checkpoint_and_export_matches_onnx(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _write_cached_dataset(data)
    straight = command.train_embedder(_settings(data, tmp_path / "a"), DistInfo())
    first = command.train_embedder(_settings(data, tmp_path / "b", stop_after=1), DistInfo())
    assert first == {"stopped_after_epoch": 0}
    package = tmp_path / "package"
    resumed = command.train_embedder(
        _settings(data, tmp_path / "c", resume=tmp_path / "b" / "last.pt", export=package), DistInfo()
    )
    state_a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    state_c = torch.load(tmp_path / "c" / "last.pt", weights_only=True)
    assert state_c["epoch"] == 1
    assert [row["epoch"] for row in state_c["metrics"]["history"]] == [0.0, 1.0]
    for name, tensor in state_a["model"].items():
        torch.testing.assert_close(state_c["model"][name], tensor, msg=name)
    assert resumed["recall@1"] == straight["recall@1"]

    spec = json.loads((package / "spec.json").read_text())
    assert spec["role"] == "embedder" and spec["embedding_dim"] == 256
    assert spec["input"]["shape"] == [-1, 3, INPUT_SIZE, INPUT_SIZE] and spec["input"]["resize"] == "stretch"
    assert spec["outputs"] == [{"name": "embeddings", "shape": [-1, 256]}]
    assert spec["metrics"]["recall@1"] == resumed["recall@1"]
    assert (package / "curves.png").is_file() and (package / "cmc.png").is_file()
    crops = np.random.default_rng(5).integers(0, 256, size=(4, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
    batch = to_network_input(crops).numpy()
    session = ort.InferenceSession(str(package / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = session.run(["embeddings"], {"images": batch})[0]
    net = EmbedderNet().eval()
    net.load_state_dict(torch.load(package / "weights.pt", weights_only=True))
    with torch.no_grad():
        torch_out = net(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(onnx_out, torch_out, atol=1e-4)  # stated parity tolerance
    np.testing.assert_allclose(np.linalg.norm(onnx_out, axis=1), 1.0, atol=1e-5)


def test_resume_from_an_unrelated_file_is_a_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _write_cached_dataset(data)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="unreadable"):
        command.train_embedder(_settings(data, tmp_path / "out", resume=bad), DistInfo())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--batch-k", "1"], "--batch-k"),
        (["--margins", "0.1,x"], "--margins"),
        (["--lr", "-1"], "--lr"),
        (["--backbone", "resnet9000"], "--backbone must be scratch or one of efficientnet_lite0"),
        (["--backbone", "efficientnet_lite0", "--trainable-blocks", "-1"], "--trainable-blocks"),
        (["--backbone-lr-scale", "2"], "--backbone-lr-scale"),
        (["--no-projection"], "--no-projection"),
        (["--pool", "center", "--distill-weight", "1"], "--distill-weight needs a pretrained --backbone"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path: Path, argv: list[str], message: str) -> None:
    parser = argparse.ArgumentParser()
    command.configure(parser)
    args = parser.parse_args(["--data", str(tmp_path), "--out", str(tmp_path / "o"), *argv])
    with pytest.raises(LiveTagError, match=message):
        command.settings_from_args(args)
