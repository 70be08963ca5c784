"""Reader for data sets in the Tianchi live-stream product layout (real or synthetic).

Works on one split folder (``ROOT`` = ``OUT/test``)::

    ROOT/image/<item_id>/<n>.jpg
    ROOT/image_annotation/<item_id>/<n>.json   {"item_id", "img_name", "annotations": [...]}
    ROOT/video/<video_id>.mp4
    ROOT/video_annotation/<video_id>.json      {"video_id", "frames": [{"frame_index", "annotations"}]}
    ROOT/segments.json                         optional (synthetic data only)

Each annotation is ``{"box": [x1, y1, x2, y2], "label", "viewpoint", "display", "instance_id"}``;
``instance_id`` > 0 links a video box to the shop images carrying the same id, 0 is not the sold item.
Nothing here needs ``catalog.json``. Files that are missing or malformed raise a
:class:`TianchiFormatError` naming the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.preprocess import expand_box
from stream.errors import LiveTagError
from stream.source import VIDEO_FILE_SUFFIXES
from training.categories import UnknownCategoryError, canonical

__all__ = [
    "BoxAnnotation", "FrameAnnotation", "ShopImage", "TianchiDataset", "TianchiFormatError",
    "TianchiMissingFileError", "VideoRecord", "expand_box", "read_frames",
]



class TianchiFormatError(LiveTagError):
    """A data set file is malformed (bad JSON, missing or wrong fields)."""


class TianchiMissingFileError(TianchiFormatError):
    """A file or folder the layout requires is missing."""


@dataclass(frozen=True)
class BoxAnnotation:
    """One garment box.

    Attributes:
        box: ``(x1, y1, x2, y2)`` pixels, x2 > x1 and y2 > y1.
        label: one of the 23 Chinese category names.
        viewpoint: view code (synthetic data: 0 front, 1 back).
        display: 1 when the garment is worn, else 0.
        instance_id: > 0 for the product being sold (links to shop images), 0 otherwise.
    """

    box: tuple[float, float, float, float]
    label: str
    viewpoint: int
    display: int
    instance_id: int


@dataclass(frozen=True)
class ShopImage:
    """A catalog image of one product (``path`` is the JPEG)."""

    item_id: str
    img_name: str
    path: Path
    annotations: list[BoxAnnotation]


@dataclass(frozen=True)
class FrameAnnotation:
    """The boxes of one annotated video frame (``frame_index`` counts decoded frames from 0)."""

    frame_index: int
    annotations: list[BoxAnnotation]


@dataclass(frozen=True)
class VideoRecord:
    """A video file and its annotated frames (sorted by frame index)."""

    video_id: str
    path: Path
    frames: list[FrameAnnotation]


def _load_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TianchiMissingFileError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TianchiFormatError(f"{path} cannot be read: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TianchiFormatError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); fix or remove it") from None


def _int(value: Any, field: str, path: Path, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TianchiFormatError(f"{path}: field {field!r} must be an integer, got {value!r}")
    try:
        out = int(float(value))
    except ValueError:
        raise TianchiFormatError(f"{path}: field {field!r} must be an integer, got {value!r}") from None
    return out


def parse_annotation(item: Any, path: Path) -> BoxAnnotation:
    """Validate one annotation dict; errors name ``path``."""
    if not isinstance(item, dict):
        raise TianchiFormatError(f"{path}: an annotation must be an object, got {type(item).__name__}")
    box = item.get("box")
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        raise TianchiFormatError(f"{path}: 'box' must be [x1, y1, x2, y2], got {box!r}")
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise TianchiFormatError(f"{path}: 'box' must hold four numbers, got {box!r}") from None
    if not (np.isfinite([x1, y1, x2, y2]).all() and x2 > x1 and y2 > y1):
        raise TianchiFormatError(f"{path}: 'box' {box!r} is empty or not finite (need x2 > x1, y2 > y1)")
    raw_label = item.get("label")
    try:
        label = canonical(raw_label) if isinstance(raw_label, str) else None
    except UnknownCategoryError:
        label = None
    if label is None:
        raise TianchiFormatError(f"{path}: 'label' {raw_label!r} is not one of the 23 Tianchi categories")
    if "instance_id" not in item:
        raise TianchiFormatError(f"{path}: annotation lacks 'instance_id'")
    instance_id = _int(item.get("instance_id"), "instance_id", path)
    if instance_id < 0:
        raise TianchiFormatError(f"{path}: 'instance_id' must be >= 0, got {instance_id}")
    return BoxAnnotation(
        box=(x1, y1, x2, y2),
        label=label,
        viewpoint=_int(item.get("viewpoint"), "viewpoint", path, default=0),
        display=_int(item.get("display"), "display", path, default=0),
        instance_id=instance_id,
    )


def _annotations(data: dict, path: Path) -> list[BoxAnnotation]:
    items = data.get("annotations", [])
    if not isinstance(items, list):
        raise TianchiFormatError(f"{path}: 'annotations' must be a list")
    return [parse_annotation(a, path) for a in items]


def _natural(name: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


class TianchiDataset:
    """A split folder in the Tianchi layout, read lazily and cached.

    Args:
        root: the split folder (holding ``image/`` and/or ``video/`` with their annotation folders).

    Raises:
        TianchiMissingFileError: ``root`` is not a folder or holds neither images nor videos.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise TianchiMissingFileError(f"{self.root} is not a folder; pass a split folder such as OUT/test")
        if not any((self.root / d).is_dir() for d in ("image_annotation", "video_annotation")):
            raise TianchiMissingFileError(
                f"{self.root} holds neither image_annotation/ nor video_annotation/; pass a split folder "
                "in the Tianchi layout (e.g. OUT/test)"
            )
        self._shop: list[ShopImage] | None = None
        self._videos: list[VideoRecord] | None = None

    def shop_images(self) -> list[ShopImage]:
        """Every annotated shop image, sorted by item id then image name."""
        if self._shop is None:
            out: list[ShopImage] = []
            ann_root = self.root / "image_annotation"
            item_dirs = sorted(d for d in ann_root.iterdir() if d.is_dir()) if ann_root.is_dir() else []
            for item_dir in item_dirs:
                for path in sorted(item_dir.glob("*.json"), key=lambda p: _natural(p.name)):
                    data = _load_json(path)
                    if not isinstance(data, dict):
                        raise TianchiFormatError(f"{path}: expected an object with 'item_id' and 'annotations'")
                    item_id = str(data.get("item_id", item_dir.name))
                    img_name = data.get("img_name")
                    if not isinstance(img_name, str) or not img_name:
                        raise TianchiFormatError(f"{path}: 'img_name' is missing")
                    image = self.root / "image" / item_dir.name / img_name
                    if not image.is_file():
                        raise TianchiMissingFileError(f"{image} is missing (named by {path})")
                    out.append(ShopImage(item_id, img_name, image, _annotations(data, path)))
            self._shop = out
        return list(self._shop)

    def videos(self) -> list[VideoRecord]:
        """Every annotated video, sorted by video id."""
        if self._videos is None:
            out: list[VideoRecord] = []
            ann_root = self.root / "video_annotation"
            paths = sorted(ann_root.glob("*.json")) if ann_root.is_dir() else []
            for path in paths:
                data = _load_json(path)
                if not isinstance(data, dict) or not isinstance(data.get("frames", []), list):
                    raise TianchiFormatError(f"{path}: expected an object with 'video_id' and a 'frames' list")
                video_id = str(data.get("video_id", path.stem))
                video = self._video_file(video_id, path)
                frames: list[FrameAnnotation] = []
                for f in data.get("frames", []):
                    if not isinstance(f, dict) or "frame_index" not in f:
                        raise TianchiFormatError(f"{path}: every frame needs 'frame_index' and 'annotations'")
                    index = _int(f["frame_index"], "frame_index", path)
                    if index < 0:
                        raise TianchiFormatError(f"{path}: 'frame_index' must be >= 0, got {index}")
                    frames.append(FrameAnnotation(index, _annotations(f, path)))
                frames.sort(key=lambda fa: fa.frame_index)
                out.append(VideoRecord(video_id, video, frames))
            self._videos = out
        return list(self._videos)

    def _video_file(self, video_id: str, named_by: Path) -> Path:
        for suffix in VIDEO_FILE_SUFFIXES:
            candidate = self.root / "video" / f"{video_id}{suffix}"
            if candidate.is_file():
                return candidate
        raise TianchiMissingFileError(f"{self.root / 'video' / (video_id + '.mp4')} is missing (named by {named_by})")

    def instance_to_item(self) -> dict[int, str]:
        """Map each ``instance_id`` > 0 of the shop images to its item id.

        Raises:
            TianchiFormatError: one instance id is used by two items.
        """
        out: dict[int, str] = {}
        for shop in self.shop_images():
            for a in shop.annotations:
                if a.instance_id <= 0:
                    continue
                known = out.setdefault(a.instance_id, shop.item_id)
                if known != shop.item_id:
                    raise TianchiFormatError(
                        f"{shop.path}: instance_id {a.instance_id} is used by items {known} and {shop.item_id}"
                    )
        return out

    def segments(self) -> dict[str, list[dict]] | None:
        """``segments.json`` (video id -> segments with item_id, instance_id, start/end frame and
        seconds; ``end_frame`` exclusive), or None when the split has none (real data)."""
        path = self.root / "segments.json"
        if not path.is_file():
            return None
        data = _load_json(path)
        keys = ("item_id", "instance_id", "start_frame", "end_frame", "start_s", "end_s")
        if not isinstance(data, dict):
            raise TianchiFormatError(f"{path}: expected an object of video id -> segment list")
        for video_id, segs in data.items():
            if not isinstance(segs, list) or not all(isinstance(s, dict) and all(k in s for k in keys) for s in segs):
                raise TianchiFormatError(f"{path}: segments of {video_id!r} must be objects with {', '.join(keys)}")
        return data


def read_frames(path: str | Path, indices: Iterable[int]) -> dict[int, np.ndarray]:
    """Decode the frames with the given indices.

    A frame's index is its timestamp times the stream's nominal frame rate, counted from the first
    frame: for an ordinary constant-rate file that is the decoded-frame count, and for a sparse file
    (every n-th frame of the original kept with its timestamp, as the real Tianchi demo set) it is
    the original frame number that the annotations use.

    Args:
        path: a video file.
        indices: frame indices wanted; indices past the end are left out of the result.

    Returns:
        index -> (H, W, 3) uint8 RGB frame.

    Raises:
        TianchiMissingFileError: the file is missing.
        TianchiFormatError: the file cannot be decoded.
    """
    import av

    from stream.source import nominal_frame_rate

    path = Path(path)
    wanted = sorted({int(i) for i in indices if int(i) >= 0})
    if not path.is_file():
        raise TianchiMissingFileError(f"{path} is missing")
    out: dict[int, np.ndarray] = {}
    if not wanted:
        return out
    want = set(wanted)
    last = wanted[-1]
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = nominal_frame_rate(stream)
            first: float | None = None
            for count, frame in enumerate(container.decode(stream)):
                index = count
                if rate is not None and frame.time is not None:
                    first = frame.time if first is None else first
                    index = int(round((frame.time - first) * float(rate)))
                if index in want:
                    out[index] = frame.to_ndarray(format="rgb24")
                if index >= last:
                    break
    except (av.error.FFmpegError, IndexError) as exc:
        raise TianchiFormatError(f"{path} cannot be decoded: {exc}") from None
    return out
