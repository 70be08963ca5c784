"""Ground truth of a data set in the Tianchi layout, read with plain json.

Only what evaluation needs: which item every video sells (the item whose instance has the
most annotated frames), where that instance is boxed frame by frame, the boxes of the shop
images, and the optional ``segments.json``. Layout (see docs/design.md)::

    ROOT/image/<item_id>/<n>.jpg
    ROOT/image_annotation/<item_id>/<n>.json
    ROOT/video/<video_id>.mp4
    ROOT/video_annotation/<video_id>.json
    ROOT/segments.json              (optional)
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream.errors import LiveTagError

Box = tuple[float, float, float, float]
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".flv", ".ts", ".avi", ".webm")


class DatasetLayoutError(LiveTagError):
    """The data set root does not have the Tianchi layout, or a JSON file in it is unreadable."""


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


def read_json(path: Path) -> Any:
    """Parse one JSON file; raises DatasetLayoutError naming the file when it is unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetLayoutError(f"cannot read {path}: {exc}; fix or remove the file") from exc


def _box(raw: Any, where: Path) -> Box:
    if not isinstance(raw, (list, tuple)) or len(raw) != 4:
        raise DatasetLayoutError(f"{where}: a box must be [x1, y1, x2, y2], got {raw!r}")
    x1, y1, x2, y2 = (float(v) for v in raw)
    return (x1, y1, x2, y2)


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
    return sorted(p for p in (root / "video").iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)


def shop_image_boxes(root: Path) -> dict[tuple[str, str], list[tuple[Box, int]]]:
    """(item_id, img_name) -> [(box, instance_id)] from ``image_annotation``; empty without annotations."""
    out: dict[tuple[str, str], list[tuple[Box, int]]] = {}
    ann_root = root / "image_annotation"
    if not ann_root.is_dir():
        return out
    for path in sorted(ann_root.glob("*/*.json")):
        doc = read_json(path)
        item_id = str(doc.get("item_id", path.parent.name))
        img_name = str(doc.get("img_name", path.stem + ".jpg"))
        boxes = [
            (_box(a.get("box"), path), int(a.get("instance_id", 0) or 0)) for a in doc.get("annotations", [])
        ]
        out[(item_id, img_name)] = boxes
    return out


def instance_to_item(root: Path) -> dict[int, str]:
    """instance id -> item id, from the shop image annotations, else from ``catalog.json`` beside or above."""
    mapping: dict[int, str] = {}
    for (item_id, _), boxes in shop_image_boxes(root).items():
        for _, instance_id in boxes:
            if instance_id > 0:
                mapping.setdefault(instance_id, item_id)
    for catalog in (root / "catalog.json", root.parent / "catalog.json"):
        if catalog.is_file():
            for product in read_json(catalog).get("products", []):
                instance_id = int(product.get("instance_id", 0) or 0)
                if instance_id > 0:
                    mapping.setdefault(instance_id, str(product["item_id"]))
            break
    return mapping


def video_truth(root: Path, video_id: str, items_by_instance: dict[int, str]) -> VideoTruth:
    """The truth of one video from ``video_annotation/<video_id>.json`` (no file: an unknown item)."""
    path = root / "video_annotation" / f"{video_id}.json"
    if not path.is_file():
        return VideoTruth(video_id, None, 0, None)
    doc = read_json(path)
    frames_per_instance: Counter[int] = Counter()
    boxes: dict[int, dict[int, list[Box]]] = {}
    for frame in doc.get("frames", []):
        index = int(frame["frame_index"])
        seen: set[int] = set()
        for ann in frame.get("annotations", []):
            instance_id = int(ann.get("instance_id", 0) or 0)
            if instance_id <= 0 or instance_id not in items_by_instance:
                continue
            boxes.setdefault(instance_id, {}).setdefault(index, []).append(_box(ann.get("box"), path))
            if instance_id not in seen:
                frames_per_instance[instance_id] += 1
                seen.add(instance_id)
    if not frames_per_instance:
        return VideoTruth(video_id, None, 0, None)
    # most annotated frames; ties: the smaller instance id, so the truth never depends on dict order
    instance_id = min(frames_per_instance, key=lambda i: (-frames_per_instance[i], i))
    frame_boxes = boxes[instance_id]
    return VideoTruth(video_id, items_by_instance[instance_id], instance_id, min(frame_boxes), frame_boxes)


def read_segments(root: Path) -> list[SegmentTruth] | None:
    """All segments of ``segments.json``, or None when the file is absent."""
    path = root / "segments.json"
    if not path.is_file():
        return None
    doc = read_json(path)
    out: list[SegmentTruth] = []
    for video_id, spans in doc.items():
        for span in spans:
            out.append(SegmentTruth(str(video_id), str(span["item_id"]), float(span["start_s"]), float(span["end_s"])))
    return out
