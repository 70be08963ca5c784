"""The shipped models on the shipped demo stream, live through nginx RTMP and Kafka: the item the
presenter shows (samples/demo/segments.json) is published on `matches` within 10 s of stream time."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest
from kafka_helpers import LoopThread, collect_until_match_started, read_all

from consumers.bus.kafka import KafkaBus
from consumers.bus.topics import TopicNames
from consumers.messages.stream_record import make_stream_value
from consumers.services.gallery_follower import publish_gallery, read_gallery_folder
from consumers.services.infer import InferenceConsumer, stage_from_gallery_topic
from consumers.services.ingest import IngestWorker
from consumers.settings import BatchSettings, IngestSettings, ModelSettings, Settings, TopicSettings
from consumers.stage.gallery_builder import build_gallery, find_shop_images, to_index
from consumers.stage.model_loading import DEFAULT_MODELS_DIR, load_models
from stream.encode import push_to_rtmp
from stream.packet import FramePacket

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stream"))
from rtmp_server import RtmpServer  # noqa: E402

pytestmark = [pytest.mark.kafka, pytest.mark.rtmp]
DEMO = Path(__file__).resolve().parents[2] / "samples" / "demo"


def test_shipped_models_name_the_shown_product_live(
    kafka_bus: KafkaBus, kafka_topics: TopicNames, topic_settings: TopicSettings, tmp_path: Path
) -> None:
    assert RtmpServer.available(), "nginx with libnginx-mod-rtmp is required (scripts/test.sh installs it)"
    settings = Settings(topics=topic_settings, batch=BatchSettings(max_batch=8, max_wait_ms=50))
    detector, embedder = load_models(
        ModelSettings(str(DEFAULT_MODELS_DIR / "detector"), str(DEFAULT_MODELS_DIR / "embedder")),
        settings.pipeline.detection_threshold, settings.pipeline.nms_iou,
    )  # fmt: skip
    shop = find_shop_images(DEMO / "image", DEMO / "image_annotation")
    to_index(build_gallery(shop, detector, embedder, catalog="demo-shop", progress=False)).save(tmp_path / "gallery")
    producer = kafka_bus.producer()
    publish_gallery(producer, kafka_topics.gallery, read_gallery_folder(tmp_path / "gallery"))
    segments = json.loads((DEMO / "segments.json").read_text())["v000000"]

    server = RtmpServer.start(tmp_path / "nginx")
    url = server.url("live", "presenter")
    push_stop = threading.Event()
    loops: list[LoopThread] = []
    try:
        loops.append(LoopThread(IngestWorker(kafka_bus, kafka_topics, IngestSettings(group_id="demo-ingest", open_timeout_s=5.0, stall_timeout_s=5.0, max_retries=10, allow_loopback=True)).run, "ingest"))
        for name in ("infer-1", "infer-2"):
            stage, follower = stage_from_gallery_topic(kafka_bus, settings, detector, embedder)
            loops.append(LoopThread(InferenceConsumer(kafka_bus, stage, settings, follower, group_id="demo-infer").run, name))
        pusher = threading.Thread(target=push_to_rtmp, args=(DEMO / "video" / "v000000.mp4", url), kwargs={"stop": push_stop}, daemon=True)
        pushed_at = time.time()
        pusher.start()
        producer.produce(kafka_topics.streams, b"presenter", make_stream_value(url, "demo-shop", "demo"))
        producer.flush(10)
        events = collect_until_match_started(
            kafka_bus, kafka_topics.matches, "demo-subscriber", 45,
            f"a match from the live demo stream (nginx log: {server.error_log()[-300:]})",
        )
    finally:
        push_stop.set()
        for loop in reversed(loops):
            loop.stop()
        server.stop()
    started = next(e for e in events if e["event"] == "match.started")
    frames = [FramePacket.from_record(r.key, r.value, r.headers) for r in read_all(kafka_bus, kafka_topics.frames, 1)]
    first = min(frames, key=lambda f: f.pts_seconds)
    decided_at = max(ev["pts"] for ev in started["evidence"])
    assert decided_at - first.pts_seconds <= 10.0, "the item is named within 10 s of stream time"
    # Map the stream's pts to the file's timeline (the push is paced in real time from pushed_at).
    file_time = decided_at - first.pts_seconds + (first.wallclock - pushed_at)
    shown = {s["item_id"] for s in segments if s["start_s"] - 1.5 <= file_time <= s["end_s"] + 1.5}
    assert started["item_id"] in shown, f"named {started['item_id']} at {file_time:.1f} s of the video; shown: {shown}"
