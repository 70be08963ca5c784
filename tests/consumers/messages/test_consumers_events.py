"""Match events v1 and dead letters: wire forms, the JSON schema, and round trips."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest

from consumers.bus import TopicSpec
from consumers.bus.in_process import InProcessBus
from consumers.messages.dead_letter import DeadLetter, DeadLetterError, send_to_dlq
from consumers.messages.match_event import (
    MAX_EVIDENCE,
    Evidence,
    MatchEvent,
    MatchEventError,
    load_schema,
    make_event_id,
)
from stream.clock import FakeClock


def _event(**overrides: Any) -> MatchEvent:
    fields: dict[str, Any] = {
        "event": "match.started",
        "event_id": make_event_id("s1", 12.5, "i000001", "match.started", 0),
        "stream_id": "s1",
        "item_id": "i000001",
        "score": 3.25,
        "vote_share": 0.8,
        "votes": 6,
        "segment_start": 12.5,
        "segment_end": None,
        "evidence": tuple(
            Evidence(12.5 + i, (1.0, 2.0, 30.0, 40.0), f"img{i}", (0.0, 0.0, 10.0, 10.0) if i else None, 0.5 + i / 20)
            for i in range(8)
        ),
        "detector_version": "2026.11.22-1",
        "embedder_version": "2026.11.22-2",
        "emitted_at": 1_700_000_000.5,
    }
    fields.update(overrides)
    return MatchEvent(**fields)


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"].endswith("match_event.v1.json")


@pytest.mark.parametrize("kind", ["match.started", "match.updated", "match.ended"])
def test_event_validates_and_round_trips(kind: str) -> None:
    event = _event(event=kind, segment_end=20.0 if kind == "match.ended" else None)
    doc = json.loads(event.to_json())
    jsonschema.validate(doc, load_schema(), cls=jsonschema.Draft202012Validator)
    assert doc["schema"] == "livetag.match/v1"
    assert len(doc["evidence"]) == MAX_EVIDENCE
    assert [e["similarity"] for e in doc["evidence"]] == sorted((e["similarity"] for e in doc["evidence"]), reverse=True)
    back = MatchEvent.from_json(event.to_json())
    assert back.to_dict() == doc
    key, value, headers = event.to_record()
    assert key == b"s1" and MatchEvent.from_json(value) == back
    assert ("event", kind.encode()) in headers


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d.update(extra=1), "(root)"),
        (lambda d: d.pop("item_id"), "(root)"),
        (lambda d: d.update(event="match.paused"), "event"),
        (lambda d: d.update(schema="livetag.match/v3"), "schema"),
        (lambda d: d.update(vote_share=1.5), "vote_share"),
        (lambda d: d["segment"].update(end="soon"), "segment/end"),
        (lambda d: d["evidence"][0].update(frame_box=[1, 2, 3]), "evidence/0/frame_box"),
        (lambda d: d["evidence"][0].update(note="x"), "evidence/0"),
        (lambda d: d["models"].pop("embedder"), "models"),
        (lambda d: d.update(event_id="not-a-uuid"), "event_id"),
    ],
)
def test_bad_documents_are_rejected_with_the_field(mutate: Any, where: str) -> None:
    doc = _event().to_dict()
    mutate(doc)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, load_schema(), cls=jsonschema.Draft202012Validator)
    with pytest.raises(MatchEventError, match=re.escape(f"at {where}:")):
        MatchEvent.from_dict(doc)


@pytest.mark.parametrize("text", [b"{", b"[1, 2]", b"\xff\xfe"])
def test_bad_json_is_a_one_line_error(text: bytes) -> None:
    with pytest.raises(MatchEventError) as info:
        MatchEvent.from_json(text)
    assert "\n" not in str(info.value)


def test_event_ids_are_deterministic_and_distinct() -> None:
    ids = {
        make_event_id(s, start, item, kind, seq)
        for s in ("s1", "s2")
        for start in (0.0, 1.5)
        for item in ("a", "b")
        for kind in ("match.started", "match.ended")
        for seq in (0, 1)
    }
    assert len(ids) == 32
    assert make_event_id("s1", 1.5, "a", "match.started", 0) == make_event_id("s1", 1.5000000001, "a", "match.started", 0)


@pytest.mark.parametrize("bad", [{"event": "match.lost"}, {"stream_id": ""}, {"score": float("nan")}, {"score": -1.0}])
def test_constructor_rejects_bad_fields(bad: dict[str, Any]) -> None:
    with pytest.raises(MatchEventError):
        _event(**bad)


# -- dead letters ---------------------------------------------------------------------------------


def test_dead_letter_keeps_the_original_record_through_the_bus() -> None:
    clock = FakeClock()
    bus = InProcessBus(clock)
    bus.create_topics([TopicSpec("frames", partitions=3), TopicSpec("dlq")])
    original_headers = [("codec", b"h264"), ("lt-dlq-reason", b"a header that looks like ours")]
    bus.producer().produce("frames", b"s1", b"\x00\x01bad", original_headers)
    (record,) = bus.consumer(["frames"], "g").poll(0)

    send_to_dlq(bus.producer(), record, ValueError("cannot decode\npacket"), stage="decode", clock=clock)
    (dead,) = bus.consumer(["dlq"], "g").poll(0)
    assert dead.key == b"s1" and dead.value == b"\x00\x01bad"

    letter = DeadLetter.from_record(dead)
    assert (letter.topic, letter.partition, letter.offset) == ("frames", record.partition, record.offset)
    assert letter.headers == original_headers
    assert letter.reason == "cannot decode packet"
    assert letter.error_class == "ValueError" and letter.stage == "decode"
    assert letter.failed_at == clock.now()
    restored = letter.original()
    assert (restored.topic, restored.key, restored.value, restored.headers) == (
        "frames",
        b"s1",
        b"\x00\x01bad",
        original_headers,
    )


def test_dead_letter_of_a_tombstone_keeps_none() -> None:
    bus = InProcessBus(FakeClock())
    bus.producer().produce("streams", b"s9", None)
    (record,) = bus.consumer(["streams"], None).poll(0)
    letter = DeadLetter.from_exception(record, KeyError("x"), "ingest", failed_at=5.0)
    key, value, headers = letter.to_record()
    assert value == b""
    bus.producer().produce("dlq", key, value, headers)
    (dead,) = bus.consumer(["dlq"], None).poll(0)
    assert DeadLetter.from_record(dead).value is None


def test_a_record_that_is_not_a_dead_letter_is_refused() -> None:
    bus = InProcessBus(FakeClock())
    bus.producer().produce("dlq", b"k", b"v", [("lt-dlq-topic", b"frames")])
    (rec,) = bus.consumer(["dlq"], None).poll(0)
    with pytest.raises(DeadLetterError, match="lacks"):
        DeadLetter.from_record(rec)
