"""The detector: targets, losses that fall under real optimisation, decoded shapes, metrics, augmentation."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from stream.errors import LiveTagError
from training.categories import CATEGORIES
from training.commands.train_detector import DetectorTrainSettings
from training.detection_data import DetectionCache, DetectionSamples, augment
from training.detection_losses import detection_losses, detector_loss_fn, encode_targets, giou
from training.detection_metrics import FramePrediction, average_precision, detection_metrics, match
from training.engine import load_checkpoint, seed_everything, train_one_epoch
from training.models.detector import DetectorConfig, GarmentDetector, decode, flip_averaged

SMALL = DetectorConfig(widths=(8, 16, 16, 24, 32), neck_channels=24)


def _toy_cache(n: int = 16, size: int = 128, seed: int = 0) -> DetectionCache:
    """Frames with one or two coloured rectangles on grey noise; the red one is the sold item."""
    rng = np.random.default_rng(seed)
    images = np.clip(rng.normal(114, 12, size=(n, size, size, 3)), 0, 255).astype(np.uint8)
    boxes, classes, sold, offsets = [], [], [], [0]
    for i in range(n):
        count = 1 + i % 2
        for j in range(count):
            w, h = rng.integers(20, 44, size=2)
            x1, y1 = rng.integers(0, size - w), rng.integers(0, size - h)
            colour = (220, 30, 30) if j == 0 else (30, 30, 220)
            images[i, y1 : y1 + h, x1 : x1 + w] = colour
            boxes.append([x1, y1, x1 + w, y1 + h])
            classes.append(0 if j == 0 else 5)
            sold.append(1 if j == 0 else 0)
        offsets.append(len(boxes))
    return DetectionCache(
        images=images, boxes=np.asarray(boxes, np.float32), classes=np.asarray(classes, np.int64),
        sold=np.asarray(sold, np.uint8), offsets=np.asarray(offsets, np.int64),
        kinds=np.zeros(n, np.uint8), sizes=np.full((n, 2), size, np.int32), path=None,  # type: ignore[arg-type]
    )


def test_targets_mark_the_center_cell_and_let_small_boxes_win() -> None:
    big = [0.0, 0.0, 128.0, 128.0]
    small = [40.0, 40.0, 72.0, 72.0]  # center (56, 56) -> cell (7, 7)
    t = encode_targets(np.array([big, small], np.float32), np.array([3, 9]), np.array([0, 1]), 128, 128, 8)
    assert t["heat"].shape == (1, 16, 16) and t["box"].shape == (4, 16, 16)
    assert t["heat"][0, 7, 7] == 1.0 and t["heat"][0, 8, 8] == 1.0  # both centers are exact peaks
    assert int((t["heat"] == 1.0).sum()) == 2
    assert t["cls"][7, 7] == 9 and t["sold"][7, 7] == 1.0 and t["weight"][7, 7] == 1.0
    np.testing.assert_array_equal(t["box"][:, 7, 7], small)
    assert t["cls"][8, 9] == 3 and t["sold"][8, 9] == 0.0  # the big box's neighbourhood outside the small one
    assert 0 < t["weight"][8, 9] < 1
    assert t["cls"][0, 0] == -1 and t["weight"][0, 0] == 0.0


def test_targets_of_an_empty_frame_are_all_background() -> None:
    t = encode_targets(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0), 64, 64, 8)
    assert t["heat"].sum() == 0 and t["weight"].sum() == 0 and (t["cls"] == -1).all()


def test_giou_of_identical_disjoint_and_nested_boxes() -> None:
    a = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]])
    b = torch.tensor([[0.0, 0, 10, 10], [20, 0, 30, 10], [0, 0, 5, 10]])
    got = giou(a, b)
    assert got[0] == pytest.approx(1.0)
    assert got[1] == pytest.approx(-(300 - 200) / 300)
    assert got[2] == pytest.approx(0.5)


def test_decoded_outputs_have_the_contract_shapes() -> None:
    model = GarmentDetector().eval()
    with torch.no_grad():
        boxes, scores, class_probs, sold = model(torch.randn(2, 3, 256, 256))
    assert boxes.shape == (2, 100, 4) and scores.shape == (2, 100)
    assert class_probs.shape == (2, 100, 23) and sold.shape == (2, 100)
    assert torch.allclose(class_probs.sum(-1), torch.ones(2, 100), atol=1e-5)
    assert bool(((scores >= 0) & (scores <= 1)).all())


def test_flip_test_detects_a_mirrored_image_as_the_mirror_of_its_boxes() -> None:
    """With flip averaging the detector is mirror-symmetric: a mirrored image gives the same scores and
    the mirrored boxes (which fails if the left and right distances are not swapped back)."""
    torch.manual_seed(4)
    model = GarmentDetector(replace(SMALL, flip_test=True)).eval()
    with torch.no_grad():
        model.center.weight.normal_(0.0, 1.0)
        model.distances.weight.normal_(0.0, 0.3)
        image = torch.rand(1, 3, 96, 128)
        boxes, scores, _, sold = model(image)
        m_boxes, m_scores, _, m_sold = model(image.flip(-1))
    keep = scores[0] > 0  # decoded peaks (the rest are padding slots)
    order, m_order = torch.argsort(-scores[0][keep]), torch.argsort(-m_scores[0][m_scores[0] > 0])
    assert int(keep.sum()) == int((m_scores[0] > 0).sum()) > 3
    assert torch.allclose(scores[0][keep][order], m_scores[0][m_scores[0] > 0][m_order], atol=1e-6)
    mirrored = boxes[0][keep][order][:, [2, 1, 0, 3]] * torch.tensor([-1.0, 1.0, -1.0, 1.0]) + torch.tensor([128.0, 0, 128.0, 0])
    assert torch.allclose(mirrored, m_boxes[0][m_scores[0] > 0][m_order], atol=1e-3)
    assert torch.allclose(sold[0][keep][order], m_sold[0][m_scores[0] > 0][m_order], atol=1e-6)
    plain = GarmentDetector(SMALL).eval()
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert not torch.allclose(plain(image)[0], boxes)  # the plain detector is not symmetric


def test_flip_averaged_means_a_map_and_its_mirror_with_sides_swapped() -> None:
    maps = {"center": torch.arange(6.0).reshape(1, 1, 1, 6).repeat(2, 1, 1, 1),
            "distances": torch.stack([torch.full((1, 6), float(v)) for v in (1, 2, 3, 4)])[None].repeat(2, 1, 1, 1)}
    out = flip_averaged(maps)
    assert out["center"].shape == (1, 1, 1, 6)
    assert out["center"][0, 0, 0].tolist() == [2.5] * 6  # (j + (5 - j)) / 2
    assert out["distances"][0, :, 0, 0].tolist() == [2.0, 2.0, 2.0, 4.0]  # left (1 + 3) / 2, right (3 + 1) / 2


def test_decode_finds_planted_peaks_with_their_boxes() -> None:
    h = w = 8
    center = torch.full((1, 1, h, w), -8.0)
    center[0, 0, 2, 3] = 4.0  # strongest peak
    center[0, 0, 2, 4] = 3.0  # its neighbour: not a peak
    center[0, 0, 6, 1] = 2.0
    distances = torch.zeros(1, 4, h, w)  # exp(0) * stride = 8 px to every side
    classes = torch.zeros(1, 23, h, w)
    classes[0, 7, 2, 3] = 10.0
    maps = {"center": center, "distances": distances, "classes": classes, "sold": torch.full((1, 1, h, w), 5.0)}
    boxes, scores, class_probs, sold = decode(maps, stride=8, max_detections=5)
    assert scores[0, :2].tolist() == pytest.approx([1 / (1 + math.exp(-4)), 1 / (1 + math.exp(-2))])
    # the flat background is a plateau: its cells are local maxima too, ranked after, lower index first
    assert scores[0, 2:].tolist() == pytest.approx([1 / (1 + math.exp(8))] * 3)
    assert boxes[0, 0].tolist() == pytest.approx([28 - 8, 20 - 8, 28 + 8, 20 + 8])
    assert boxes[0, 1].tolist() == pytest.approx([12 - 8, 52 - 8, 12 + 8, 52 + 8])
    assert int(class_probs[0, 0].argmax()) == 7 and float(sold[0, 0]) > 0.99


def test_loss_falls_under_real_optimisation() -> None:
    seed_everything(0)
    cache = _toy_cache(n=12, size=96)
    loader = DataLoader(DetectionSamples(cache, augment_data=False), batch_size=6, shuffle=True)
    model = GarmentDetector(SMALL)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    device = torch.device("cpu")
    first = train_one_epoch(model, detector_loss_fn, optimizer, loader, device, 0, progress=False)
    for epoch in range(1, 25):
        last = train_one_epoch(model, detector_loss_fn, optimizer, loader, device, epoch, progress=False)
    assert set(first) == {"loss", "heat", "giou", "l1", "cls", "sold"}
    assert last["loss"] < 0.5 * first["loss"]
    assert last["heat"] < first["heat"] and last["giou"] < first["giou"] and last["cls"] < first["cls"]


def test_loss_terms_are_finite_without_any_box() -> None:
    model = GarmentDetector(SMALL).train()
    targets = encode_targets(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0), 64, 64, 8)
    batch = {k: torch.from_numpy(np.stack([v, v])) for k, v in targets.items()}
    parts = detection_losses(model.raw(torch.randn(2, 3, 64, 64)), batch, 8)
    assert all(math.isfinite(float(v.detach())) for v in parts.values())
    assert float(parts["giou"].detach()) == 0.0


def test_decode_picks_the_same_cells_from_half_precision_maps() -> None:
    """An FP16 module (the torch backend on CUDA) must rank cells as the float32 graph does: a rank
    computed in FP16 overflows (65504) and top-K then returns noise."""
    gen = torch.Generator().manual_seed(0)
    h = w = 40  # the shipped detector's 320 px input at stride 8
    maps = {
        "center": torch.randn(1, 1, h, w, generator=gen) * 4,
        "distances": torch.rand(1, 4, h, w, generator=gen) * 3,
        "classes": torch.randn(1, 23, h, w, generator=gen),
        "sold": torch.randn(1, 1, h, w, generator=gen),
    }
    maps = {k: v.half().float() for k, v in maps.items()}  # values exact in both precisions
    boxes, scores, _, sold = decode(maps, stride=8, max_detections=100)
    boxes16, scores16, _, sold16 = decode({k: v.half() for k, v in maps.items()}, stride=8, max_detections=100)
    assert torch.isfinite(scores16).all()
    assert torch.allclose(scores16.float(), scores, atol=1e-3)
    assert torch.allclose(sold16.float(), sold, atol=1e-3)
    assert torch.allclose(boxes16.float(), boxes, rtol=2e-3, atol=0.5)


@pytest.mark.parametrize("out_size", [None, 96])
def test_augmentation_keeps_boxes_on_their_pixels(out_size: int | None) -> None:
    image = np.full((128, 128, 3), 114, np.uint8)
    image[32:64, 16:48] = (250, 0, 0)
    box = np.array([[16.0, 32.0, 48.0, 64.0]], np.float32)
    side = out_size or 128
    kept = 0
    for seed in range(20):
        out, boxes, keep = augment(image, box.copy(), np.arange(1), np.random.default_rng(seed),
                                   content=(96, 72), out_size=out_size)
        assert out.shape == (side, side, 3) and out.dtype == np.uint8
        if len(boxes) == 0:
            continue
        kept += 1
        assert keep.tolist() == [0]
        x1, y1, x2, y2 = boxes[0]
        assert 0 <= x1 < x2 <= side and 0 <= y1 < y2 <= side
        inner = out[int(y1) + 3 : int(y2) - 3, int(x1) + 3 : int(x2) - 3].astype(int)
        if inner.size:  # the red patch moved with its box (colour jitter keeps red dominant)
            assert (inner[..., 0] > inner[..., 2] + 40).mean() > 0.9
    assert kept >= 10  # shifts are drawn over the content, so the box mostly stays in view


@pytest.mark.parametrize("zoom", [(0.3, 0.3), (0.6, 0.6), (1.2, 1.2)])
def test_augmentation_zoom_sets_the_object_scale(zoom: tuple[float, float]) -> None:
    image = np.full((128, 128, 3), 114, np.uint8)
    box = np.array([[40.0, 40.0, 80.0, 88.0]], np.float32)  # 40 x 48 pixels
    checked = 0
    for seed in range(10):
        _, boxes, _ = augment(image, box.copy(), np.arange(1), np.random.default_rng(seed),
                              content=(128, 128), out_size=96, zoom=zoom)  # a smaller window: always zoomed
        if len(boxes) and np.all(boxes[0, :2] > 0) and np.all(boxes[0, 2:] < 96):  # wholly in view
            sides = boxes[0, 2:] - boxes[0, :2]
            np.testing.assert_allclose(sides, [40 * zoom[0], 48 * zoom[0]], rtol=1e-4)
            checked += 1
    assert checked >= 3


def test_detector_settings_reject_a_zoom_outside_its_range(tmp_path: Path) -> None:
    with pytest.raises(LiveTagError, match="--zoom-min"):
        DetectorTrainSettings(data=tmp_path, out=tmp_path, zoom_min=1.5)


def test_average_precision_known_values() -> None:
    assert average_precision(np.array([0.9, 0.8]), np.array([True, True]), 2) == pytest.approx(1.0)
    # a false positive ranked first: precision 1/2 at recall 0.5, 2/3 at recall 1.0 -> 2/3
    assert average_precision(np.array([0.9, 0.8, 0.7]), np.array([False, True, True]), 2) == pytest.approx(2 / 3)
    assert average_precision(np.array([0.9]), np.array([True]), 2) == pytest.approx(0.5)
    assert math.isnan(average_precision(np.zeros(0), np.zeros(0, bool), 0))


def test_match_uses_each_truth_once() -> None:
    truth = np.array([[0, 0, 10, 10]], np.float32)
    preds = np.array([[0, 0, 10, 10], [1, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    assert match(preds, np.array([0.5, 0.9, 0.8]), truth).tolist() == [False, True, False]


def test_detection_metrics_on_perfect_and_confused_predictions() -> None:
    truth_boxes = np.array([[0, 0, 50, 50], [60, 60, 120, 120]], np.float32)
    truths = [(truth_boxes, np.array([1, 4]), np.array([1, 0], np.uint8))]
    onehot = np.eye(23, dtype=np.float32)
    perfect = FramePrediction(truth_boxes, np.array([0.9, 0.8], np.float32), onehot[[1, 4]],
                              np.array([0.95, 0.1], np.float32))
    m = detection_metrics([perfect], truths, num_classes=23)
    for key in ("map50", "map50_classes", "ap50_sold", "sold_precision", "sold_recall", "sold_top1"):
        assert m[key] == pytest.approx(1.0), key
    swapped = FramePrediction(truth_boxes, np.array([0.9, 0.8], np.float32), onehot[[4, 1]],
                              np.array([0.1, 0.95], np.float32))
    m = detection_metrics([swapped], truths, num_classes=23)
    assert m["map50"] == pytest.approx(1.0)
    assert m["map50_classes"] == 0.0
    assert m["ap50_sold"] == pytest.approx(0.5)  # the sold box is found, but ranked after a wrong one
    assert m["sold_precision"] == 0.0 and m["sold_recall"] == 0.0 and m["sold_top1"] == 0.0


def _write_tiny_dataset(root: Path) -> None:
    """Two splits in the Tianchi layout: short videos of moving rectangles plus two shop images."""
    import av
    import cv2

    root.mkdir(parents=True)
    (root / "catalog.json").write_text(json.dumps({"generator": "tiny-test/1", "categories": [], "products": []}))
    rng = np.random.default_rng(0)
    for split, videos in (("train", 2), ("test", 1)):
        base = root / split
        for sub in ("video", "video_annotation", "image/i1", "image_annotation/i1"):
            (base / sub).mkdir(parents=True)
        for v in range(videos):
            frames = []
            with av.open(str(base / "video" / f"v{v}.mp4"), "w") as container:
                stream = container.add_stream("mpeg4", rate=10)
                stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
                for i in range(12):
                    img = np.full((96, 128, 3), 90, np.uint8)
                    x, y = 10 + 3 * i + 5 * v, 20 + int(rng.integers(0, 10))
                    img[y : y + 40, x : x + 30] = (230, 40, 40)
                    img[10:40, 80:120] = (40, 40, 230)
                    sold = {"box": [x, y, x + 30, y + 40], "label": CATEGORIES[1], "instance_id": 1}
                    other = {"box": [80, 10, 120, 40], "label": CATEGORIES[20], "instance_id": 0}
                    frames.append({"frame_index": i, "annotations": [sold, other]})
                    for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
            (base / "video_annotation" / f"v{v}.json").write_text(json.dumps({"video_id": f"v{v}", "frames": frames}))
        for n in range(2):
            img = np.full((80, 60, 3), 255, np.uint8)
            img[10:70, 10:50] = (230, 40, 40)
            cv2.imwrite(str(base / "image" / "i1" / f"{n}.jpg"), img[..., ::-1])
            ann = {"item_id": "i1", "img_name": f"{n}.jpg",
                   "annotations": [{"box": [10, 10, 50, 70], "label": CATEGORIES[1], "instance_id": 1}]}
            (base / "image_annotation" / "i1" / f"{n}.json").write_text(json.dumps(ann))


def test_command_trains_resumes_and_exports_a_loadable_package(tmp_path: Path) -> None:
    import engines
    from training.commands.train_detector import DetectorTrainSettings, train

    data, run_dir, package = tmp_path / "data", tmp_path / "run", tmp_path / "detector"
    _write_tiny_dataset(data)
    common = {"data": data, "out": run_dir, "batch_size": 4, "input_size": 96, "train_size": 64, "workers": 0,
              "frame_step": 1, "eval_every": 1, "val_frames": 0, "warmup_steps": 2, "progress": False}
    train(DetectorTrainSettings(epochs=1, **common))  # type: ignore[arg-type]
    history = json.loads((run_dir / "history.json").read_text())
    assert [row["epoch"] for row in history] == [0.0]
    assert (run_dir / "curves.png").is_file()
    caches = sorted(p.name for p in (data / "cache").iterdir())
    assert [c.split("-")[1] for c in caches] == ["test", "train"]

    metrics = train(DetectorTrainSettings(epochs=2, resume=run_dir / "last.pt", export=package, **common))  # type: ignore[arg-type]
    history = json.loads((run_dir / "history.json").read_text())
    assert [row["epoch"] for row in history] == [0.0, 1.0]
    model = GarmentDetector(DetectorConfig())
    next_epoch, config = load_checkpoint(run_dir / "last.pt", model=model)
    assert next_epoch == 2 and config["epochs"] == 2 and len(config["history"]) == 2
    assert metrics["frames"] == 12 and 0.0 <= metrics["map50"] <= 1.0
    assert metrics["parity_max_abs_diff"] <= 1e-2

    spec = json.loads((package / "spec.json").read_text())
    assert spec["input"]["shape"] == [-1, 3, 96, 96] and spec["classes"] == list(CATEGORIES)
    assert spec["metrics"]["frames"] == 12 and (package / "curves.png").is_file()
    assert spec["training_data"]["generator_version"] == "tiny-test/1"  # from the data set's catalog.json
    detector = engines.load_detector(package)
    frame = np.full((96, 128, 3), 90, np.uint8)
    found = detector.detect([frame])
    assert len(found) == 1 and found[0].class_probs.shape[1] == 23


def test_command_rejects_bad_settings_and_missing_data(tmp_path: Path) -> None:
    from stream.errors import LiveTagError
    from training.commands.train_detector import DetectorTrainSettings, train

    with pytest.raises(LiveTagError, match="multiple of 32"):
        DetectorTrainSettings(data=tmp_path, out=tmp_path, input_size=100)
    with pytest.raises(LiveTagError, match="train not found; generate data"):
        train(DetectorTrainSettings(data=tmp_path, out=tmp_path / "run", progress=False))
