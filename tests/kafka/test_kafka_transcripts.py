"""Transcripts through a real Kafka topic into the text cues, and titles through the gallery topic."""

from __future__ import annotations

import numpy as np
import pytest
from kafka_helpers import wait_for

from consumers.kafka.bus import KafkaBus
from consumers.kafka.gallery_topic import GalleryEntry, GalleryFollower, publish_gallery
from consumers.kafka.topics import TopicNames
from consumers.kafka.transcript_topic import TranscriptFollower, publish_segments
from consumers.text.text_prior import TextPriors
from consumers.text.text_settings import TextSettings
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
        assert priors.item_factor("s1", "shorts") == pytest.approx(1.0 + 0.5 ** (1.0 / 60.0))  # said at 1 s, seen at 2 s
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
        assert follower.item_titles() == {"item-a": "西装短裤女"} and seen[-1] == {"item-a": "西装短裤女"}
        assert follower.item_ids() == {"item-a", "item-b"}
    finally:
        follower.close()
        producer.close()
