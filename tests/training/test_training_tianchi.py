"""The Tianchi-format reader on hand-written data sets, including broken ones."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from training.tianchi import (
    TianchiDataset,
    TianchiFormatError,
    TianchiMissingFileError,
    expand_box,
    parse_annotation,
    read_frames,
)

SHIRT, PANTS = "短袖衬衫", "长裤"


def _ann(box: list[float], label: str = SHIRT, instance_id: int = 1, viewpoint: int = 0, display: int = 1) -> dict:
    return {"box": box, "label": label, "viewpoint": viewpoint, "display": display, "instance_id": instance_id}


def _write_video(path: Path, n_frames: int, fps: int = 25) -> None:
    """Frames whose grey level encodes their index (index * 8)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps, 1))
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"preset": "fast", "crf": "10", "g": "25"}
        for i in range(n_frames):
            rgb = np.full((48, 64, 3), i * 8, np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    """A real-data-like split: two items, one video, no catalog.json and no segments.json."""
    split = tmp_path / "test"
    for item, instance, n in (("i1", 7, 2), ("i2", 9, 1)):
        for k in range(n):
            img = np.full((80, 60, 3), 200, np.uint8)
            (split / "image" / item).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(split / "image" / item / f"{k}.jpg"), img)
            _write(split / "image_annotation" / item / f"{k}.json",
                   {"item_id": item, "img_name": f"{k}.jpg", "annotations": [_ann([5, 6, 50, 70], instance_id=instance)]})
    _write_video(split / "video" / "v1.mp4", 12)
    _write(split / "video_annotation" / "v1.json", {"video_id": "v1", "frames": [
        {"frame_index": 10, "annotations": [_ann([1, 2, 30, 40], instance_id=7), _ann([40, 2, 60, 40], PANTS, 0)]},
        {"frame_index": 0, "annotations": [_ann([1.5, 2.5, 30, 40], instance_id=9, display=0)]},
    ]})
    return split


def test_reads_shop_images_videos_and_links(root: Path) -> None:
    data = TianchiDataset(root)
    shops = data.shop_images()
    assert [(s.item_id, s.img_name) for s in shops] == [("i1", "0.jpg"), ("i1", "1.jpg"), ("i2", "0.jpg")]
    assert shops[0].path == root / "image" / "i1" / "0.jpg"
    a = shops[0].annotations[0]
    assert a.box == (5.0, 6.0, 50.0, 70.0) and a.label == SHIRT and a.instance_id == 7
    assert data.instance_to_item() == {7: "i1", 9: "i2"}
    assert data.segments() is None
    (video,) = data.videos()
    assert video.video_id == "v1" and video.path == root / "video" / "v1.mp4"
    assert [f.frame_index for f in video.frames] == [0, 10]
    assert [x.instance_id for x in video.frames[1].annotations] == [7, 0]
    assert video.frames[0].annotations[0].display == 0


def test_read_frames_returns_the_requested_frames(root: Path) -> None:
    frames = read_frames(root / "video" / "v1.mp4", [10, 3, 3, 50])
    assert sorted(frames) == [3, 10]  # 50 is past the end
    for index, frame in frames.items():
        assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
        assert abs(float(frame.mean()) - index * 8) < 4
    assert read_frames(root / "video" / "v1.mp4", []) == {}


def test_segments_json_is_read_when_present(root: Path) -> None:
    segs = {"v1": [{"item_id": "i1", "instance_id": 7, "start_frame": 0, "end_frame": 12, "start_s": 0.0,
                    "end_s": 0.48}]}
    _write(root / "segments.json", segs)
    assert TianchiDataset(root).segments() == segs
    _write(root / "segments.json", {"v1": [{"item_id": "i1"}]})
    with pytest.raises(TianchiFormatError, match="segments.json"):
        TianchiDataset(root).segments()


def test_malformed_json_names_the_file(root: Path) -> None:
    bad = root / "image_annotation" / "i2" / "0.json"
    bad.write_text('{"item_id": "i2", "img_name": ', encoding="utf-8")
    with pytest.raises(TianchiFormatError) as info:
        TianchiDataset(root).shop_images()
    assert str(bad) in str(info.value) and "not valid JSON" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        ({"box": [1, 2, 3], "label": SHIRT, "instance_id": 1}, "'box'"),
        ({"box": [5, 5, 5, 9], "label": SHIRT, "instance_id": 1}, "empty"),
        ({"box": ["a", 1, 2, 3], "label": SHIRT, "instance_id": 1}, "four numbers"),
        ({"box": [1, 2, 3, 4], "label": "hat", "instance_id": 1}, "23 Tianchi categories"),
        ({"box": [1, 2, 3, 4], "label": SHIRT}, "instance_id"),
        ({"box": [1, 2, 3, 4], "label": SHIRT, "instance_id": -2}, ">= 0"),
        ({"box": [1, 2, 3, 4], "label": SHIRT, "instance_id": "x"}, "integer"),
        ("not an object", "must be an object"),
    ],
)
def test_bad_video_annotations_name_the_file(root: Path, annotation: object, message: str) -> None:
    path = root / "video_annotation" / "v1.json"
    _write(path, {"video_id": "v1", "frames": [{"frame_index": 0, "annotations": [annotation]}]})
    with pytest.raises(TianchiFormatError, match=message) as info:
        TianchiDataset(root).videos()
    assert str(path) in str(info.value)


def test_missing_files_are_reported(root: Path, tmp_path: Path) -> None:
    (root / "image" / "i1" / "1.jpg").unlink()
    with pytest.raises(TianchiMissingFileError, match="1.jpg is missing"):
        TianchiDataset(root).shop_images()
    (root / "video" / "v1.mp4").unlink()
    with pytest.raises(TianchiMissingFileError, match="v1.mp4 is missing"):
        TianchiDataset(root).videos()
    with pytest.raises(TianchiMissingFileError, match="is missing"):
        read_frames(root / "video" / "v1.mp4", [0])
    with pytest.raises(TianchiMissingFileError, match="not a folder"):
        TianchiDataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TianchiMissingFileError, match="neither"):
        TianchiDataset(tmp_path / "empty")


def test_undecodable_video_is_a_format_error(root: Path) -> None:
    (root / "video" / "v1.mp4").write_bytes(b"\x00" * 300)
    with pytest.raises(TianchiFormatError, match="cannot be decoded"):
        read_frames(root / "video" / "v1.mp4", [0])


def test_instance_shared_by_two_items_is_rejected(root: Path) -> None:
    _write(root / "image_annotation" / "i2" / "0.json",
           {"item_id": "i2", "img_name": "0.jpg", "annotations": [_ann([5, 6, 50, 70], instance_id=7)]})
    with pytest.raises(TianchiFormatError, match="instance_id 7 is used by items i1 and i2"):
        TianchiDataset(root).instance_to_item()


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ((10, 10, 30, 50), (9, 8, 31, 52)),  # 10 % wider and taller, half on each side
        ((0, 0, 100, 100), (0, 0, 100, 100)),  # clipped to the image
        ((95, 90, 100, 100), (94, 89, 100, 100)),
    ],
)
def test_expand_box(box: tuple[float, ...], expected: tuple[int, ...]) -> None:
    assert expand_box(box, 0.1, 100, 100) == expected


@pytest.mark.parametrize(("official", "canonical"), [("长款外套", "长外套"), ("短袖Top", "短袖上衣"),
                                                    ("中等半身裙（及膝）", "中等半身裙"), ("长裤", "长裤")])
def test_official_tianchi_spellings_read_as_the_23_categories(tmp_path: Path, official: str, canonical: str) -> None:
    item = {"box": [1, 2, 30, 40], "label": official, "instance_id": 7}
    assert parse_annotation(item, tmp_path / "a.json").label == canonical


def test_a_sparse_video_is_indexed_by_its_timestamps(tmp_path: Path) -> None:
    """Every 40th frame of a 20 fps original, kept with its timestamp (as the real demo set): the
    annotations' frame 80 is the third decoded frame, found by pts, not by counting."""
    path = tmp_path / "sparse.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=20)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 20)
        for i, original in enumerate((0, 40, 80, 120)):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * i + 20, np.uint8), format="rgb24")
            frame.pts, frame.time_base = original, Fraction(1, 20)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    frames = read_frames(path, [40, 80, 2])
    assert sorted(frames) == [40, 80]
    assert abs(int(frames[80].mean()) - 100) <= 3 and abs(int(frames[40].mean()) - 60) <= 3
