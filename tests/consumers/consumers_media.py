"""Media and models for the pipeline tests: short generated videos, shop images, tiny model packages."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from consumers.settings import BatchSettings, Settings, TopicSettings
from stream.encode import write_video

ENGINES_TESTS = Path(__file__).resolve().parents[1] / "engines"
#: Four products, one colour each, for tests with the tiny random models.
ITEMS: dict[str, str] = {"A": "red", "B": "green", "C": "blue", "D": "yellow"}
# Loose thresholds: the tiny models are random, so every detection should be allowed to vote.
LOOSE_SETTINGS = Settings().with_overrides(
    pipeline__sold_threshold=0.0,
    voter__min_similarity=-1.0,
    voter__start_score=0.2,
    voter__end_score=0.05,
    voter__min_votes=2,
    voter__margin=1.0,
    batch=BatchSettings(max_batch=4, max_wait_ms=5.0),
    topics=TopicSettings(partitions=1),
)
COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 70, 220), "yellow": (230, 210, 40)}


def export_tiny_models(out: Path) -> dict[str, Path]:
    """Tiny random-init detector and embedder packages (the engines tests' exporter)."""
    if str(ENGINES_TESTS) not in sys.path:
        sys.path.insert(0, str(ENGINES_TESTS))
    from engines_tiny_models import export_tiny_package

    return {role: export_tiny_package(out / role, role) for role in ("detector", "embedder")}


def garment_frame(colour: str, t: float, width: int = 160, height: int = 120) -> np.ndarray:
    """An RGB frame (height, width, 3): grey studio, a coloured garment moving slightly with time t."""
    frame = np.full((height, width, 3), 90, np.uint8)
    frame[:, :, 2] = 110
    x = int(40 + 10 * np.sin(t))
    frame[30:100, x : x + 60] = COLOURS[colour]
    frame[30:40, x + 20 : x + 40] = 30
    return frame


def make_video(path: Path, colours: list[str], seconds_each: float = 2.0, fps: int = 10, gop: int = 5) -> Path:
    """H.264 video showing each colour's garment for ``seconds_each``; keyframe every ``gop`` frames."""
    frames = []
    for colour in colours:
        for i in range(int(seconds_each * fps)):
            frames.append(garment_frame(colour, i / fps))
    write_video(path, frames, fps=fps, gop=gop)
    return path


def make_shop_images(root: Path, items: dict[str, str], per_item: int = 2) -> Path:
    """``root/<item_id>/<n>.jpg`` shop images: item id -> colour."""
    for item_id, colour in items.items():
        folder = root / item_id
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(per_item):
            image = np.full((128, 96, 3), 245, np.uint8)
            image[14 + 4 * n : 114, 12:84] = COLOURS[colour]
            Image.fromarray(image).save(folder / f"{n}.jpg", quality=95)
    return root


def make_tianchi_root(root: Path, videos: dict[str, list[str]], items: dict[str, str], fps: int = 10) -> Path:
    """A tiny data set in the Tianchi layout: shop images + annotations, videos + per-frame boxes,
    segments.json. ``videos``: video id -> colours shown (2 s each); ``items``: item id -> colour.
    Item k has instance id k + 1."""
    make_shop_images(root / "image", items)
    instance = {item: k + 1 for k, item in enumerate(sorted(items))}
    item_of_colour = {colour: item for item, colour in items.items()}
    for item in items:
        for n in range(2):
            doc = {"item_id": item, "img_name": f"{n}.jpg", "annotations": [
                {"box": [12, 14 + 4 * n, 84, 114], "label": "短袖上衣", "viewpoint": 0, "display": 1,
                 "instance_id": instance[item]}]}
            path = root / "image_annotation" / item / f"{n}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(doc))
    (root / "video").mkdir(parents=True, exist_ok=True)
    (root / "video_annotation").mkdir(parents=True, exist_ok=True)
    segments: dict[str, list[dict[str, object]]] = {}
    for video_id, colours in videos.items():
        make_video(root / "video" / f"{video_id}.mp4", colours, seconds_each=2.0, fps=fps)
        frames = []
        per = 2 * fps
        for s, colour in enumerate(colours):
            for i in range(per):
                x = int(40 + 10 * np.sin(i / fps))
                frames.append({"frame_index": s * per + i, "annotations": [
                    {"box": [x, 30, x + 60, 100], "label": "短袖上衣", "viewpoint": 0, "display": 1,
                     "instance_id": instance[item_of_colour[colour]]}]})
            segments.setdefault(video_id, []).append({
                "item_id": item_of_colour[colour], "instance_id": instance[item_of_colour[colour]],
                "start_frame": s * per, "end_frame": (s + 1) * per - 1, "start_s": 2.0 * s, "end_s": 2.0 * (s + 1)})
        (root / "video_annotation" / f"{video_id}.json").write_text(json.dumps({"video_id": video_id, "frames": frames}))
    (root / "segments.json").write_text(json.dumps(segments))
    return root
