"""Transcripts through a real Kafka topic into the text cues, and titles through the gallery topic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from kafka_helpers import read_all, wait_for

from consumers.bus.kafka import KafkaBus
from consumers.bus.topics import TopicNames
from consumers.messages.gallery_record import GalleryEntry
from consumers.messages.payload_schemas import check_payload
from consumers.services.gallery_follower import GalleryFollower, publish_gallery
from consumers.services.transcript_follower import TranscriptFollower, publish_segments
from consumers.settings import TopicSettings
from consumers.settings.text import TextSettings
from consumers.text.text_prior import TextPriors
from consumers.text.transcripts import TranscriptSegment
from engines.categories import CATEGORIES
from engines.gallery import GalleryIndex
from stream.clock import FakeClock

SHORTS = CATEGORIES.index("短裤")


def test_transcripts_reach_the_text_cues_and_bad_records_are_skipped(kafka_bus: KafkaBus, kafka_topics: TopicNames) -> None:
    priors = TextPriors(TextSettings(), CATEGORIES, {}, {"shorts": {SHORTS}}.get, FakeClock(), items={"shorts"})
    received: list[TranscriptSegment] = []

    def sink(segment: TranscriptSegment) -> None:
        received.append(segment)
        priors.add(segment.stream_id, segment.text, segment.source, segment.start)

    producer = kafka_bus.producer()
    sent = [TranscriptSegment("s1", "这条短裤很显瘦", 1.0, 2.5), TranscriptSegment("s2", "夏季新款", None, None, "title")]
    producer.produce(kafka_topics.transcripts, b"s1", b'{"text": 12}')  # malformed: logged and skipped
    producer.produce(kafka_topics.transcripts, None, b'{"text": "no key"}')
    assert publish_segments(producer, kafka_topics.transcripts, sent) == 2
    follower = TranscriptFollower(kafka_bus, kafka_topics.transcripts, sink)
    follower.start()
    try:
        wait_for(lambda: len(received) == 2, 30, "the follower to read both transcripts")
        assert follower.malformed == 2 and follower.applied == 2
        assert sorted(received, key=lambda s: s.stream_id) == sent
        priors.seen("s1", 2.0)
        fade = 0.5 ** (1.0 / TextSettings().half_life_s)  # said at 1 s, seen at 2 s
        assert priors.item_factor("s1", "shorts") == pytest.approx(1.0 + fade)
        assert priors.item_factor("s2", "shorts") == 1.0
    finally:
        follower.close()
        producer.close()


def test_item_titles_follow_the_gallery_topic(kafka_bus: KafkaBus, kafka_topics: TopicNames) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(2, 8)).astype(np.float32)
    entries = [
        GalleryEntry("a/0", "item-a", vectors[0] / np.linalg.norm(vectors[0]), "shop", None, {"title": "西装短裤女"}),
        GalleryEntry("b/0", "item-b", vectors[1] / np.linalg.norm(vectors[1]), "shop", None, {}),
    ]
    producer = kafka_bus.producer()
    publish_gallery(producer, kafka_topics.gallery, entries)
    follower = GalleryFollower(kafka_bus, kafka_topics.gallery, GalleryIndex(8))
    seen: list[dict[str, str]] = []
    follower.on_titles = seen.append
    try:
        assert follower.load(30) == 2
        assert follower.gallery.item_titles() == {"item-a": "西装短裤女"} and seen[-1] == {"item-a": "西装短裤女"}
        assert follower.gallery.item_ids() == {"item-a", "item-b"}
        for record in read_all(kafka_bus, kafka_topics.gallery, 2):
            check_payload("gallery", json.loads(record.value or b"{}"))
    finally:
        follower.close()
        producer.close()


def test_a_transcript_on_kafka_reaches_the_match_event(
    kafka_bus: KafkaBus, kafka_topics: TopicNames, topic_settings: TopicSettings, tiny_models: tuple, tmp_path: Path
) -> None:
    """Gallery titles, a transcript and frames on the real broker; the inference consumer publishes
    a v2 match event quoting the transcript for the stream it was said on, and v1 for the other."""
    from dataclasses import replace

    from kafka_helpers import LoopThread, first_frame, gallery_entries, product_video, read_all

    from consumers.services.infer import InferenceConsumer, stage_from_gallery_topic
    from consumers.services.replay_to_kafka import ReplayFile, replay_to_kafka
    from consumers.settings import BatchSettings, Settings

    detector, embedder = tiny_models
    settings = Settings(topics=topic_settings, batch=BatchSettings(max_batch=4, max_wait_ms=50))
    video = product_video(tmp_path / "item-A.mp4", 1, seconds=6.0)
    producer = kafka_bus.producer()
    entries = [replace(e, metadata={**e.metadata, "title": "西装短裤 8302114"})
               for e in gallery_entries(detector, embedder, first_frame(video), "item-A", "shop", settings.pipeline)]
    publish_gallery(producer, kafka_topics.gallery, entries)
    publish_segments(producer, kafka_topics.transcripts, [TranscriptSegment("told", "看一下 8302114 这条", 0.0, 1.0)])
    stage, follower = stage_from_gallery_topic(kafka_bus, settings, detector, embedder)
    consumer = InferenceConsumer(kafka_bus, stage, settings, follower, group_id="infer-text")
    loop = LoopThread(consumer.run, "infer-text")
    try:
        wait_for(lambda: consumer.commit_stats.assigned > 0, 30, "the consumer to get partitions")
        files = [ReplayFile(sid, str(video), "shop") for sid in ("told", "silent")]
        replay_to_kafka(producer, kafka_topics.frames, files, speed="max", progress=False)
        wait_for(lambda: len(read_all(kafka_bus, kafka_topics.matches, 0)) >= 2, 60, "match events of both streams")
    finally:
        loop.stop()
        producer.close()
    events = [(r.header("lt-schema"), json.loads(r.value or b"{}")) for r in read_all(kafka_bus, kafka_topics.matches, 2)]
    for schema, doc in events:  # what the consumer really published follows the schema it names
        check_payload("matches.v2" if schema == b"livetag.match/v2" else "matches.v1", doc)
    started = {doc["stream_id"]: (schema, doc) for schema, doc in events if doc["event"] == "match.started"}
    assert set(started) == {"told", "silent"} and all(doc["item_id"] == "item-A" for _, doc in started.values())
    schema, told = started["told"]
    assert schema == b"livetag.match/v2" and told["text"][0]["source"] == "speech"
    assert told["text"][0]["title_score"] >= 0.3  # the model number is the one shared term
    assert started["silent"][0] == b"livetag.match/v1" and "text" not in started["silent"][1]
