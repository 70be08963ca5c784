"""One accelerator's capacity: keyframe decode (NVDEC), the torch engines at batch 1-256, live streams.

Three parts, each with its own time cap, so the whole run fits a short GPU session (default budget
420 s):

1. decode: keyframes/s of a synthetic 1080p H.264 clip (every frame an IDR), each packet decoded on
   its own as the stage does: the software decoder (one thread, FFmpeg's auto threads, no
   deblocking, ``--decode-workers`` streams on as many threads) and NVDEC through the FFmpeg inside
   PyAV (``h264_cuvid``; the native ``h264`` decoder with CUDA hwaccel, frames downloaded to RGB or
   left on the device, or turned into the detector's input on the device by torch from the frame's
   NV12 planes: ``gpu_decode.py``), one stream and ``--decode-workers`` streams; a variant that
   cannot run says why.
2. engines: the shipped detector (frames/s, on pre-letterboxed tensors: the model alone) and embedder
   (crops/s) through the torch backend, at each ``--batches`` size: FP16 and CUDA graphs on CUDA;
   and, on CUDA, the FP16 detector's boxes against float32's on the clip's frames.
3. streams: N live streams each sending one keyframe per second (phases spread over the second) into
   the real inference stage (decode, detect, embed, gallery search, vote), fed in batches of what is
   queued, the newest frame of a stream winning when it is behind; p50/p99 frame-to-result. N doubles
   from ``--streams-start`` while p99 <= ``--p99-target`` (1.5 s) and the cap allows; the largest
   passing N is the figure.

    python benchmarks/gpu_streams.py --device cuda --json gpu.json           # on a GPU (under 8 min)
    python benchmarks/gpu_streams.py --device cpu --tiny                      # CI smoke size (~1 min)

Prints one JSON document (also to ``--json``). Figures go in docs/benchmarks.md with device and date.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from prometheus_client import CollectorRegistry
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from consumers.bus import Record  # noqa: E402
from consumers.observability import PipelineMetrics  # noqa: E402
from consumers.services.demo import DEFAULT_SAMPLE, find_sample  # noqa: E402
from consumers.settings import Settings  # noqa: E402
from consumers.stage.builder import build_stage, quiet_library_logs  # noqa: E402
from consumers.stage.gallery_builder import build_gallery, find_shop_images, to_index  # noqa: E402
from consumers.stage.model_loading import DEFAULT_MODELS_DIR  # noqa: E402
from engines import load_detector, load_embedder  # noqa: E402
from stream.clock import SystemClock  # noqa: E402
from stream.decode import PacketDecoder  # noqa: E402
from stream.encode import write_video  # noqa: E402
from stream.frames import iter_frame_packets  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from gpu_decode import bench_decode, rate  # noqa: E402


def _compare(full: list[Any], half: list[Any]) -> dict[str, Any]:
    """Boxes above the threshold in each list of detections, the largest score difference and the
    smallest IoU of paired boxes (same rank)."""
    from engines.preprocess import iou_matrix

    diffs, ious = [], []
    for a, b in zip(full, half, strict=True):
        n = min(len(a.scores), len(b.scores))
        if n:
            diffs.append(float(np.abs(a.scores[:n] - b.scores[:n]).max()))
            ious.append(float(np.diag(iou_matrix(a.boxes[:n], b.boxes[:n])).min()))
    return {"boxes_fp32_fp16": [sum(len(a.scores) for a in full), sum(len(b.scores) for b in half)],
            "max_score_diff": round(max(diffs, default=0.0), 4), "min_box_iou": round(min(ious, default=1.0), 4)}


def fp16_parity(args: argparse.Namespace, frames: list[np.ndarray]) -> dict[str, Any]:
    """Detections of the FP16 detector against float32 on the same frames: torch (FP16 and CUDA
    graphs) and, where TensorRT is installed, an FP16 engine against an FP32 one (TensorRT picks
    each layer's precision itself, so the in-graph top-K rank must be checked there too)."""
    from engines import backends_available

    p = Settings().pipeline
    common = {"max_batch": len(frames), "score_threshold": p.detection_threshold, "iou_threshold": p.nms_iou}
    torch_engines = [load_detector(args.detector, backend="torch", device=args.device, fp16=half, cuda_graphs=half,
                                   **common) for half in (False, True)]
    out: dict[str, Any] = {"frames": len(frames), "torch": _compare(*(e.detect(frames) for e in torch_engines))}
    if "tensorrt" not in backends_available():
        out["tensorrt"] = {"unavailable": "TensorRT is not installed"}
        return out
    try:
        trt_engines = [load_detector(args.detector, backend="tensorrt", precision=precision, **common)
                       for precision in ("fp32", "fp16")]
        out["tensorrt"] = _compare(*(e.detect(frames) for e in trt_engines))
    except Exception as exc:  # noqa: BLE001 - the torch figures still print
        out["tensorrt"] = {"unavailable": f"{type(exc).__name__}: {exc}"[:200]}
    return out


def bench_engines(args: argparse.Namespace, rng: np.random.Generator, cap_s: float) -> dict[str, Any]:
    """Detector frames/s (model alone) and embedder crops/s at each batch size."""
    on_gpu = args.device.startswith("cuda")
    out: dict[str, Any] = {"fp16": on_gpu, "cuda_graphs": on_gpu}
    for role, loader in (("detector", load_detector), ("embedder", load_embedder)):
        for batch in args.batches:
            opts = {"device": args.device, "fp16": on_gpu, "cuda_graphs": on_gpu, "max_batch": batch,
                    "buckets": (batch,)}
            try:
                engine = loader(Path(getattr(args, role)), backend="torch", **opts)
                inp = engine.spec.input
                shape = (batch, *inp.shape[1:])  # (B, 3, H, W) float32, or (B, H, W, 3) uint8 pixels
                tensor = (rng.integers(0, 256, size=shape, dtype=np.uint8) if inp.takes_pixels
                          else rng.random(shape, dtype=np.float32))
                per_s = rate(lambda e=engine, t=tensor: e.forward(t), batch, cap_s)
                out[f"{role}_batch{batch}_per_s"] = round(per_s, 1)
            except Exception as exc:  # noqa: BLE001
                out[f"{role}_batch{batch}"] = {"unavailable": f"{type(exc).__name__}: {exc}"[:200]}
    return out


class LiveFeed:
    """N streams each publishing one keyframe record per ``period_s``; a bounded per-stream mailbox.

    The mailbox holds the newest frame of each stream: a newer frame replaces one still waiting
    (counted in ``replaced``), so a consumer that falls behind analyses fresh frames.
    """

    def __init__(self, packets: list[Any], streams: int, period_s: float, clock: SystemClock):
        self.packets, self.streams, self.period_s, self.clock = packets, streams, period_s, clock
        self.mailbox: OrderedDict[str, Record] = OrderedDict()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.replaced = 0
        self.published = 0

    def run(self) -> None:
        start = self.clock.monotonic()
        tick = 0
        while not self.stop.is_set():
            for k in range(self.streams):
                due = start + tick * self.period_s + k * self.period_s / self.streams
                wait = due - self.clock.monotonic()
                if wait > 0 and self.stop.wait(wait):
                    return
                source = self.packets[(tick + k) % len(self.packets)]
                packet = dataclasses.replace(source, stream_id=f"live{k:05d}", wallclock=self.clock.now(),
                                             sequence=tick, pts=tick * int(round(1 / float(source.time_base))))
                key, value, headers = packet.to_record()
                record = Record("frames", key, value, headers, partition=0, offset=self.published)
                with self.lock:
                    self.replaced += int(packet.stream_id in self.mailbox)
                    self.mailbox[packet.stream_id] = record
                    self.mailbox.move_to_end(packet.stream_id)
                self.published += 1
            tick += 1

    def take(self, limit: int) -> list[Record]:
        with self.lock:
            out: list[Record] = []
            while self.mailbox and len(out) < limit:
                out.append(self.mailbox.popitem(last=False)[1])
            return out


def stage_seconds(metrics: PipelineMetrics) -> dict[str, float]:
    """Seconds the stage spent in each of its steps (decode, detect, embed, search, vote) so far."""
    out: dict[str, float] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name.endswith("stage_latency_seconds_sum"):
                out[sample.labels["stage"]] = sample.value
    return out


def run_streams(stage: Any, packets: list[Any], streams: int, seconds: float, max_batch: int,
                warmup_s: float, metrics: PipelineMetrics | None = None) -> dict[str, Any]:
    """Latency of ``streams`` live streams through ``stage`` for ``seconds`` (after ``warmup_s``);
    with ``metrics`` (the stage's), the milliseconds per analysed frame in each stage step."""
    clock = SystemClock()
    feed = LiveFeed(packets, streams, 1.0, clock)
    feeder = threading.Thread(target=feed.run, daemon=True)
    latencies: list[float] = []
    start = clock.monotonic()
    before: dict[str, float] | None = None
    feeder.start()
    try:
        while clock.monotonic() - start < warmup_s + seconds:
            batch = feed.take(max_batch)
            if not batch:
                time.sleep(0.002)
                continue
            if before is None and metrics is not None and clock.monotonic() - start >= warmup_s:
                before = stage_seconds(metrics)
            stage.process(batch)
            done = clock.now()
            if clock.monotonic() - start >= warmup_s:
                latencies += [done - float(dict(r.headers)["wallclock"]) for r in batch]
    finally:
        feed.stop.set()
        feeder.join()
    if not latencies:
        return {"streams": streams, "frames": 0}
    lat = np.sort(np.asarray(latencies))
    result = {"streams": streams, "frames": len(lat), "analysed_per_s": round(len(lat) / seconds, 1),
              "p50_s": round(float(np.percentile(lat, 50)), 3), "p99_s": round(float(np.percentile(lat, 99)), 3),
              "replaced_by_newer": feed.replaced}
    if metrics is not None and before is not None:
        after = stage_seconds(metrics)
        result["stage_ms_per_frame"] = {k: round(1000 * (v - before.get(k, 0.0)) / len(lat), 2)
                                        for k, v in after.items()}
    return result


def bench_streams(args: argparse.Namespace, packets: list[Any], cap_s: float) -> dict[str, Any]:
    """The largest N (doubling) whose p99 frame-to-result stays within ``--p99-target``."""
    on_gpu = args.device.startswith("cuda")
    settings = Settings().with_overrides(pipeline__decode_workers=args.decode_workers)
    p = settings.pipeline
    opts = {"device": args.device, "fp16": on_gpu, "cuda_graphs": on_gpu, "max_batch": args.stream_batch}
    detector = load_detector(args.detector, backend="torch", score_threshold=p.detection_threshold,
                             iou_threshold=p.nms_iou, **opts)
    embedder = load_embedder(args.embedder, backend="torch", **opts)
    sample = find_sample(args.sample)
    gallery = to_index(build_gallery(find_shop_images(sample.images, sample.annotations), detector, embedder,
                                     progress=False))
    runs: list[dict[str, Any]] = []
    streams, start = args.streams_start, time.perf_counter()
    bar = tqdm(desc="streams", unit="run", disable=args.quiet)
    while time.perf_counter() - start + args.stream_seconds + args.warmup_s <= cap_s:
        metrics = PipelineMetrics(CollectorRegistry())
        stage = build_stage(detector, embedder, gallery, settings, SystemClock(), metrics=metrics)
        try:
            run = run_streams(stage, packets, streams, args.stream_seconds, args.stream_batch, args.warmup_s,
                              metrics)
        finally:
            stage.close()
        runs.append(run)
        bar.update()
        bar.set_postfix(streams=streams, p99=run.get("p99_s"))
        if run.get("p99_s") is None or run["p99_s"] > args.p99_target or streams >= args.streams_max:
            break
        streams *= 2
    bar.close()
    passing = [r["streams"] for r in runs if r.get("p99_s") is not None and r["p99_s"] <= args.p99_target]
    return {"decode_workers": args.decode_workers, "p99_target_s": args.p99_target,
            "max_streams_within_target": max(passing) if passing else 0, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--detector", type=Path, default=DEFAULT_MODELS_DIR / "detector")
    parser.add_argument("--embedder", type=Path, default=DEFAULT_MODELS_DIR / "embedder")
    parser.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE, help="shop images for the gallery, videos for the clip")
    parser.add_argument("--size", default="1920x1080", help="clip size WxH")
    parser.add_argument("--batches", default="1,8,32,64,128,256", help="engine batch sizes")
    parser.add_argument("--stream-batch", type=int, default=64, help="largest batch the stream part feeds the stage")
    parser.add_argument("--streams-start", type=int, default=32)
    parser.add_argument("--streams-max", type=int, default=4096)
    parser.add_argument("--stream-seconds", type=float, default=20.0, help="measured seconds per stream count")
    parser.add_argument("--warmup-s", type=float, default=5.0)
    parser.add_argument("--decode-workers", type=int, default=min(os.cpu_count() or 1, 64),
                        help="pipeline.decode_workers of the stream part, and streams decoded at once in the decode part")
    parser.add_argument("--p99-target", type=float, default=1.5)
    parser.add_argument("--budget-s", type=float, default=420.0, help="whole run; parts get 15 / 35 / 50 %%")
    parser.add_argument("--tiny", action="store_true", help="CI smoke size: 320x180, batches 1,2, 2-4 streams")
    parser.add_argument("--parts", default="decode,engines,streams", help="which parts to run (comma-separated)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.tiny:
        args.size, args.batches, args.stream_batch = "320x180", "1,2", 4
        args.streams_start, args.streams_max, args.stream_seconds, args.warmup_s = 2, 4, 2.0, 1.0
        args.budget_s = min(args.budget_s, 24.0)
    args.batches = [int(b) for b in str(args.batches).split(",")]
    width, height = (int(v) for v in args.size.lower().split("x"))
    quiet_library_logs()
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    sample = find_sample(args.sample)
    decoder = PacketDecoder()
    pictures = [decoder.decode(p) for v in sample.videos[:2] for p in iter_frame_packets(v.stem, v, "keyframes")]
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        # every frame an IDR (gop 1), scaled to the benchmark's size
        write_video(clip, (cv2.resize(p, (width, height)) for p in pictures[:16]), fps=25, gop=1)
        packets = list(iter_frame_packets("clip", clip, "keyframes"))
    result: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "device": _device_name(args.device), "size": f"{width}x{height}", "keyframes_in_clip": len(packets),
    }
    parts = set(args.parts.split(","))
    if "decode" in parts:
        result["decode"] = bench_decode(packets, 0.15 * args.budget_s / 10, args.decode_workers)
    if "engines" in parts:
        result["engines"] = bench_engines(args, rng, 0.35 * args.budget_s / (2 * len(args.batches)))
        if args.device.startswith("cuda"):
            frames = [PacketDecoder().decode(p) for p in packets]
            try:
                result["engines"]["fp16_parity"] = fp16_parity(args, frames)
            except Exception as exc:  # noqa: BLE001
                result["engines"]["fp16_parity"] = {"unavailable": f"{type(exc).__name__}: {exc}"[:200]}
    if "streams" in parts:
        try:
            result["streams"] = bench_streams(args, packets, 0.5 * args.budget_s)
        except Exception as exc:  # noqa: BLE001 - the decode and engine figures above still print
            result["streams"] = {"unavailable": f"{type(exc).__name__}: {exc}"[:300]}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return str(torch.cuda.get_device_name(torch.device(device)))
    import platform

    return f"CPU ({platform.processor() or platform.machine()})"


if __name__ == "__main__":
    sys.exit(main())
