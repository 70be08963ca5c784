"""Frames per second of one machine's cores under different process layouts, side by side.

A layout ``PxT`` runs P inference processes at once, each with ONNX Runtime at T threads per
operator (``models.intra_op_threads``), and splits the streams between them: ``1x2`` is one process
using both cores of a 2-core machine, ``2x1`` one process per core. ``PxT/W`` also gives each
process W model workers (``batch.model_workers``): ``1x1/2`` is one process running two batches at
once, one thread each. Every process runs the embedded
pipeline (read -> bus -> decode -> detect -> embed -> search -> vote -> sink) at full speed over its
copies of the demo sample, from a common start time after the models are loaded. The figure is all
processes' frames divided by the time until the last one finishes. Layouts alternate within each
repeat; the median of the repeats and the median of the paired ratios against the first layout are
printed.

    python benchmarks/process_layout.py [--layouts 1x2,2x1] [--streams 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Seconds allowed for the workers to load the models and build the gallery before the common start.
START_DELAY_S = 30.0


def parse_layout(text: str) -> tuple[int, int, int]:
    """``"2x1"`` -> (2 processes, 1 thread each, 1 model worker); ``"1x1/2"`` -> (1, 1, 2).

    Raises:
        ValueError: not ``PxT`` or ``PxT/W`` with positive integers.
    """
    head, slash, workers = text.lower().partition("/")
    parts = [*head.split("x"), workers if slash else "1"]
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"a layout is PROCESSESxTHREADS[/WORKERS] such as 2x1 or 1x1/2, got {text!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])


def layout_name(layout: tuple[int, int, int]) -> str:
    """(1, 1, 2) -> ``"1x1/2"``; (2, 1, 1) -> ``"2x1"``."""
    processes, threads, workers = layout
    return f"{processes}x{threads}" + (f"/{workers}" if workers > 1 else "")


def worker(threads: int, workers: int, streams: int, start_at: float, runs: int) -> dict[str, float]:
    """One process of a layout: load, wait for the common start, replay ``runs`` times."""
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "benchmarks"))
    from pipeline_vs_engine import whole_pipeline

    from consumers.services.demo import DEFAULT_SAMPLE, find_sample
    from consumers.settings import BatchSettings, ModelSettings, Settings
    from consumers.stage.builder import build_stage, quiet_library_logs
    from consumers.stage.gallery_builder import build_gallery, find_shop_images, to_index
    from consumers.stage.model_loading import load_models
    from stream.clock import SystemClock

    quiet_library_logs()
    settings = Settings().with_overrides(batch=BatchSettings(max_batch=8, max_wait_ms=20.0, model_workers=workers),
                                         models=ModelSettings(intra_op_threads=threads))
    p = settings.pipeline
    detector, embedder = load_models(settings.models, p.detection_threshold, p.nms_iou)
    sample = find_sample(DEFAULT_SAMPLE)
    gallery = to_index(build_gallery(find_shop_images(sample.images, sample.annotations), detector, embedder,
                                     progress=False))
    late = time.time() - start_at
    time.sleep(max(0.0, -late))
    frames = 0
    started = time.perf_counter()
    for _ in range(runs):
        frames += whole_pipeline(sample.videos, streams, lambda: build_stage(detector, embedder, gallery, settings,
                                                                            SystemClock()), settings, "keyframes")[1]
    return {"frames": frames, "seconds": time.perf_counter() - started, "late_s": max(0.0, late)}


def run_layout(processes: int, threads: int, workers: int, streams: int, runs: int,
               start_delay_s: float = START_DELAY_S) -> tuple[float, int]:
    """Frames per second of all ``processes`` together (streams split as evenly as they go), and the
    frames they analysed."""
    start_at = time.time() + start_delay_s
    shares = [streams // processes + (1 if k < streams % processes else 0) for k in range(processes)]
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", "--threads", str(threads),
                               "--model-workers", str(workers), "--streams", str(n),
                               "--start-at", repr(start_at), "--runs", str(runs)], stdout=subprocess.PIPE, text=True)
             for n in shares]
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"a process of {layout_name((processes, threads, workers))} failed (exit {proc.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    if any(r["late_s"] > 0 for r in results):
        print(f"warning: a process of {layout_name((processes, threads, workers))} started "
              f"{max(r['late_s'] for r in results):.1f} s late",
              file=sys.stderr)
    frames = sum(int(r["frames"]) for r in results)
    return frames / max(r["seconds"] for r in results), frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layouts", default="1x2,2x1", help="comma list of PROCESSESxTHREADS")
    parser.add_argument("--streams", type=int, default=16, help="copies of the demo sample, split between processes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs", type=int, default=2, help="replays of the streams per process and repeat")
    parser.add_argument("--start-delay-s", type=float, default=START_DELAY_S,
                        help="seconds for the workers to load before the common start")
    parser.add_argument("--json", type=Path, default=None, help="also write the runs here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--model-workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.threads, args.model_workers, args.streams, args.start_at, args.runs)))
        return 0
    try:
        layouts = [parse_layout(x) for x in args.layouts.split(",")]
    except ValueError as exc:
        parser.error(str(exc))
    if any(layout[0] > args.streams for layout in layouts):
        parser.error("every process needs at least one stream: --streams must be >= the largest process count")
    fps: dict[tuple[int, int, int], list[float]] = {layout: [] for layout in layouts}
    frames: dict[tuple[int, int, int], list[int]] = {layout: [] for layout in layouts}
    for repeat in range(args.repeats):
        order = layouts if repeat % 2 == 0 else layouts[::-1]
        for layout in order:
            rate, analysed = run_layout(*layout, args.streams, args.runs, args.start_delay_s)
            fps[layout].append(rate)
            frames[layout].append(analysed)
    first = layouts[0]
    print(f"{args.streams} streams of the demo sample, {args.runs} replays per repeat, {args.repeats} repeats")
    for layout, runs in fps.items():
        paired = statistics.median(a / b for a, b in zip(runs, fps[first], strict=True))
        print(f"{layout_name(layout)}: {statistics.median(runs):.1f} frames/s {[round(r, 1) for r in runs]}; "
              f"paired against {layout_name(first)}: {paired:.2f}")
    if args.json is not None:
        args.json.write_text(json.dumps([{"layout": layout_name(layout), "frames_per_s": fps[layout],
                                          "frames": frames[layout]} for layout in layouts], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
