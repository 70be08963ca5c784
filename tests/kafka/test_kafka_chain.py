"""``fps:N,transport=chain`` through the real broker: the ingest worker publishes each sample's decode
chain (records above 1 MiB included), and what a consumer reads back decodes to the exact pictures."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from kafka_helpers import LoopThread, wait_for

from consumers.bus import Record
from consumers.bus.kafka import KafkaBus
from consumers.bus.topics import TopicNames
from consumers.messages.payload_schemas import check_payload, headers_document
from consumers.messages.stream_record import make_stream_value
from consumers.services.ingest import IngestWorker
from consumers.settings import IngestSettings
from stream.decode import PacketDecoder
from stream.encode import write_video
from stream.packet import FramePacket

pytestmark = pytest.mark.kafka


def _grainy_clip(path: Path) -> Path:
    """4 s of 640x360 film grain at 12 Mb/s, 25 frames/s, a keyframe every 2 s: about 60 KB a picture,
    so the chain of a sample late in a GOP is over a megabyte."""
    rng = np.random.default_rng(7)
    base = rng.integers(0, 255, (360, 640, 3), dtype=np.uint8)
    frames = [np.clip(base.astype(np.int16) + rng.integers(-40, 40, base.shape), 0, 255).astype(np.uint8)
              for _ in range(100)]
    write_video(path, frames, fps=25.0, gop=50, bitrate=12_000_000)
    return path


def test_chains_travel_through_kafka_and_decode_to_the_exact_pictures(
    kafka_bus: KafkaBus, kafka_topics: TopicNames, tmp_path: Path
) -> None:
    clip = _grainy_clip(tmp_path / "grain.mp4")
    producer = kafka_bus.producer()
    producer.produce(kafka_topics.streams, b"grain", make_stream_value(str(clip), "shop", "t", "fps:2,transport=chain"))
    producer.flush(10)
    worker = IngestWorker(kafka_bus, kafka_topics, IngestSettings(group_id="ingest-chain", allow_files=(str(tmp_path),)))
    reader = kafka_bus.consumer([kafka_topics.frames], None)
    records: list[Record] = []

    def read() -> None:
        records.extend(reader.poll(0.3, 500))

    def samples() -> set[int]:
        return {FramePacket.from_record(r.key, r.value, r.headers).pts for r in records}

    loop = LoopThread(worker.run, "ingest")
    try:
        # 4 s at fps:2 is 8 samples. A rebalance of the ingest group mid-file stops the stream and the
        # next owner replays the file from its start, so a sample may arrive twice (at least once).
        wait_for(lambda: len(samples()) >= 8, 90, "8 distinct chain samples", read)
    finally:
        loop.stop()
        reader.close()
    packets = [FramePacket.from_record(r.key, r.value, r.headers) for r in records]
    assert len(samples()) == 8 and all(p.chain and p.stream_id == "grain" for p in packets)
    assert max(len(r.value or b"") for r in records) > 1 << 20
    for record in records:
        check_payload("frames", headers_document(record.headers))
    with av.open(str(clip)) as container:
        whole = {f.pts: f.to_ndarray(format="rgb24") for f in container.decode(video=0)}
    decoder = PacketDecoder()
    assert all(np.array_equal(decoder.decode(p), whole[p.pts]) for p in packets)
