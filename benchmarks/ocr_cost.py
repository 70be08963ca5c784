"""CPU cost of on-screen text reading (rapidocr, PP-OCR on ONNX Runtime) per frame and per stream.

Reads real frames of the shipped sample (and the same frames scaled to 720x1280 and 1080x1920) with
:class:`consumers.text.ocr.RapidOcrReader`, ``--repeats`` times each, and prints the median seconds
per frame, the CPU seconds per frame (process time, all threads) and the share of one core a stream
costs at the default cadence (``text.ocr_interval_s``: one frame every 5 stream seconds).

Usage::

    python benchmarks/ocr_cost.py [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from consumers.settings.text import TextSettings  # noqa: E402
from consumers.text.ocr import RapidOcrReader  # noqa: E402


def sample_frame() -> np.ndarray:
    """A mid-stream keyframe of the shipped demo sample, RGB (H, W, 3) uint8."""
    import av

    video = sorted((REPO / "samples" / "demo" / "video").glob("*.mp4"))[0]
    with av.open(str(video)) as container:
        frames = [f.to_ndarray(format="rgb24") for i, f in zip(range(30), container.decode(video=0), strict=False)]
    return frames[len(frames) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="cv2 threads (0: OpenCV's default)")
    args = parser.parse_args(argv)
    if args.threads:
        cv2.setNumThreads(args.threads)
    reader = RapidOcrReader()
    base = sample_frame()
    interval = TextSettings().ocr_interval_s
    reader(base)  # warm-up: ONNX Runtime sessions
    print(f"cadence: one frame every {interval:g} stream seconds per stream (text.ocr_interval_s)")
    for height, width in ((base.shape[0], base.shape[1]), (1280, 720), (1920, 1080)):
        frame = cv2.resize(base, (width, height), interpolation=cv2.INTER_LINEAR)
        walls, cpus, lines = [], [], 0
        for _ in range(args.repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            lines = len(reader(frame))
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        wall_s, cpu_s = statistics.median(walls), statistics.median(cpus)
        print(f"{width}x{height}: {wall_s * 1000:.0f} ms wall, {cpu_s * 1000:.0f} ms CPU per frame ({lines} lines); "
              f"one stream = {cpu_s / interval:.1%} of a core, {interval / cpu_s:.0f} streams per core")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
