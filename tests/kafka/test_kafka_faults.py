"""Hostile records against the real broker: an inference consumer and an ingest worker keep going,
every record is accounted for (frames in = processed + dead letters), and no stream URL reaches a
local file or a loopback host."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from kafka_helpers import LoopThread, first_frame, gallery_entries, product_video, read_all, wait_for
from PIL import Image

from consumers.bus import TopicPartition
from consumers.bus.kafka import KafkaBus
from consumers.bus.topics import TopicNames
from consumers.messages.dead_letter import DeadLetter
from consumers.messages.payload_schemas import check_payload, headers_document
from consumers.messages.stream_record import make_stream_value
from consumers.services.gallery_follower import publish_gallery
from consumers.services.infer import InferenceConsumer, stage_from_gallery_topic
from consumers.services.ingest import IngestWorker
from consumers.services.replay_to_kafka import ReplayFile, replay_to_kafka
from consumers.settings import BatchSettings, IngestSettings, Settings, TopicSettings
from stream.packet import FramePacket

pytestmark = pytest.mark.kafka


def _decode_bomb() -> tuple[bytes, list[tuple[str, bytes]]]:
    """A JPEG frame of 12000 x 12000 (about 430 MB as RGB): refused before it is allocated."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((12000, 12000, 3), np.uint8)).save(buffer, format="JPEG", quality=10)
    _, value, headers = FramePacket("bomb", "mjpeg", buffer.getvalue(), b"", 0, Fraction(1, 1000), 1.0, 0).to_record()
    return value, headers


def test_poison_frames_are_dead_letters_and_the_consumer_commits_to_the_end(
    kafka_bus: KafkaBus, kafka_topics: TopicNames, topic_settings: TopicSettings, tiny_models: tuple, tmp_path: Path
) -> None:
    detector, embedder = tiny_models
    settings = Settings(topics=topic_settings, batch=BatchSettings(max_batch=4, max_wait_ms=50))
    video = product_video(tmp_path / "item-A.mp4", 1, seconds=6.0)
    producer = kafka_bus.producer()
    publish_gallery(producer, kafka_topics.gallery,
                    gallery_entries(detector, embedder, first_frame(video), "item-A", "shop", settings.pipeline))
    replay_to_kafka(producer, kafka_topics.frames, [ReplayFile("good", str(video), "shop")], speed="max", progress=False)
    good = read_all(kafka_bus, kafka_topics.frames, 12)
    key, value, headers = FramePacket.from_record(good[0].key, good[0].value, good[0].headers).to_record()
    poison = {
        b"pts-10e400": (value, [(n, b"1" + b"0" * 400 if n == "pts" else v) for n, v in headers]),
        b"wallclock-inf": (value, [(n, b"-inf" if n == "wallclock" else v) for n, v in headers]),
        b"undecodable-8mb": (b"\x00" * 8_388_308, headers),  # fits frames; its dead letter is cut to fit dlq
        b"no-headers": (b"junk", []),
        b"decode-bomb-12000px": _decode_bomb(),
    }
    for poison_key, (poison_value, poison_headers) in poison.items():
        producer.produce(kafka_topics.frames, poison_key, poison_value, poison_headers)
    producer.flush(30)
    ends = kafka_bus.consumer([kafka_topics.frames], None).end_offsets(
        [TopicPartition(kafka_topics.frames, p) for p in range(topic_settings.partitions)])
    total = sum(ends.values())
    stage, follower = stage_from_gallery_topic(kafka_bus, settings, detector, embedder)
    consumer = InferenceConsumer(kafka_bus, stage, settings, follower, group_id="faults")
    loop = LoopThread(consumer.run, "faults")
    try:
        wait_for(lambda: stage.counters.records >= total, 90, "every frame record to be handled")
        wait_for(lambda: len(read_all(kafka_bus, kafka_topics.dlq, 0, limit_s=2)) >= len(poison), 30, "dead letters")
    finally:
        loop.stop()
        producer.close()
    dlq = read_all(kafka_bus, kafka_topics.dlq, 4)
    for record in dlq:  # what the service really wrote follows the topics' schemas
        check_payload("dlq", headers_document(record.headers))
    for record in good:
        check_payload("frames", headers_document(record.headers))
    letters = {d.key: d for d in (DeadLetter.from_record(r) for r in dlq)}
    assert set(letters) == set(poison)
    assert letters[b"undecodable-8mb"].value_size == 8_388_308 and letters[b"undecodable-8mb"].value_sha256
    c = stage.counters  # a rebalance may deliver uncommitted records again: at least every record once
    assert c.frames + c.dead_letters + c.skipped_revoked == c.records >= total
    events = [json.loads(r.value or b"{}") for r in read_all(kafka_bus, kafka_topics.matches, 1)]
    assert {e["stream_id"] for e in events} == {"good"}, "the good stream matched through it all"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("concat:/etc/passwd|/etc/hosts", "FFmpeg protocol 'concat'"),
        ("subfile:,,start,0,end,0,,:/etc/passwd", "FFmpeg protocol 'subfile'"),
        ("/etc/passwd", "local files are not allowed"),
        ("file:///etc/passwd", "local files are not allowed"),
        ("tcp://203.0.113.9:1935", "scheme 'tcp' is not allowed"),
        ("http://127.0.0.1:9/", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("rtmp://user:pa/ss@localhost/live/x", "ambiguous user-info"),
        ("rtmp://user:secret@localhost/live/x", "loopback"),
    ],
)
def test_stream_urls_that_reach_files_or_internal_hosts_are_dead_letters(
    kafka_bus: KafkaBus, kafka_topics: TopicNames, url: str, reason: str
) -> None:
    producer = kafka_bus.producer()
    producer.produce(kafka_topics.streams, b"evil", make_stream_value(url, "shop"))
    producer.flush(10)
    worker = IngestWorker(kafka_bus, kafka_topics, IngestSettings(group_id="ingest-evil", open_timeout_s=1.0, stall_timeout_s=2.0, max_retries=0, backoff_initial_s=0.05, backoff_cap_s=0.1))
    loop = LoopThread(worker.run, "ingest-evil")
    try:
        wait_for(lambda: worker.stats.dead_letters >= 1, 30, "the record's dead letter")
    finally:
        loop.stop()
        producer.close()
    [letter] = [DeadLetter.from_record(r) for r in read_all(kafka_bus, kafka_topics.dlq, 1)]
    assert letter.stage == "streams-record" and reason in letter.reason
    assert worker.stats.started == 0 and worker.stats.frames == 0, "nothing was opened"
    assert "pa/ss" not in letter.reason and "secret" not in letter.reason and "root:" not in letter.reason


@pytest.mark.parametrize(
    ("edit", "flags", "reason"),
    [
        # the spec names code to run: refused, the command never runs
        (lambda s: s["torch"].update(factory="os:system", config={"command": "touch {marker}"}), ["--backend", "torch"],
         "cannot name code to run"),
        # a one-word change to a pinned package (its ONNX hash still right)
        (lambda s: s.update(name="renamed"), ["--embedder-digest", "{digest}"], "is not the pinned"),
    ],
)
def test_a_tampered_model_package_stops_infer_before_it_joins(
    kafka_bootstrap: str, kafka_topics: TopicNames, topic_prefix: str, tiny_package_dirs: dict[str, Path],
    tmp_path: Path, edit: object, flags: list[str], reason: str,
) -> None:
    import shutil

    from consumers.bus.kafka import KafkaBus as Bus
    from engines.package import package_digest

    marker = tmp_path / "pwned"
    group = f"tampered-{topic_prefix}"
    digest = package_digest(tiny_package_dirs["embedder"])
    evil = tmp_path / "embedder"
    shutil.copytree(tiny_package_dirs["embedder"], evil)
    spec = json.loads((evil / "spec.json").read_text())
    edit(spec)  # type: ignore[operator]
    text = json.dumps(spec).replace("{marker}", str(marker))
    (evil / "spec.json").write_text(text)
    env = {**os.environ, "LIVETAG_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "LIVETAG_TOPICS_PREFIX": topic_prefix}
    result = subprocess.run(
        [sys.executable, "-m", "consumers.cli", "infer", "--detector", str(tiny_package_dirs["detector"]),
         "--embedder", str(evil), "--group", group, *[f.replace("{digest}", digest) for f in flags]],
        cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("livetag: error:")]
    assert len(lines) == 1 and reason in lines[0], result.stderr[-1500:]
    assert not marker.exists(), "the spec's command never ran"
    admin = Bus(kafka_bootstrap).admin()
    try:
        groups = repr(admin.list_groups())
    finally:
        admin.close()
    assert "tampered-" not in groups, "it never joined a group"
