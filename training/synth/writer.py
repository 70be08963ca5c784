"""Files of the Tianchi layout: paths, JSON and JPEG writing."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np


def split_dirs(root: Path) -> dict[str, Path]:
    """The folders of one split (``OUT/train``, ``OUT/test``, or ``OUT`` itself when flat), created if missing."""
    dirs = {name: root / name for name in ("image", "image_annotation", "image_text", "video", "video_annotation",
                                           "video_text")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    dirs["root"] = root
    return dirs


def write_json(path: Path, data: object) -> None:
    """Write JSON as UTF-8 (Chinese labels stay readable), deterministic key order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")


def write_jpeg(path: Path, rgb: np.ndarray, quality: int = 90) -> None:
    """Write an RGB uint8 (H, W, 3) image as JPEG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"JPEG encoding failed for {path}")
    path.write_bytes(buf.tobytes())
