"""Whole-pipeline throughput against the raw batched engines, on the same frames, in one run.

raw:      pre-decoded keyframes -> detector (batches of --max-batch) -> person mask of each frame with
          several boxes (the presentation prior's person term, with --person-cue) -> crops ->
          embedder; frames/s
pipeline: the same videos as --streams concurrent streams through the embedded pipeline at full speed
          (read -> bus -> decode -> detect -> embed -> gallery search -> vote -> bus -> sink); frames/s

The ratio pipeline / raw says how much the pipeline around the models costs (target >= 0.85). The
result is printed and appended to docs/benchmarks.md with the date, machine and command.

    python benchmarks/pipeline_vs_engine.py [--sample samples/demo] [--streams 6] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from consumers.services.demo import DEFAULT_SAMPLE, find_sample  # noqa: E402
from consumers.services.embedded import SourceSpec  # noqa: E402
from consumers.services.replay import replay  # noqa: E402
from consumers.settings import (  # noqa: E402
    BatchSettings,
    ModelSettings,
    PipelineSettings,
    Settings,
)
from consumers.stage.builder import build_stage, quiet_library_logs  # noqa: E402
from consumers.stage.gallery_builder import build_gallery, find_shop_images, to_index  # noqa: E402
from consumers.stage.model_loading import DEFAULT_MODELS_DIR, load_models  # noqa: E402
from engines.person_segmenter import PersonSegmenter  # noqa: E402
from stream.clock import SystemClock  # noqa: E402
from stream.decode import PacketDecoder  # noqa: E402
from stream.frames import iter_frame_packets  # noqa: E402


def decoded_keyframes(videos: list[Path], sampling: str) -> list[np.ndarray]:
    """Every sampled frame of ``videos`` as RGB uint8 (H, W, 3)."""
    decoder = PacketDecoder()
    return [decoder.decode(p) for v in videos for p in iter_frame_packets(v.stem, v, sampling)]


def raw_engines(frames: list[np.ndarray], detector: Any, embedder: Any, pipeline: PipelineSettings,
                max_batch: int, person: Any = None) -> tuple[float, int]:
    """Seconds to detect + crop + embed ``frames`` in batches (the stage's crop selection, with the
    person masks of ``person`` where a frame has several boxes); crops made."""
    from consumers.stage.frame_analysis import sold_boxes
    from consumers.stage.presentation_prior import frame_presentation
    from consumers.stage.sold_scale import scaled_sold
    from engines.preprocess import crop

    crops_made = 0
    start = time.perf_counter()
    for i in range(0, len(frames), max_batch):
        batch = frames[i : i + max_batch]
        crops = []
        for frame, dets in zip(batch, detector.detect(batch), strict=True):
            placed = frame_presentation(frame, dets.boxes, None if person is None else person.coverage)
            keep = sold_boxes(scaled_sold(dets.sold, pipeline.sold_scale), placed, pipeline)
            crops += [crop(frame, dets.boxes[d], pipeline.crop_expand) for d in keep]
        if crops:
            embedder.embed(crops)
        crops_made += len(crops)
    return time.perf_counter() - start, crops_made


def raw_engines_parallel(frames: list[np.ndarray], detector: Any, embedder: Any, pipeline: PipelineSettings,
                         max_batch: int, workers: int, person: Any = None) -> tuple[float, int]:
    """:func:`raw_engines` with the batches dealt round-robin to ``workers`` threads at once (the
    raw side of ``batch.model_workers``); seconds until the last finishes, crops made."""
    if workers <= 1:
        return raw_engines(frames, detector, embedder, pipeline, max_batch, person)
    from concurrent.futures import ThreadPoolExecutor

    batches = [frames[i : i + max_batch] for i in range(0, len(frames), max_batch)]
    shares = [[f for b in batches[k::workers] for f in b] for k in range(workers)]
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        crops = sum(c for _, c in pool.map(lambda share: raw_engines(share, detector, embedder, pipeline, max_batch,
                                                                         person), shares))
    return time.perf_counter() - start, crops


def whole_pipeline(videos: list[Path], streams: int, stage_factory: Any, settings: Settings,
                   sampling: str, decoupled: bool = True) -> tuple[float, int]:
    """Seconds for ``streams`` concurrent replays at max speed; frames consumed."""
    specs = [SourceSpec(f"s{k}-{v.stem}", str(v)) for k in range(streams) for v in videos]
    run_settings = settings.with_overrides(replay__speed="max", replay__sampling=sampling,
                                           replay__max_concurrent_sources=len(specs), replay__decoupled=decoupled)
    stage = stage_factory()
    start = time.perf_counter()
    try:
        report = replay(stage, specs, run_settings, lambda e, pts: None, progress=False)
        return time.perf_counter() - start, report.frames_consumed
    finally:
        stage.close()  # an OCR worker must not read on into the next timed run


def paired_ratio(raw_runs: list[float], pipe_runs: list[float]) -> float:
    """Median over the rounds of pipeline / raw frames/s within each round: the two sides of a round
    ran back to back, so a slow spell of a shared machine divides out of that round's ratio."""
    if len(raw_runs) != len(pipe_runs) or not raw_runs:
        raise ValueError(f"one raw and one pipeline run per round, got {len(raw_runs)} and {len(pipe_runs)}")
    return statistics.median(pipe / raw for raw, pipe in zip(raw_runs, pipe_runs, strict=True))


SECTION = "## Pipeline vs raw engines (benchmarks/pipeline_vs_engine.py)"
TABLE_HEAD = [
    "| date (UTC) | machine | models | frames | batch | raw frames/s | pipeline frames/s | ratio (paired) | command |",
    "|---|---|---|---|---|---|---|---|---|",
]


def append_markdown(path: Path, row: dict[str, Any], command: str) -> None:
    """Add this run as the last row of this script's table in ``path`` (section created when missing),
    leaving the other sections of the file where they are."""
    line = (
        f"| {row['date']} | {row['machine']} | {row['models']} | {row['frames']} | {row['batch']} | "
        f"{row['raw_fps']:.1f} | {row['pipeline_fps']:.1f} | {row['ratio']:.2f} (paired {row['paired_ratio']:.2f}) | "
        f"`{command}` |"
    )
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else ["# Benchmarks"]
    if SECTION not in lines:
        lines += ["", SECTION, "", *TABLE_HEAD]
    at = lines.index(SECTION) + 1
    while at < len(lines) and not lines[at].startswith("|"):
        if lines[at].startswith("## "):
            lines[at:at] = [*TABLE_HEAD, ""]
            break
        at += 1
    if at == len(lines):
        lines += TABLE_HEAD
    while at < len(lines) and lines[at].startswith("|"):
        at += 1
    lines.insert(at, line)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE, help="sample folder (image/ + video/)")
    parser.add_argument("--detector", type=Path, default=DEFAULT_MODELS_DIR / "detector")
    parser.add_argument("--embedder", type=Path, default=DEFAULT_MODELS_DIR / "embedder")
    parser.add_argument("--streams", type=int, default=4, help="copies of each video replayed at once")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--sampling", default="keyframes", help="keyframes (default) or fps:N")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side; the median is reported")
    parser.add_argument("--single-thread", action="store_true", help="decode and infer on one thread")
    parser.add_argument("--ocr", choices=("off", "inline", "background"), default="off",
                        help="text.ocr_mode of the pipeline side (on-screen text read every text.ocr_interval_s)")
    parser.add_argument("--motion-window-s", type=float, default=PipelineSettings.motion_window_s,
                        help="pipeline.motion_window_s of the pipeline side (0: the motion cue off)")
    parser.add_argument("--decode-workers", type=int, default=PipelineSettings.decode_workers,
                        help="pipeline.decode_workers of the pipeline side (threads decoding a batch's streams)")
    parser.add_argument("--scale-in-decoder", action="store_true",
                        help="pipeline.scale_in_decoder of the pipeline side (the detector's input made on the decode thread)")
    parser.add_argument("--model-workers", type=int, default=1,
                        help="batches in the models at once on both sides (batch.model_workers; raw: threads)")
    parser.add_argument("--intra-op-threads", type=int, default=0,
                        help="ONNX Runtime threads per operator on both sides (0: its own choice)")
    parser.add_argument("--person-cue", action="store_true",
                        help="pipeline.person_cue on both sides (person masks of frames with several boxes)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--no-append", action="store_true", help="print only")
    args = parser.parse_args(argv)
    quiet_library_logs()

    sample = find_sample(args.sample)
    settings = Settings().with_overrides(batch=BatchSettings(max_batch=args.max_batch, max_wait_ms=20.0,
                                                             model_workers=args.model_workers),
                                         models=ModelSettings(str(args.detector), str(args.embedder),
                                                              intra_op_threads=args.intra_op_threads),
                                         text__ocr_mode=args.ocr, pipeline__motion_window_s=args.motion_window_s,
                                         pipeline__decode_workers=args.decode_workers,
                                         pipeline__scale_in_decoder=args.scale_in_decoder,
                                         pipeline__person_cue=args.person_cue)
    p = settings.pipeline
    detector, embedder = load_models(settings.models, p.detection_threshold, p.nms_iou)
    gallery = to_index(build_gallery(find_shop_images(sample.images, sample.annotations), detector, embedder,
                                     progress=False))
    clock = SystemClock()
    person = PersonSegmenter(settings.models.person_dir) if args.person_cue else None
    frames = decoded_keyframes(sample.videos, args.sampling) * args.streams
    raw_embeddings = raw_engines(frames[: args.max_batch], detector, embedder, p, args.max_batch, person)  # warm-up
    raw_runs, pipe_runs = [], []
    crops = raw_embeddings[1]

    def run_raw() -> None:
        nonlocal crops
        seconds, crops = raw_engines_parallel(frames, detector, embedder, p, args.max_batch, args.model_workers, person)
        raw_runs.append(len(frames) / seconds)

    def run_pipeline() -> int:
        seconds, consumed = whole_pipeline(sample.videos, args.streams,
                                           lambda: build_stage(detector, embedder, gallery, settings, clock, person=person),
                                           settings, args.sampling, decoupled=not args.single_thread)
        pipe_runs.append(consumed / seconds)
        return consumed

    for round_no in range(args.repeats):
        # The order alternates, so a machine that slows or speeds up over the run favours neither side.
        if round_no % 2 == 0:
            run_raw()
            consumed = run_pipeline()
        else:
            consumed = run_pipeline()
            run_raw()
        if consumed != len(frames):
            print(f"pipeline consumed {consumed} frames, raw had {len(frames)}", file=sys.stderr)
            return 1
    raw_fps, pipe_fps = statistics.median(raw_runs), statistics.median(pipe_runs)
    row = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "machine": f"{os.cpu_count()}-core CPU, {platform.machine()}, onnxruntime",
        "models": f"{detector.spec.label} + {embedder.spec.label}" + (f" + {person.label}" if person else ""),
        "frames": len(frames),
        "batch": args.max_batch,
        "raw_fps": raw_fps,
        "pipeline_fps": pipe_fps,
        "ratio": pipe_fps / raw_fps,
        "paired_ratio": paired_ratio(raw_runs, pipe_runs),
    }
    command = "python benchmarks/pipeline_vs_engine.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    print(f"frames {len(frames)} (crops {crops}); raw {raw_fps:.1f} frames/s {[round(r, 1) for r in raw_runs]}; "
          f"pipeline {pipe_fps:.1f} frames/s {[round(r, 1) for r in pipe_runs]}; ratio {row['ratio']:.2f} "
          f"(median of the rounds' own ratios {row['paired_ratio']:.2f})")
    if not args.no_append:
        append_markdown(args.out, row, command.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
