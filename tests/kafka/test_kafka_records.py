"""streams-topic records and the broker helpers that need no broker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.bus.kafka_broker import BrokerError, KafkaBroker, ensure_jars, kafka_home, random_cluster_id
from consumers.messages.stream_record import (
    StreamRecordError,
    make_stream_value,
    parse_stream_value,
    stream_id_from_key,
)


def test_stream_value_round_trip_and_defaults() -> None:
    spec = parse_stream_value("s1", make_stream_value("rtmp://h/live/x", "shop-1", "title", "fps:2,max_rate=1"))
    assert (spec.url, spec.catalog, spec.title, str(spec.sampling)) == ("rtmp://h/live/x", "shop-1", "title", "fps:2,max_rate=1")
    minimal = parse_stream_value("s1", json.dumps({"url": "a.mp4", "catalog": "c"}).encode())
    assert minimal.title == "" and str(minimal.sampling) == "keyframes"
    assert json.loads(spec.to_value()).get("schema") is None, "a record without a description stays v1"


def test_v2_stream_values_carry_a_description() -> None:
    value = make_stream_value("rtmp://h/live/x", "shop-1", "春季上新", description="西装短裤 连衣裙")
    assert json.loads(value)["schema"] == "livetag.stream/v2"
    spec = parse_stream_value("s1", value)
    assert spec.description == "西装短裤 连衣裙" and spec.text == "春季上新 西装短裤 连衣裙"
    assert parse_stream_value("s1", spec.to_value()) == spec


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{oops", "not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (json.dumps({"url": "a", "catalog": "c", "fps": 3}).encode(), "unknown fields fps"),
        (json.dumps({"url": "a"}).encode(), "missing fields catalog"),
        (json.dumps({"url": 5, "catalog": "c"}).encode(), "must be strings"),
        (json.dumps({"url": "a", "catalog": "c", "sampling": "every-frame"}).encode(), "sampling"),
        (json.dumps({"url": "a", "catalog": "c", "description": "x"}).encode(), "description is a livetag.stream/v2 field"),
        (json.dumps({"url": "a", "catalog": "c", "schema": "livetag.stream/v9"}).encode(), "schema must be"),
        (json.dumps({"url": "a", "catalog": "c", "title": "x" * 2001}).encode(), "title longer than 2000"),
    ],
)
def test_malformed_stream_values_name_the_problem(value: bytes, reason: str) -> None:
    with pytest.raises(StreamRecordError, match=reason) as caught:
        parse_stream_value("s1", value)
    assert "\n" not in str(caught.value)


def test_stream_keys() -> None:
    assert stream_id_from_key(b"seller-1") == "seller-1"
    for key, reason in ((None, "no key"), (b"", "no key"), (b"\xff\xfe", "not UTF-8"), (b"x" * 300, "at most 200")):
        with pytest.raises(StreamRecordError, match=reason):
            stream_id_from_key(key)


def test_cluster_ids_and_jar_home() -> None:
    ids = {random_cluster_id() for _ in range(50)}
    assert len(ids) == 50 and all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert kafka_home({"LIVETAG_KAFKA_HOME": "/opt/k"}) == Path("/opt/k")
    assert kafka_home({}).parts[-3:] == (".cache", "livetag", "kafka")


def test_missing_tools_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="'no-such-mvn' not found: install Maven"):
        ensure_jars(tmp_path / "home", mvn="no-such-mvn")
    with pytest.raises(BrokerError, match="'no-such-java' not found: install Java 17"):
        KafkaBroker(tmp_path / "work", tmp_path / "libs", java="no-such-java").start()


@pytest.mark.kafka
def test_dev_kafka_command_starts_serves_and_stops_a_broker(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from consumers.bus.kafka import KafkaBus

    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "consumers.cli", "dev", "kafka", "--create-topics", "--topic-prefix", "dev.",
         "--work-dir", str(tmp_path / "broker"), "--heap-mb", "256"],
        cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert ready.startswith("Kafka broker ready: bootstrap 127.0.0.1:"), ready
        bootstrap = ready.split()[4]
        assert proc.stdout.readline().strip() == f"export LIVETAG_KAFKA_BOOTSTRAP_SERVERS={bootstrap}"
        admin = KafkaBus(bootstrap).admin()
        try:
            assert {"dev.streams", "dev.frames", "dev.gallery", "dev.matches", "dev.dlq"} <= set(admin.list_topics())
        finally:
            admin.close()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "Kafka broker stopped" in out
    assert (tmp_path / "broker" / "broker.log").stat().st_size > 0, "the broker logs to its file"


def test_a_kept_broker_restarts_on_its_data(tmp_path: Path) -> None:
    """``livetag dev kafka --keep``: records written before a restart are read after it."""
    from consumers.bus.kafka import KafkaBus
    from consumers.bus.topics import topic_specs
    from consumers.settings import TopicSettings

    libs = ensure_jars(kafka_home())
    work = tmp_path / "kept"
    broker = KafkaBroker(work, libs, keep=True)
    try:
        bus = KafkaBus(broker.start())
        bus.create_topics(topic_specs(TopicSettings(prefix="keep.", partitions=1)))
        producer = bus.producer()
        producer.produce("keep.matches", b"s1", b"before the restart")
        producer.flush(10)
        producer.close()
    finally:
        broker.stop()
    again = KafkaBroker(work, libs, keep=True)
    try:
        reader = KafkaBus(again.start()).consumer(["keep.matches"], None)
        values: list[bytes | None] = []
        for _ in range(40):
            values += [r.value for r in reader.poll(0.5, 10)]
            if values:
                break
        reader.close()
        assert values == [b"before the restart"]
    finally:
        again.stop()


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)
STREAM_DOCS = st.dictionaries(
    st.sampled_from(["url", "catalog", "title", "sampling", "description", "schema", "extra"]),
    st.one_of(JSON_VALUES, st.sampled_from(["rtmp://h/live/x", "fps:2", "keyframes", "livetag.stream/v2"])),
    max_size=7,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(doc=STREAM_DOCS, raw=st.binary(max_size=40))
def test_fuzzed_stream_records_parse_or_raise_the_record_error(doc: dict[str, Any], raw: bytes) -> None:
    for value in (json.dumps(doc).encode(), raw):
        try:
            spec = parse_stream_value("s1", value)
        except StreamRecordError:
            continue
        assert spec.url and spec.catalog and len(spec.title) <= 2000 and len(spec.description) <= 2000
        assert parse_stream_value("s1", spec.to_value()) == spec


@settings(max_examples=300, deadline=None, derandomize=True)
@given(key=st.one_of(st.none(), st.binary(max_size=20)), doc=JSON_VALUES, raw=st.binary(max_size=40))
def test_fuzzed_transcript_records_parse_or_raise_the_transcript_error(key: bytes | None, doc: Any, raw: bytes) -> None:
    from consumers.text.transcripts import TranscriptError, parse_record

    for value in (json.dumps(doc).encode(), raw):
        try:
            segment = parse_record(key, value)
        except TranscriptError:
            continue
        assert segment.text.strip() and segment.source in ("speech", "ocr", "title")
        assert segment.start is None or segment.start >= 0
