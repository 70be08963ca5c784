"""Ground truth of a data set in the Tianchi layout, read by the one reader (:mod:`training.tianchi`).

Only what evaluation needs: which item every video sells (the item whose instance has the
most annotated frames), where that instance is boxed frame by frame, the boxes of the shop
images, and the optional ``segments.json``. Layout (see docs/design.md)::

    ROOT/image/<item_id>/<n>.jpg
    ROOT/image_annotation/<item_id>/<n>.json
    ROOT/video/<video_id>.mp4
    ROOT/video_annotation/<video_id>.json
    ROOT/segments.json              (optional)

A set without annotation folders (videos and shop images only) has no truth: every video is
still answered, none is scored.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from stream.source import VIDEO_FILE_SUFFIXES
from training.tianchi import FrameAnnotation, TianchiDataset, TianchiFormatError

Box = tuple[float, float, float, float]


class DatasetLayoutError(TianchiFormatError):
    """The data set root does not have the Tianchi layout."""


@dataclass(frozen=True)
class VideoTruth:
    """What one video shows.

    Attributes:
        video_id: File stem of the video.
        item_id: The sold item (most annotated frames), or None when no box links to a shop item.
        instance_id: The instance id of that item in the video annotation (0 when unknown).
        first_frame: First annotated frame index of the sold item, or None.
        frame_boxes: frame index -> boxes ``[x1, y1, x2, y2]`` of the sold instance in that frame.
    """

    video_id: str
    item_id: str | None
    instance_id: int
    first_frame: int | None
    frame_boxes: dict[int, list[Box]] = field(default_factory=dict)


@dataclass(frozen=True)
class SegmentTruth:
    """One span of a video during which one item is shown (from ``segments.json``)."""

    video_id: str
    item_id: str
    start_s: float
    end_s: float


def check_layout(root: Path) -> None:
    """Raise DatasetLayoutError unless ``root`` holds ``image/`` and ``video/`` folders."""
    if not root.is_dir():
        raise DatasetLayoutError(f"data set root {root} is not a folder; pass the folder holding image/ and video/")
    missing = [name for name in ("image", "video") if not (root / name).is_dir()]
    if missing:
        raise DatasetLayoutError(
            f"{root} lacks {', '.join(name + '/' for name in missing)}; pass a split folder in the Tianchi layout "
            "(e.g. OUT/test from 'livetag data synth')"
        )


def list_videos(root: Path) -> list[Path]:
    """Video files under ``root/video``, sorted by name."""
    return sorted(p for p in (root / "video").iterdir() if p.suffix.lower() in VIDEO_FILE_SUFFIXES)


@dataclass(frozen=True)
class DatasetTruth:
    """Everything evaluation scores against.

    Attributes:
        videos: video id -> its truth (annotated videos only).
        shop_boxes: (item id, image name) -> [(box, instance id)] of the shop images.
        segments: The spans of ``segments.json``, or None without that file.
    """

    videos: dict[str, VideoTruth]
    shop_boxes: dict[tuple[str, str], list[tuple[Box, int]]]
    segments: list[SegmentTruth] | None

    def video(self, video_id: str) -> VideoTruth:
        """The truth of one video (an unknown item when it is not annotated)."""
        return self.videos.get(video_id) or VideoTruth(video_id, None, 0, None)


def read_truth(root: Path) -> DatasetTruth:
    """The truth of the set at ``root`` (empty when it has no annotation folders).

    Raises:
        TianchiFormatError: An annotation file is malformed or names a missing file (named).
    """
    if not any((root / d).is_dir() for d in ("image_annotation", "video_annotation")):
        return DatasetTruth({}, {}, None)
    data = TianchiDataset(root)
    items_by_instance = instance_to_item(data)
    videos = {record.video_id: _video_truth(record.video_id, record.frames, items_by_instance)
              for record in data.videos()}
    shop_boxes = {(shop.item_id, shop.img_name): [(a.box, a.instance_id) for a in shop.annotations]
                  for shop in data.shop_images()}
    raw = data.segments()
    segments = None if raw is None else [
        SegmentTruth(str(video_id), str(span["item_id"]), float(span["start_s"]), float(span["end_s"]))
        for video_id, spans in raw.items() for span in spans
    ]
    return DatasetTruth(videos, shop_boxes, segments)


def instance_to_item(data: TianchiDataset) -> dict[int, str]:
    """instance id -> item id, from the shop image annotations, else from ``catalog.json`` beside or
    above the split (written by ``livetag data synth``)."""
    mapping = dict(data.instance_to_item())
    for catalog in (data.root / "catalog.json", data.root.parent / "catalog.json"):
        if catalog.is_file():
            try:
                products = json.loads(catalog.read_text(encoding="utf-8")).get("products", [])
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
                raise TianchiFormatError(f"cannot read {catalog}: {exc}; fix or remove the file") from exc
            for product in products:
                instance_id = int(product.get("instance_id", 0) or 0)
                if instance_id > 0:
                    mapping.setdefault(instance_id, str(product["item_id"]))
            break
    return mapping


def _video_truth(video_id: str, frames: list[FrameAnnotation], items_by_instance: dict[int, str]) -> VideoTruth:
    """The sold item of one video: the linked instance with the most annotated frames."""
    frames_per_instance: Counter[int] = Counter()
    boxes: dict[int, dict[int, list[Box]]] = {}
    for frame in frames:
        seen: set[int] = set()
        for ann in frame.annotations:
            if ann.instance_id <= 0 or ann.instance_id not in items_by_instance:
                continue
            boxes.setdefault(ann.instance_id, {}).setdefault(frame.frame_index, []).append(ann.box)
            if ann.instance_id not in seen:
                frames_per_instance[ann.instance_id] += 1
                seen.add(ann.instance_id)
    if not frames_per_instance:
        return VideoTruth(video_id, None, 0, None)
    # most annotated frames; ties: the smaller instance id, so the truth never depends on dict order
    instance_id = min(frames_per_instance, key=lambda i: (-frames_per_instance[i], i))
    frame_boxes = boxes[instance_id]
    return VideoTruth(video_id, items_by_instance[instance_id], instance_id, min(frame_boxes), frame_boxes)
