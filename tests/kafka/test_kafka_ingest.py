"""The ingest worker on the real broker: stream ownership, frames out, bad records to dlq."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kafka_helpers import LoopThread, moving_square_video, read_all, wait_for

from consumers.bus.kafka import KafkaBus
from consumers.bus.topics import TopicNames
from consumers.messages.dead_letter import DeadLetter
from consumers.messages.payload_schemas import check_payload, headers_document
from consumers.messages.stream_record import make_stream_value
from consumers.services.ingest import IngestWorker
from consumers.settings import IngestSettings
from consumers.text.transcripts import parse_record
from stream.packet import FramePacket

pytestmark = pytest.mark.kafka

FAST_FAIL = dict(open_timeout_s=1.0, stall_timeout_s=2.0, max_retries=0, backoff_initial_s=0.05, backoff_cap_s=0.1)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return moving_square_video(tmp_path_factory.mktemp("ingest") / "square.mp4", seconds=4.0, fps=10, gop=5)


def test_streams_record_starts_ingest_and_bad_records_go_to_dlq(
    kafka_bus: KafkaBus, kafka_topics: TopicNames, clip: Path
) -> None:
    producer = kafka_bus.producer()
    producer.produce(kafka_topics.streams, b"good", make_stream_value(str(clip), "shop-1", "demo", description="西装短裤"))
    producer.produce(kafka_topics.streams, b"bad-json", b"{not json")
    producer.produce(kafka_topics.streams, b"bad-field", json.dumps({"url": str(clip), "catalog": "c", "colour": "red"}).encode())
    producer.produce(kafka_topics.streams, b"dead-url", make_stream_value("rtmp://127.0.0.1:9/live/none", "shop-2"))
    producer.flush(10)
    # a local clip and a dead local port
    worker = IngestWorker(kafka_bus, kafka_topics, IngestSettings(group_id="ingest-a", allow_files=(str(clip.parent),),
                                                                  allow_loopback=True, **FAST_FAIL))
    loop = LoopThread(worker.run, "ingest")
    try:
        wait_for(lambda: worker.stats.frames >= 8 and worker.stats.dead_letters >= 3, 30, "frames and dead letters")
    finally:
        loop.stop()
    frames = [FramePacket.from_record(r.key, r.value, r.headers) for r in read_all(kafka_bus, kafka_topics.frames, 8)]
    assert len(frames) == 8, "4 s at one keyframe every 0.5 s"
    assert {f.stream_id for f in frames} == {"good"}
    assert [f.sequence for f in frames] == list(range(8))
    assert all(f.codec == "h264" and f.keyframe and f.extradata for f in frames)
    raw = read_all(kafka_bus, kafka_topics.frames, 1)
    assert {r.header("catalog") for r in raw} == {b"shop-1"}
    all_letters = [DeadLetter.from_record(r) for r in read_all(kafka_bus, kafka_topics.dlq, 3)]
    letters = {d.key: d for d in all_letters}
    assert set(letters) == {b"bad-json", b"bad-field", b"dead-url"}
    assert "not JSON" in letters[b"bad-json"].reason
    assert "unknown fields colour" in letters[b"bad-field"].reason
    assert "cannot open rtmp://127.0.0.1:9/live/none" in letters[b"dead-url"].reason
    assert letters[b"bad-json"].value == b"{not json", "the original record is kept"
    assert letters[b"bad-json"].topic == kafka_topics.streams
    transcripts = read_all(kafka_bus, kafka_topics.transcripts, 1)
    for record in transcripts:
        check_payload("transcripts", json.loads(record.value or b"{}"))
    for record in raw:
        check_payload("frames", headers_document(record.headers))
    for record in read_all(kafka_bus, kafka_topics.dlq, 3):
        check_payload("dlq", headers_document(record.headers))
    [title] = [parse_record(r.key, r.value) for r in transcripts]
    assert (title.stream_id, title.text, title.source, title.start) == ("good", "demo 西装短裤", "title", None)


def test_tombstone_stops_a_stream_and_ownership_moves_with_the_group(
    kafka_bus: KafkaBus, kafka_topics: TopicNames, tmp_path: Path
) -> None:
    long_clip = moving_square_video(tmp_path / "long.mp4", seconds=60.0, fps=10, gop=10)
    paced = IngestSettings(group_id="ingest-b", realtime=True, stop_join_s=2.0, allow_files=(str(tmp_path),))
    producer = kafka_bus.producer()
    ids = [f"s{i}" for i in range(6)]
    for sid in ids:
        producer.produce(kafka_topics.streams, sid.encode(), make_stream_value(str(long_clip), "shop"))
    producer.flush(10)
    first = IngestWorker(kafka_bus, kafka_topics, paced)
    first_loop = LoopThread(first.run, "ingest-1")
    second: IngestWorker | None = None
    second_loop: LoopThread | None = None
    try:
        wait_for(lambda: set(first.owned()) == set(ids), 20, "the only worker owning every stream")
        producer.produce(kafka_topics.streams, b"s0", None)
        producer.flush(10)
        wait_for(lambda: "s0" not in first.owned(), 20, "the tombstone stopping s0")
        second = IngestWorker(kafka_bus, kafka_topics, paced)
        second_loop = LoopThread(second.run, "ingest-2")
        live = set(ids) - {"s0"}
        wait_for(
            lambda: bool(second and second.owned())
            and set(first.owned()) | set(second.owned()) == live
            and not set(first.owned()) & set(second.owned()),
            30,
            "the streams split between two workers without overlap",
        )
        first_loop.stop()
        wait_for(lambda: set(second.owned()) == live, 30, "the remaining worker taking every stream back")
        assert "s0" not in second.owned(), "the rebuild honours the tombstone"
    finally:
        if second_loop is not None:
            second_loop.stop()
        if not first_loop.stop_event.is_set():
            first_loop.stop()
