"""Pixel-input packages against their float-input twins: the same networks, side by side in one run.

The shipped packages take RGB uint8 pixels and normalise them in their graph. This script re-exports
them with float32 input (``livetag model repack --float-input`` into a temporary folder) and times,
alternating the two on the same inputs, ``detect`` on 1080p frames and ``embed`` on garment-sized
crops (pre-processing and the model together, wall time) and ``pre_process`` alone (CPU of the
calling thread). Median of ``--repeats`` runs. Needs torch (the train extra) for the re-export.

Usage::

    python benchmarks/pixel_input.py --repeats 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engines import load_detector, load_embedder  # noqa: E402
from training.commands.repack_package import repack  # noqa: E402

CLIP = REPO / "tests" / "data" / "car-detection-14s.mp4"


def real_frames(count: int) -> list[np.ndarray]:
    """The clip's first ``count`` frames upscaled to 1920x1080 RGB."""
    import av
    import cv2

    out = []
    with av.open(str(CLIP)) as container:
        for frame in container.decode(video=0):
            out.append(cv2.resize(frame.to_ndarray(format="rgb24"), (1920, 1080), interpolation=cv2.INTER_CUBIC))
            if len(out) == count:
                break
    return out


def _median_ms(fn: Callable[[], Any], clock: Callable[[], float], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return round(statistics.median(times) * 1000.0, 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detector", type=Path, default=REPO / "models" / "detector")
    parser.add_argument("--embedder", type=Path, default=REPO / "models" / "embedder")
    parser.add_argument("--frames", type=int, default=8, help="1080p frames per detect call")
    parser.add_argument("--crops", type=int, default=16, help="crops per embed call")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    frames = real_frames(args.frames)
    boxes = ((700, 200, 1150, 900), (1300, 350, 1600, 800))
    crops = [np.ascontiguousarray(frames[i % len(frames)][y1:y2, x1:x2])
             for i, (x1, y1, x2, y2) in ((i, boxes[i % 2]) for i in range(args.crops))]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        packages = {"pixels": (args.detector, args.embedder),
                    "float": (Path(tmp) / "detector", Path(tmp) / "embedder")}
        repack(args.detector, packages["float"][0], pixel_input=False)
        repack(args.embedder, packages["float"][1], pixel_input=False)
        engines = {way: (load_detector(det), load_embedder(emb)) for way, (det, emb) in packages.items()}
        for way, (detector, _) in engines.items():
            if detector.spec.input.takes_pixels != (way == "pixels"):
                parser.error(f"--detector must be a pixel-input package (livetag model repack makes one); {way} is not")
        calls = {"detect_wall_ms": ("detect", frames), "embed_wall_ms": ("embed", crops)}
        for name, (method, inputs) in calls.items():
            runs: dict[str, list[float]] = {way: [] for way in engines}
            for _ in range(args.repeats):  # alternate, so drift on a shared machine hits both alike
                for way, pair in engines.items():
                    engine = pair[0] if method == "detect" else pair[1]
                    runs[way].append(_median_ms(partial(getattr(engine, method), inputs), time.perf_counter, 1))
            results[name] = {way: statistics.median(v) for way, v in runs.items()}
        for way, (detector, embedder) in engines.items():
            results.setdefault("detector_pre_cpu_ms", {})[way] = _median_ms(partial(detector.pre_process, frames), time.thread_time, args.repeats)
            results.setdefault("embedder_pre_cpu_ms", {})[way] = _median_ms(partial(embedder.pre_process, crops), time.thread_time, args.repeats)
    print(f"{args.frames} 1080p frames per detect, {args.crops} crops per embed; median of {args.repeats}")
    for name, by_way in results.items():
        ratio = by_way["pixels"] / by_way["float"] if by_way["float"] else float("nan")
        print(f"{name:<22} float {by_way['float']:>8.2f}  pixels {by_way['pixels']:>8.2f}  pixels/float {ratio:.3f}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
