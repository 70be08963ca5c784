"""Frame-to-result latency of live streams on this machine: N streams at real-time speed, p50 / p99.

N copies of the demo sample (540x960 H.264, a keyframe a second) are replayed at their own pace
(``replay.speed = realtime``) through the embedded pipeline (in-process bus, the same stage and loop
as ``livetag infer``) with the shipped models. For every analysed frame the latency is the time
from its ingest wall clock (the packet's ``wallclock``) to the end of its inference batch. Frames
dropped by the live policies are counted, not timed.

Ways, side by side in one run:

* ``no shedding``: every frame is analysed however late (``pipeline.max_frame_age_s = 0``,
  ``newest_frame_wins = false``; replays and evaluation run like this);
* ``max age A s`` (``--max-ages``): the live policies: a frame older than the age is shed (before
  it is decoded, and again before the models), and of several frames of one stream in a batch only
  the newest is analysed. Under overload the consumer still reads in offset order, so the frames it
  analyses are about ``max age`` old: the age is what bounds the p99.

Usage::

    python benchmarks/live_latency.py --streams 16,64 --max-ages 0,3,1.2 [--sampling fps:4]

With ``--sampling fps:N`` each stream sends N frames a second, so a batch often holds several frames of
one stream and newest-frame-wins has work. With the default JPEG transport the replay's sources
decode every picture and encode the JPEGs in this process (ingest work that a deployment runs in its
ingest pods); ``fps:N,transport=chain`` forwards decode chains, which the consumer decodes.
"""

from __future__ import annotations

import argparse
import json
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
from consumers.settings import ModelSettings, Settings  # noqa: E402
from consumers.stage.builder import build_stage, quiet_library_logs  # noqa: E402
from consumers.stage.gallery_builder import build_gallery, find_shop_images, to_index  # noqa: E402
from consumers.stage.model_loading import DEFAULT_MODELS_DIR, load_models  # noqa: E402
from stream.clock import SystemClock  # noqa: E402


def ways(max_ages: list[float]) -> dict[str, dict[str, Any]]:
    """Settings overrides per way: no shedding (age 0), else the live policies with that age."""
    return {("no shedding" if age == 0 else f"max age {age:g} s"):
            {"pipeline__max_frame_age_s": age, "pipeline__newest_frame_wins": age > 0} for age in max_ages}


def run_way(streams: int, overrides: dict[str, Any], models: tuple[Any, Any], gallery: Any,
            video: Path, sampling: str = "keyframes") -> dict[str, Any]:
    """Replay ``streams`` copies of ``video`` at real-time speed, frames taken by ``sampling``
    (``keyframes`` or ``fps:N``), and time every analysed frame."""
    detector, embedder = models
    settings = Settings().with_overrides(replay__speed="realtime", replay__sampling=sampling,
                                         replay__max_concurrent_sources=streams,
                                         replay__max_in_flight=max(64, 4 * streams), **overrides)
    clock = SystemClock()
    stage = build_stage(detector, embedder, gallery, settings, clock)
    latencies: list[float] = []
    dropped: dict[str, int] = {}
    infer = stage.infer_frames

    def timed_infer(frames: Any) -> Any:
        out = infer(frames)
        done = clock.now()
        latencies.extend(done - f.packet.wallclock for f in frames if not f.shed)
        return out

    stage.infer_frames = timed_infer  # type: ignore[method-assign]
    stage.on_drop = lambda queue, reason, count: dropped.__setitem__(reason, dropped.get(reason, 0) + count)
    specs = [SourceSpec(f"s{k}", str(video)) for k in range(streams)]
    started = time.monotonic()
    report = replay(stage, specs, settings, lambda event, _pts: None, clock=clock, progress=False)
    elapsed = time.monotonic() - started
    lat = np.sort(np.asarray(latencies)) if latencies else np.zeros(1)
    return {"streams": streams, "frames_published": report.frames_published, "analysed": len(latencies),
            "dropped": dropped, "seconds": round(elapsed, 1),
            "p50_s": round(float(np.percentile(lat, 50)), 3), "p99_s": round(float(np.percentile(lat, 99)), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", default="16,64", help="stream counts, comma-separated")
    parser.add_argument("--max-ages", default="0,3,1.2", help="pipeline.max_frame_age_s of each way (0: no shedding)")
    parser.add_argument("--sampling", default="keyframes",
                        help="frames each stream sends: keyframes (one a second here) or fps:N")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    quiet_library_logs()
    sample = find_sample(DEFAULT_SAMPLE)
    settings = Settings()
    models = load_models(ModelSettings(str(DEFAULT_MODELS_DIR / "detector"), str(DEFAULT_MODELS_DIR / "embedder")),
                         settings.pipeline.detection_threshold, settings.pipeline.nms_iou)
    gallery = to_index(build_gallery(find_shop_images(sample.images, sample.annotations), *models, progress=False))
    results = []
    for streams in (int(n) for n in args.streams.split(",")):
        for way, overrides in ways([float(a) for a in args.max_ages.split(",")]).items():
            row = {"way": way, "sampling": args.sampling,
                   **run_way(streams, overrides, models, gallery, sample.videos[0], args.sampling)}
            results.append(row)
            print(f"{streams:>4} streams, {way:<13}: p50 {row['p50_s']:.2f} s, p99 {row['p99_s']:.2f} s, "
                  f"analysed {row['analysed']} of {row['frames_published']} frames, dropped {row['dropped']}",
                  flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
