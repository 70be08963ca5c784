"""Test media helpers for the stream tests: where the real videos are, synthetic frames, counts."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

DATA = Path(__file__).resolve().parents[1] / "data"
REAL_VIDEOS = ["bottle-detection.mp4", "again.mkv", "car-detection-14s.mp4"]


def moving_frames(count: int, height: int = 96, width: int = 128, seed: int = 0) -> list[np.ndarray]:
    """Smooth frames that change every frame (gradients drifting with a moving bright square).

    Returns:
        ``count`` RGB uint8 arrays of shape (height, width, 3).
    """
    yy, xx = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 60)
    frames = []
    for i in range(count):
        frame = np.stack([(xx * 2 + 3 * i + base) % 256, (yy * 2 + 2 * i) % 256, np.full_like(xx, (40 + 5 * i) % 256)], -1)
        x0 = (4 * i) % (width - 16)
        frame[8:24, x0 : x0 + 16] = 250
        frames.append(frame.astype(np.uint8))
    return frames


def demux_keyframe_count(path: Path | str) -> tuple[int, int]:
    """An independent count over a full demux: (video packets, keyframe packets)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
        return len(packets), sum(1 for p in packets if p.is_keyframe)
