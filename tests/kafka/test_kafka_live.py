"""The live path end to end: RTMP (nginx) -> ingest worker -> frames -> two inference consumers ->
matches, read by a kafka-python subscriber and by kcat."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from kafka_helpers import (
    LoopThread,
    collect_until_match_started,
    first_frame,
    gallery_entries,
    product_video,
    read_all,
)

from consumers.bus.kafka import KafkaBus
from consumers.bus.topics import TopicNames
from consumers.messages.stream_record import make_stream_value
from consumers.services.gallery_follower import publish_gallery
from consumers.services.infer import InferenceConsumer, stage_from_gallery_topic
from consumers.services.ingest import IngestWorker
from consumers.settings import BatchSettings, IngestSettings, PipelineSettings, Settings, TopicSettings
from stream.encode import push_to_rtmp
from stream.packet import FramePacket

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stream"))
from rtmp_server import RtmpServer  # noqa: E402

pytestmark = [pytest.mark.kafka, pytest.mark.rtmp]


def test_live_rtmp_stream_is_matched_and_read_by_kcat(
    kafka_bus: KafkaBus, kafka_topics: TopicNames, topic_settings: TopicSettings, tiny_models: tuple, tmp_path: Path
) -> None:
    assert RtmpServer.available(), "nginx with libnginx-mod-rtmp is required (scripts/test.sh installs it)"
    assert shutil.which("kcat"), "kcat is required (scripts/test.sh installs it)"
    detector, embedder = tiny_models
    # The tiny random-init detector's boxes have no presenter to be near: the presentation prior (tested
    # in tests/consumers/stage) would only reweigh random boxes here, where the plumbing is under test.
    settings = Settings(topics=topic_settings, batch=BatchSettings(max_batch=8, max_wait_ms=50),
                        pipeline=PipelineSettings(presentation_prior=False))
    shown = product_video(tmp_path / "item-A.mp4", seed=11, seconds=20.0, fps=10, gop=10)
    other = product_video(tmp_path / "item-B.mp4", seed=12, seconds=1.0, fps=10, gop=10)
    producer = kafka_bus.producer()
    for item, path in (("item-A", shown), ("item-B", other)):
        publish_gallery(producer, kafka_topics.gallery, gallery_entries(detector, embedder, first_frame(path), item, "shop-7", settings.pipeline))

    server = RtmpServer.start(tmp_path / "nginx")
    push_stop = threading.Event()
    url = server.url("live", "seller-7")
    pusher = threading.Thread(target=push_to_rtmp, args=(shown, url), kwargs={"stop": push_stop}, daemon=True)
    loops: list[LoopThread] = []
    try:
        pusher.start()
        ingest = IngestWorker(kafka_bus, kafka_topics, IngestSettings(group_id="live-ingest", open_timeout_s=5.0, stall_timeout_s=5.0, max_retries=10, allow_loopback=True))
        loops.append(LoopThread(ingest.run, "ingest"))
        for name in ("infer-1", "infer-2"):
            stage, follower = stage_from_gallery_topic(kafka_bus, settings, detector, embedder)
            loops.append(LoopThread(InferenceConsumer(kafka_bus, stage, settings, follower, group_id="live-infer").run, name))
        producer.produce(kafka_topics.streams, b"seller-7", make_stream_value(url, "shop-7", "spring sale"))
        producer.flush(10)

        events = collect_until_match_started(
            kafka_bus, kafka_topics.matches, "live-subscriber", 40,
            f"a match event from the live stream (nginx log: {server.error_log()[-300:]})",
        )
    finally:
        push_stop.set()
        for loop in reversed(loops):
            loop.stop()
        pusher.join(10)
        server.stop()
    started = next(e for e in events if e["event"] == "match.started")
    assert started["stream_id"] == "seller-7"
    assert started["item_id"] == "item-A", "the stream shows item A"
    frames = [FramePacket.from_record(r.key, r.value, r.headers) for r in read_all(kafka_bus, kafka_topics.frames, 1)]
    first_pts = min(f.pts_seconds for f in frames if f.stream_id == "seller-7")
    decided_at = max(ev["pts"] for ev in started["evidence"])
    assert decided_at - first_pts <= 10.0, "the item is known within 10 s of stream time"

    out = subprocess.run(
        ["kcat", "-C", "-b", kafka_bus.bootstrap, "-t", kafka_topics.matches, "-e", "-J", "-q"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    assert lines, "kcat read the matches topic"
    payloads = [json.loads(line["payload"]) for line in lines]
    assert all(line["key"] == "seller-7" for line in lines), "matches are keyed by stream id"
    assert any(p["event"] == "match.started" and p["item_id"] == "item-A" for p in payloads)
    assert all(p["schema"] == "livetag.match/v1" for p in payloads)
