"""The synthetic generator, read back through the Tianchi reader."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from consumers.cli import main as cli_main
from training.categories import CATEGORIES
from training.synth.catalog import make_catalog
from training.synth.generate import SynthConfig, SynthConfigError, generate
from training.tianchi import TianchiDataset

SMALL = dict(products=6, streams=2, seconds=3.0, fps=20, segments=2, annotate_every=5, progress=False)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "ds"
    generate(SynthConfig(out=out, seed=7, workers=1, **SMALL))  # type: ignore[arg-type]
    return out


def _catalog(root: Path) -> dict:
    return json.loads((root / "catalog.json").read_text(encoding="utf-8"))


def _json_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.json"))}


def test_counts_and_catalog(dataset: Path) -> None:
    catalog = _catalog(dataset)
    assert catalog["categories"] == list(CATEGORIES)
    products = catalog["products"]
    assert len(products) == 6
    assert {p["split"] for p in products} == {"train", "test"}
    assert len({p["instance_id"] for p in products}) == 6 and min(p["instance_id"] for p in products) >= 1
    videos = 0
    for split in ("train", "test"):
        data = TianchiDataset(dataset / split)
        shops = data.shop_images()
        per_item: dict[str, int] = {}
        for s in shops:
            per_item[s.item_id] = per_item.get(s.item_id, 0) + 1
        expected = {p["item_id"] for p in products if p["split"] == split}
        assert set(per_item) == expected
        assert all(4 <= n <= 8 for n in per_item.values()), per_item
        videos += len(data.videos())
    assert videos == 2


def test_shop_images_boxes_inside_and_linked(dataset: Path) -> None:
    for split in ("train", "test"):
        data = TianchiDataset(dataset / split)
        links = data.instance_to_item()
        for shop in data.shop_images():
            image = cv2.imread(str(shop.path))
            assert image is not None
            h, w = image.shape[:2]
            assert len(shop.annotations) == 1
            a = shop.annotations[0]
            x1, y1, x2, y2 = a.box
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
            assert (x2 - x1) * (y2 - y1) > 0.1 * w * h
            assert links[a.instance_id] == shop.item_id
            assert a.viewpoint in (0, 1) and a.display in (0, 1)
        views = {(s.item_id, s.annotations[0].viewpoint) for s in data.shop_images()}
        for item in links.values():
            assert (item, 0) in views and (item, 1) in views


def test_videos_orientation_fps_keyframes_and_boxes(dataset: Path) -> None:
    sizes = set()
    for split in ("train", "test"):
        for video in TianchiDataset(dataset / split).videos():
            with av.open(str(video.path)) as container:
                stream = container.streams.video[0]
                assert stream.codec_context.name == "h264"
                assert stream.average_rate is not None and stream.time_base is not None
                fps = float(stream.average_rate)
                w, h = stream.codec_context.width, stream.codec_context.height
                time_base = stream.time_base
                key_times = [float(p.pts * time_base) for p in container.demux(stream)
                             if p.is_keyframe and p.pts is not None]
            assert fps == 20
            sizes.add((w, h))
            gaps = np.diff(key_times)
            assert len(gaps) >= 1
            assert np.all((gaps >= 1.0 - 1e-6) & (gaps <= 2.0 + 1e-6)), key_times
            assert np.allclose(gaps, gaps[0]), key_times  # regular: no scene-cut keyframes
            frames = video.frames
            assert [f.frame_index for f in frames] == list(range(0, frames[-1].frame_index + 1, 5))
            assert frames[-1].frame_index >= int(3.0 * fps) - 5
            for f in frames:
                for a in f.annotations:
                    x1, y1, x2, y2 = a.box
                    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
                    assert a.label in CATEGORIES
    assert sizes == {(540, 960), (1280, 720)}


def test_segments_match_frame_annotations(dataset: Path) -> None:
    for split in ("train", "test"):
        data = TianchiDataset(dataset / split)
        segments = data.segments()
        assert segments is not None
        links = data.instance_to_item()
        for video in data.videos():
            segs = segments[video.video_id]
            assert len(segs) == min(2, len(set(links.values())))
            for s in segs:
                assert s["start_frame"] < s["end_frame"]
                assert links[s["instance_id"]] == s["item_id"]
            assert all(a["end_frame"] <= b["start_frame"] for a, b in zip(segs[:-1], segs[1:], strict=True))
            sold_frames = with_others = 0
            for f in video.frames:
                sold = [a for a in f.annotations if a.instance_id > 0]
                expected = [s["instance_id"] for s in segs if s["start_frame"] <= f.frame_index < s["end_frame"]]
                assert [a.instance_id for a in sold] == expected, (video.video_id, f.frame_index)
                with_others += any(a.instance_id == 0 for a in f.annotations)
                for a in sold:
                    sold_frames += 1
                    height = a.box[3] - a.box[1]
                    frame_h = 960 if video.video_id == "v000000" else 720
                    assert 0.12 * frame_h < height <= frame_h
            assert sold_frames >= 0.6 * len(video.frames)
            assert with_others >= 0.8 * len(video.frames), "distractor garments (instance 0) are annotated"


def test_splits_are_disjoint(dataset: Path) -> None:
    catalog = _catalog(dataset)
    split_of = {p["item_id"]: p["split"] for p in catalog["products"]}
    item_of = {p["instance_id"]: p["item_id"] for p in catalog["products"]}
    train_items = {p.name for p in (dataset / "train" / "image").iterdir()}
    test_items = {p.name for p in (dataset / "test" / "image").iterdir()}
    assert train_items and test_items and not train_items & test_items
    for split in ("train", "test"):
        data = TianchiDataset(dataset / split)
        for segs in (data.segments() or {}).values():
            assert all(split_of[s["item_id"]] == split for s in segs)
        for video in data.videos():
            for f in video.frames:
                for a in f.annotations:
                    if a.instance_id > 0:
                        assert split_of[item_of[a.instance_id]] == split


def test_same_seed_same_output_any_workers(dataset: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate(SynthConfig(out=again, seed=7, workers=2, **SMALL))  # type: ignore[arg-type]
    assert _json_files(again) == _json_files(dataset)


def test_other_seed_other_output(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    generate(SynthConfig(out=a, products=3, streams=0, seed=1, workers=1, progress=False))
    generate(SynthConfig(out=b, products=3, streams=0, seed=2, workers=1, progress=False))
    files_a, files_b = _json_files(a), _json_files(b)
    assert files_a != files_b
    assert _catalog(a)["products"] != _catalog(b)["products"]


def test_catalog_hard_negatives_and_split_share() -> None:
    catalog = make_catalog(300, 0, 0.25)
    assert sum(p.split == "test" for p in catalog) == 75
    designs: dict[int, list] = {}
    for p in catalog:
        designs.setdefault(p.design_id, []).append(p)
    variants = [g for g in designs.values() if len(g) > 1]
    assert variants, "some designs come in several colourways"
    for g in variants:
        assert len({p.pattern_seed for p in g}) == 1 and len({p.colours for p in g}) == len(g)
        assert len({p.split for p in g}) == 1
    same: dict[tuple[str, str], set[int]] = {}
    for p in catalog:
        same.setdefault((p.category, p.colour_name), set()).add(p.design_id)
    assert any(len(d) > 1 for d in same.values()), "same category and colour, different design"
    assert {p.category for p in catalog} == set(CATEGORIES)


def test_invalid_options_fail_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(SynthConfigError, match="--products"):
        SynthConfig(out=tmp_path, products=0, streams=1).validate()
    with pytest.raises(SynthConfigError, match="--test-fraction"):
        SynthConfig(out=tmp_path, products=3, streams=1, test_fraction=1.5).validate()
    with pytest.raises(SynthConfigError, match="--flat"):
        SynthConfig(out=tmp_path, products=3, streams=1, flat=True, test_fraction=0.5).validate()
    with pytest.raises(SynthConfigError, match="too short"):
        SynthConfig(out=tmp_path, products=3, streams=1, seconds=2.0, segments=3).validate()


def test_cli_generates_and_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    args = ["data", "synth", "--out", str(out), "--products", "2", "--streams", "0", "--seed", "3",
            "--workers", "1", "--no-progress"]
    assert cli_main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["products"] == 2 and summary["videos"] == 0
    assert len(list((out / "train" / "image").rglob("*.jpg"))) + len(list((out / "test" / "image").rglob("*.jpg"))) \
        == summary["images"]
    before = _json_files(out)
    assert cli_main(args) == 1
    err = capsys.readouterr().err
    assert "already holds a data set" in err and len(err.strip().splitlines()) == 1
    assert _json_files(out) == before


def test_flat_layout_is_one_readable_split(tmp_path: Path) -> None:
    out = tmp_path / "flat"
    generate(SynthConfig(out=out, products=3, streams=1, seconds=2.0, fps=20, segments=2, test_fraction=1.0,
                         flat=True, workers=1, progress=False))
    assert not (out / "test").exists() and (out / "catalog.json").is_file()
    assert {p["split"] for p in _catalog(out)["products"]} == {"test"}
    data = TianchiDataset(out)
    assert len(data.instance_to_item()) == 3
    (video,) = data.videos()
    segments = data.segments()
    assert segments is not None and [s["instance_id"] for s in segments[video.video_id]]
    assert all(s["item_id"] in data.instance_to_item().values() for s in segments[video.video_id])


def _colour_signature(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """Square-rooted HSV histogram of the middle of a box (a crude look descriptor)."""
    x1, y1, x2, y2 = (int(v) for v in box)
    h, w = y2 - y1, x2 - x1
    patch = image[y1 + h // 10 : y2 - h // 10, x1 + w // 6 : x2 - w // 6]
    hsv = cv2.cvtColor(np.ascontiguousarray(patch), cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, [12, 6, 6], [0, 180, 0, 256, 0, 256]).ravel()
    return np.sqrt(hist / max(float(hist.sum()), 1.0))


def test_sold_item_looks_like_its_shop_images(dataset: Path) -> None:
    """Even a colour histogram finds the right product for most sold-item boxes of the streams."""
    from training.tianchi import read_frames

    hits = total = 0
    for split in ("train", "test"):
        data = TianchiDataset(dataset / split)
        gallery = []
        for shop in data.shop_images():
            bgr = cv2.imread(str(shop.path))
            assert bgr is not None
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            gallery.append((shop.item_id, _colour_signature(rgb, shop.annotations[0].box)))
        links = data.instance_to_item()
        for video in data.videos():
            frames = read_frames(video.path, [f.frame_index for f in video.frames])
            for f in video.frames:
                for a in f.annotations:
                    if a.instance_id > 0:
                        query = _colour_signature(frames[f.frame_index], a.box)
                        best: dict[str, float] = {}
                        for item, sig in gallery:
                            best[item] = max(best.get(item, -1.0), float(sig @ query))
                        hits += max(best, key=lambda k: best[k]) == links[a.instance_id]
                        total += 1
    assert total > 0 and hits / total >= 0.6, (hits, total)


def test_stream_plan_covers_splits_orientations_and_products(tmp_path: Path) -> None:
    from training.synth.generate import plan_streams

    config = SynthConfig(out=tmp_path, products=300, streams=60, seed=0)
    catalog = make_catalog(300, 0, 0.25)
    jobs = plan_streams(config, catalog)
    assert [job.video_id for _, job in jobs] == [f"v{i:06d}" for i in range(60)]
    by_split: dict[str, list] = {"train": [], "test": []}
    for split, job in jobs:
        by_split[split].append(job)
        assert len(job.products) == 3 and len(set(job.products)) == 3
        assert all(p.split == split for p in job.products)
    assert len(by_split["test"]) == 15
    for split, split_jobs in by_split.items():
        landscape = sum(j.landscape for j in split_jobs)
        assert 0 < landscape < len(split_jobs), split
        shown = {p.item_id for j in split_jobs for p in j.products}
        assert len(shown) == min(3 * len(split_jobs), sum(p.split == split for p in catalog))
    (only,) = plan_streams(SynthConfig(out=tmp_path, products=10, streams=1, test_fraction=1.0, flat=True), make_catalog(10, 0, 1.0))
    assert only[0] == "test" and not only[1].landscape
