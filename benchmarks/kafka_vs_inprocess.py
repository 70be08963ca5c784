"""Frames/s through the Kafka path and through the in-process path, on the same input, in one run.

Both paths read the same recorded files at full speed (keyframes), run the same inference stage
(detector -> embedder -> gallery search -> voter) with the same micro-batch settings and publish the
match events; the clock stops when every frame was processed and committed.

* in-process: ``consumers.services.replay.replay`` (reader threads -> InProcessBus ``frames`` -> stage -> ``matches``);
* Kafka: ``replay_to_kafka`` (the same reader threads -> broker ``frames``) while one
  ``InferenceConsumer`` (``livetag infer``'s loop) consumes, publishes to ``matches`` and commits.

Usage::

    python benchmarks/kafka_vs_inprocess.py --detector models/detector --embedder models/embedder \\
        [--streams 8 --seconds 20] [--bootstrap HOST:PORT] [--repeat 2] [--json out.json]

Without ``--bootstrap`` a local KRaft broker is started (jars fetched once with Maven). The input is
generated: ``--streams`` H.264 files showing still "products" (a keyframe every 0.5 s); the gallery is
built from their first frames, so every stream has an item to match.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from consumers.bus import TopicPartition  # noqa: E402
from consumers.bus.kafka import KafkaBus  # noqa: E402
from consumers.bus.topics import topic_specs  # noqa: E402
from consumers.messages.gallery_record import GalleryEntry  # noqa: E402
from consumers.services.embedded import SourceSpec  # noqa: E402
from consumers.services.gallery_follower import publish_gallery  # noqa: E402
from consumers.services.infer import InferenceConsumer, stage_from_gallery_topic  # noqa: E402
from consumers.services.replay import replay  # noqa: E402
from consumers.services.replay_to_kafka import ReplayFile, replay_to_kafka  # noqa: E402
from consumers.settings import BatchSettings, Settings, TopicSettings  # noqa: E402
from consumers.stage.builder import build_stage  # noqa: E402
from engines import load_detector, load_embedder  # noqa: E402
from engines.gallery import GalleryIndex  # noqa: E402
from engines.preprocess import crop  # noqa: E402
from stream.clock import SystemClock  # noqa: E402
from stream.encode import write_video  # noqa: E402


def make_inputs(folder: Path, streams: int, seconds: float) -> list[Path]:
    """``streams`` H.264 files, 10 fps, keyframe every 5 frames, each a still coloured-block 'product'."""
    paths = []
    for i in range(streams):
        rng = np.random.default_rng(1000 + i)
        image = np.full((256, 256, 3), 200, np.uint8)
        for _ in range(8):
            x, y = rng.integers(0, 200, 2)
            w, h = rng.integers(30, 90, 2)
            image[y : y + h, x : x + w] = rng.integers(0, 255, 3)
        path = folder / f"stream{i:02d}.mp4"
        write_video(path, (image for _ in range(int(seconds * 10))), fps=10, codec="h264", gop=5)
        paths.append(path)
    return paths


def gallery_entries(detector: Any, embedder: Any, paths: list[Path], settings: Settings) -> list[GalleryEntry]:
    """Entries from each file's first frame (item ``item-NN``, catalog ``bench``)."""
    import av

    out = []
    for i, path in enumerate(paths):
        with av.open(str(path)) as container:
            image = next(container.decode(video=0)).to_ndarray(format="rgb24")
        dets = detector.detect([image])[0]
        order = np.argsort(-dets.sold, kind="stable")[: settings.pipeline.max_detections_per_frame]
        crops = [crop(image, dets.boxes[j], settings.pipeline.crop_expand) for j in order.tolist()] or [image]
        vectors = embedder.embed(crops)
        out += [GalleryEntry(f"item-{i:02d}/{n}", f"item-{i:02d}", vectors[n], "bench") for n in range(len(crops))]
    return out


def run_inprocess(detector: Any, embedder: Any, entries: list[GalleryEntry], paths: list[Path], settings: Settings) -> dict[str, Any]:
    gallery = GalleryIndex(embedder.dim)
    gallery.add([e.image_id for e in entries], [e.item_id for e in entries], np.stack([e.vector for e in entries]),
                metadata=[{"catalog": e.catalog} for e in entries])
    clock = SystemClock()
    stage = build_stage(detector, embedder, gallery, settings, clock)  # the same builder as the Kafka side
    specs = [SourceSpec(p.stem, str(p), "bench") for p in paths]
    events: list[dict[str, Any]] = []
    start = time.perf_counter()
    report = replay(stage, specs, settings, lambda doc, *_: events.append(doc), clock=clock, progress=False)
    elapsed = time.perf_counter() - start
    return {"frames": report.frames_consumed, "seconds": round(elapsed, 3),
            "frames_per_s": round(report.frames_consumed / elapsed, 2), "events": len(events)}  # fmt: skip


def run_kafka(bus: KafkaBus, detector: Any, embedder: Any, entries: list[GalleryEntry], paths: list[Path], settings: Settings) -> dict[str, Any]:
    topics = settings.topics
    bus.create_topics(topic_specs(topics))
    producer = bus.producer()
    publish_gallery(producer, topics.name("gallery"), entries)
    stage, follower = stage_from_gallery_topic(bus, settings, detector, embedder)
    consumer = InferenceConsumer(bus, stage, settings, follower, group_id=f"bench-{uuid.uuid4().hex[:6]}")
    stop = threading.Event()
    done = threading.Event()
    counters: dict[str, Any] = {}
    ready = threading.Event()
    consumer_thread = threading.Thread(target=lambda: counters.update(vars(consumer.run(stop))), daemon=True)
    files = [ReplayFile(p.stem, str(p), "bench") for p in paths]
    total = {"frames": 0}

    def produce() -> None:
        ready.wait()
        total["frames"] = replay_to_kafka(producer, topics.name("frames"), files, speed="max", progress=False).total
        done.set()

    consumer_thread.start()
    deadline = time.monotonic() + 60
    while consumer.commit_stats.assigned < topics.partitions:  # timing starts once the group has formed
        if time.monotonic() > deadline:
            raise RuntimeError("the inference consumer got no partitions within 60 s")
        time.sleep(0.05)
    start = time.perf_counter()
    ready.set()
    producer_thread = threading.Thread(target=produce, daemon=True)
    producer_thread.start()
    frames_topic = topics.name("frames")
    parts = [TopicPartition(frames_topic, p) for p in range(topics.partitions)]
    probe = bus.consumer([frames_topic], None)
    deadline = time.monotonic() + 600
    while not (done.is_set() and stage.counters.records >= total["frames"]):
        if time.monotonic() > deadline:
            raise RuntimeError("the Kafka path did not process every frame within 600 s")
        time.sleep(0.01)
    last_batch_commit = consumer.commit_stats.commits  # the last batch is being processed: wait for its commit
    settle = time.monotonic() + 5
    while consumer.commit_stats.commits <= last_batch_commit and time.monotonic() < settle:
        time.sleep(0.005)
    elapsed = time.perf_counter() - start
    assert sum(probe.end_offsets(parts).values()) == total["frames"]
    stop.set()
    consumer_thread.join(30)
    probe.close()
    producer.close()
    frames = total["frames"]
    return {"frames": frames, "seconds": round(elapsed, 3), "frames_per_s": round(frames / elapsed, 2),
            "events": stage.counters.events, "commits": consumer.commit_stats.commits}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detector", type=Path, default=Path("models/detector"))
    parser.add_argument("--embedder", type=Path, default=Path("models/embedder"))
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each generated stream")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--max-wait-ms", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=2, help="alternating runs of each path (best is reported)")
    parser.add_argument("--bootstrap", default=None, help="use this broker instead of starting one")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--doc", type=Path, default=None,
                        help="append a result row to the 'Kafka path' table of this markdown file (docs/benchmarks.md)")
    args = parser.parse_args()

    import logging

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    detector = load_detector(args.detector)
    embedder = load_embedder(args.embedder)
    batch = BatchSettings(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms)
    work = Path(tempfile.mkdtemp(prefix="livetag-bench-kafka-"))
    paths = make_inputs(work, args.streams, args.seconds)
    broker = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        from consumers.bus.kafka_broker import KafkaBroker, ensure_jars, kafka_home

        broker = KafkaBroker(work / "broker", ensure_jars(kafka_home()))
        bootstrap = broker.start()
    results: dict[str, list[dict[str, Any]]] = {"inprocess": [], "kafka": []}
    try:
        bus = KafkaBus(bootstrap)
        base = Settings(batch=batch)
        entries = gallery_entries(detector, embedder, paths, base)
        for r in range(args.repeat):
            results["inprocess"].append(run_inprocess(detector, embedder, entries, paths, base))
            kafka_settings = base.with_overrides(topics=TopicSettings(prefix=f"bench{r}-{uuid.uuid4().hex[:6]}.", partitions=4))
            results["kafka"].append(run_kafka(bus, detector, embedder, entries, paths, kafka_settings))
            print(f"run {r + 1}: in-process {results['inprocess'][-1]['frames_per_s']} frames/s, "
                  f"kafka {results['kafka'][-1]['frames_per_s']} frames/s", flush=True)  # fmt: skip
    finally:
        if broker is not None:
            broker.stop()
    best = {path: max(runs, key=lambda x: x["frames_per_s"]) for path, runs in results.items()}
    median = {path: statistics.median(r["frames_per_s"] for r in runs) for path, runs in results.items()}
    summary = {
        "models": {"detector": detector.spec.label, "embedder": embedder.spec.label},
        "streams": args.streams, "frames_per_run": best["kafka"]["frames"], "batch": vars(batch),
        "runs": results, "best": best,
        "median_frames_per_s": median,
        "ratio_kafka_over_inprocess": round(median["kafka"] / median["inprocess"], 3),
        "ratio_best_of": round(best["kafka"]["frames_per_s"] / best["inprocess"]["frames_per_s"], 3),
    }  # fmt: skip
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    if args.doc:
        append_row(args.doc, summary, " ".join(["python", *sys.argv]))
    return 0


DOC_SECTION = "## Kafka path (benchmarks/kafka_vs_inprocess.py)"
DOC_HEADER = (
    "| date (UTC) | machine | models | streams x frames | batch | in-process frames/s | Kafka frames/s | ratio | command |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def append_row(doc: Path, summary: dict[str, Any], command: str) -> None:
    """Add one row to the table under ``DOC_SECTION`` (the section is created at the end if missing)."""
    import os
    import platform

    med = summary["median_frames_per_s"]
    row = (
        f"| {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} | {platform.machine()}, {os.cpu_count()} cores | "
        f"{summary['models']['detector']} + {summary['models']['embedder']} | "
        f"{summary['streams']} x {summary['frames_per_run'] // summary['streams']} | {summary['batch']['max_batch']} | "
        f"{med['inprocess']:.1f} | {med['kafka']:.1f} | {summary['ratio_kafka_over_inprocess']:.2f} | `{command}` |"
    )
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    if DOC_SECTION not in text:
        text = text.rstrip("\n") + f"\n\n{DOC_SECTION}\n\n{DOC_HEADER}\n"
    lines = text.split("\n")
    at = lines.index(DOC_SECTION) + 1
    while at < len(lines) and not lines[at].startswith("|"):
        at += 1
    while at < len(lines) and lines[at].startswith("|"):
        at += 1
    lines.insert(at, row)
    doc.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
