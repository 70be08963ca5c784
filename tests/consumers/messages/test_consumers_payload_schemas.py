"""Every topic's schema against what the producers write, and against broken documents."""

from __future__ import annotations

import json
import re
from fractions import Fraction

import numpy as np
import pytest

from consumers.bus import Record
from consumers.messages.dead_letter import DeadLetter
from consumers.messages.gallery_record import GalleryEntry
from consumers.messages.payload_schemas import SCHEMAS, PayloadSchemaError, check_payload, headers_document
from consumers.messages.stream_record import make_stream_value
from consumers.text.transcripts import TranscriptSegment
from stream.packet import FramePacket
from stream.packet_chain import encode_chain


def _frame() -> FramePacket:
    return FramePacket("s1", "h264", b"\x00\x00\x00\x01\x65", b"\x01\x64", 9000, Fraction(1, 90000), 1.7e9, 3)


def test_what_the_producers_write_follows_the_schemas() -> None:
    check_payload("streams", json.loads(make_stream_value("rtmp://h/live/x", "shop", "t", "fps:2,max_rate=1")))
    check_payload("streams", json.loads(make_stream_value("rtmp://h/live/x", "shop", "t", description="西装短裤")))
    check_payload("transcripts", json.loads(TranscriptSegment("s1", "这条短裤", 1.0, 2.0).to_record()[1]))
    check_payload("transcripts", json.loads(TranscriptSegment("s1", "Spring sale", source="title").to_record()[1]))
    vector = np.ones(8, np.float32) / np.sqrt(8)
    entry = GalleryEntry("a/0.jpg", "a", vector, "shop", (1.0, 2.0, 3.0, 4.0), {"img_name": "0.jpg", "title": "短裤"})
    check_payload("gallery", json.loads(entry.to_record()[1]))
    key, value, headers = _frame().to_record()
    check_payload("frames", headers_document([*headers, ("catalog", b"shop")]))
    chain = FramePacket("s1", "h264", encode_chain([(0, b"I")]), b"", 0, Fraction(1, 25), 1.7e9, 4, False, True)
    check_payload("frames", headers_document(chain.to_record()[2]))
    letter = DeadLetter.from_exception(Record("frames", key, value, headers, 2, 7), ValueError("bad"), "decode", 1.7e9)
    check_payload("dlq", headers_document(letter.to_record()[2]))
    big = DeadLetter.from_exception(Record("frames", key, b"x" * (8 << 20), headers, 2, 8), ValueError("x"), "decode", 1.0)
    check_payload("dlq", headers_document(big.to_record()[2]))


@pytest.mark.parametrize(
    ("name", "document", "where"),
    [
        ("streams", {"url": "rtmp://h/x", "catalog": "c", "description": "no schema field"}, "(root)"),
        ("streams", {"url": "rtmp://h/x", "catalog": "c", "colour": "red"}, "(root)"),
        ("transcripts", {"text": " "}, "text"),
        ("transcripts", {"text": "x", "start": -1}, "start"),
        ("transcripts", {"text": "x", "source": "shell"}, "source"),
        ("frames", {"codec": "concat", "pts": "1", "time_base": "1/25", "wallclock": "1", "sequence": "0"}, "codec"),
        ("frames", {"codec": "h264", "pts": "1" * 40, "time_base": "1/25", "wallclock": "1", "sequence": "0"}, "pts"),
        ("frames", {"lt-wire": "1", "chain": "1", "codec": "h264", "pts": "1", "time_base": "1/25", "wallclock": "1",
                    "sequence": "0"}, "lt-wire"),
        ("dlq", {"lt-dlq-topic": "frames"}, "(root)"),
    ],
)
def test_broken_documents_are_refused_with_the_place(name: str, document: dict, where: str) -> None:
    with pytest.raises(PayloadSchemaError, match=re.escape(f"at {where}:")):
        check_payload(name, document)


def test_every_schema_loads() -> None:
    for name in SCHEMAS:
        with pytest.raises(PayloadSchemaError):
            check_payload(name, [])


def test_the_asyncapi_document_names_every_topic_and_schema() -> None:
    from pathlib import Path

    import yaml

    from consumers.settings.kafka import TOPIC_BASES

    docs = Path(__file__).resolve().parents[3] / "docs"
    api = yaml.safe_load((docs / "asyncapi.yaml").read_text(encoding="utf-8"))
    assert api["asyncapi"].startswith("3.") and set(api["channels"]) == set(TOPIC_BASES)
    refs = {m[part]["$ref"] for c in api["channels"].values() for m in c["messages"].values()
            for part in ("payload", "headers") if isinstance(m.get(part), dict) and "$ref" in m[part]}
    assert {Path(r).name for r in refs} == set(SCHEMAS.values())
    assert all((docs / ref).resolve().is_file() for ref in refs)
