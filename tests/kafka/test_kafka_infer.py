"""Inference consumers on the real broker: micro-batches, rebalance, every frame accounted for."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from kafka_helpers import (
    LoopThread,
    committed_offsets,
    first_frame,
    gallery_entries,
    product_video,
    read_all,
    wait_for,
)

from consumers.bus import Record, TopicPartition
from consumers.bus.kafka import KafkaBus
from consumers.bus.topics import TopicNames
from consumers.messages.dead_letter import DeadLetter
from consumers.services.gallery_follower import publish_gallery
from consumers.services.infer import InferenceConsumer, stage_from_gallery_topic
from consumers.services.replay_to_kafka import ReplayFile, replay_to_kafka
from consumers.settings import BatchSettings, Settings, TopicSettings

pytestmark = pytest.mark.kafka


class Recorder:
    """A record stage that notes every (stream, sequence) it processed, then delegates."""

    def __init__(self, stage: object) -> None:
        self.stage = stage
        self.seen: list[tuple[str, int, int]] = []  # (stream id, sequence, partition)
        self.lock = threading.Lock()

    def process(self, records: Sequence[Record]) -> list[Record]:
        with self.lock:
            for r in records:
                seq = r.header("sequence")
                self.seen.append(((r.key or b"").decode(), int(seq) if seq and seq.isdigit() else -1, r.partition))
        return self.stage.process(records)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("products")
    return {item: product_video(root / f"{item}.mp4", seed, seconds=12.0) for item, seed in (("item-A", 1), ("item-B", 2))}


def test_two_consumers_rebalance_and_every_frame_is_accounted_for(
    kafka_bus: KafkaBus, kafka_topics: TopicNames, topic_settings: TopicSettings, tiny_models: tuple, videos: dict[str, Path]
) -> None:
    detector, embedder = tiny_models
    settings = Settings(topics=topic_settings, batch=BatchSettings(max_batch=8, max_wait_ms=50))
    producer = kafka_bus.producer()
    for item, path in videos.items():
        publish_gallery(producer, kafka_topics.gallery, gallery_entries(detector, embedder, first_frame(path), item, "shop", settings.pipeline))
    streams = {f"s{i}": ("item-A", "item-B")[i % 2] for i in range(6)}
    files = [ReplayFile(sid, str(videos[item]), "shop") for sid, item in streams.items()]
    # Two records the stage cannot use: junk bytes with valid headers, and a record without headers.
    junk_headers = [("codec", b"h264"), ("pts", b"0"), ("time_base", b"1/1000"), ("wallclock", b"0"), ("sequence", b"0")]
    producer.produce(kafka_topics.frames, b"junk", b"\x00\x01not h264", junk_headers)
    producer.produce(kafka_topics.frames, b"headerless", b"whatever")
    producer.flush(10)

    consumers, loops, recorders, stages = [], [], [], []
    for name in ("c1", "c2"):
        # c1, which ends up with every partition, decodes each batch on three threads
        own = settings.with_overrides(pipeline__decode_workers=3) if name == "c1" else settings
        stage, follower = stage_from_gallery_topic(kafka_bus, own, detector, embedder)
        stages.append(stage)
        assert (stage.models._decode_pool is not None) == (name == "c1")
        recorder = Recorder(stage)
        consumer = InferenceConsumer(kafka_bus, recorder, settings, follower, group_id="infer-rebalance")
        consumers.append(consumer)
        recorders.append(recorder)
        loops.append(LoopThread(consumer.run, name))
    replay_done = threading.Event()

    def replay() -> None:
        replay_to_kafka(kafka_bus.producer(), kafka_topics.frames, files, speed="realtime", progress=False)
        replay_done.set()

    replay_thread = threading.Thread(target=replay, daemon=True)
    try:
        wait_for(lambda: all(c.commit_stats.assigned > 0 for c in consumers), 30, "both consumers to get partitions")
        replay_thread.start()
        wait_for(lambda: len(recorders[1].seen) >= 6, 30, "the second consumer to process frames")
        moved = {p for _, _, p in recorders[1].seen}
        loops[1].stop()
        stopped_at_ms = time.time() * 1000
        processed_by_c2 = len(recorders[1].seen)
        wait_for(replay_done.is_set, 60, "the replay to finish")
        ends = {TopicPartition(kafka_topics.frames, p): 0 for p in range(4)}
        checker = kafka_bus.consumer([kafka_topics.frames], "infer-rebalance-check")
        ends = checker.end_offsets(ends)
        checker.close()

        def committed_all() -> bool:
            return consumers[0].commit_stats.commits > 0 and committed_offsets(kafka_bus, "infer-rebalance", ends) == ends

        wait_for(committed_all, 60, "the remaining consumer to commit every partition to its end")
    finally:
        for loop in loops:
            if not loop.stop_event.is_set():
                loop.stop()
        for stage in stages:
            stage.close()
    assert len(recorders[1].seen) == processed_by_c2, "a stopped consumer takes no more records"
    produced = {(sid, seq) for sid in streams for seq in range(24)}
    processed = {(sid, seq) for rec in recorders for sid, seq, _ in rec.seen}
    letters = [DeadLetter.from_record(r) for r in read_all(kafka_bus, kafka_topics.dlq, 2)]
    assert {d.key for d in letters} == {b"junk", b"headerless"}
    assert all(d.stage == "decode" and d.reason for d in letters)
    assert produced <= processed, f"frames lost: {sorted(produced - processed)[:5]}"
    total_records = sum(ends.values())
    assert total_records == len(produced) + 2, "the frames topic holds the 144 frames and the 2 bad records"
    assert {p for _, _, p in recorders[0].seen} >= moved, "the stopped consumer's partitions moved to the other"

    events = [json.loads(r.value or b"{}") | {"_ts": r.timestamp_ms} for r in read_all(kafka_bus, kafka_topics.matches, 6)]
    started = [e for e in events if e["event"] == "match.started"]
    assert {e["stream_id"] for e in started} == set(streams), "every stream got a match"
    assert all(e["item_id"] == streams[e["stream_id"]] for e in started), "each stream matched the item it shows"
    moved_streams = {sid for sid, _, p in recorders[1].seen}
    after = [e for e in started if e["stream_id"] in moved_streams and e["_ts"] > stopped_at_ms]
    assert after, "matches continue for the moved streams after the consumer stopped"
