"""Transcript records and the title / transcript files: parsing and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consumers.text.transcripts import (
    MAX_RECORD_BYTES,
    TranscriptError,
    TranscriptSegment,
    parse_record,
    read_titles,
    read_transcripts,
)


def test_a_record_round_trips() -> None:
    segment = TranscriptSegment("s1", "这个短裤", 1.5, 3.0, "speech")
    key, value = segment.to_record()
    assert parse_record(key, value) == segment
    assert parse_record(b"s1", json.dumps({"text": "标题", "source": "title"}).encode()).start is None


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (None, b'{"text": "x"}', "key"),
        (b"s1", None, "value"),
        (b"s1", b"x" * (MAX_RECORD_BYTES + 1), "at most"),
        (b"s1", b"\xff", "UTF-8 JSON"),
        (b"s1", b"[1]", "JSON object"),
        (b"s1", b'{"text": ""}', "non-empty"),
        (b"s1", b'{"text": "x", "start": "soon"}', "'start'"),
        (b"s1", b'{"text": "x", "start": 1e400}', "'start'"),
        (b"s1", b'{"text": "x", "start": -1}', "'start'"),
        (b"s1", b'{"text": "x", "start": 5, "end": 1}', "before it starts"),
        (b"s1", b'{"text": "x", "source": "/etc/passwd"}', "source"),
    ],
)
def test_bad_records_are_refused_with_the_reason(key: bytes | None, value: bytes | None, message: str) -> None:
    with pytest.raises(TranscriptError, match=message):
        parse_record(key, value)


def test_folders_of_transcripts_and_titles(tmp_path: Path) -> None:
    (tmp_path / "v1.txt").write_text("这个短裤\n", encoding="utf-8")
    (tmp_path / "v2.jsonl").write_text('{"text": "连衣裙", "start": 2.0, "end": 3.5}\n\n{"text": "外套", "start": 9}\n',
                                       encoding="utf-8")
    (tmp_path / "empty.txt").write_text("  ", encoding="utf-8")
    found = read_transcripts(tmp_path)
    assert found["v1"] == [TranscriptSegment("v1", "这个短裤", None, None)]  # untimed: the whole stream
    assert [(s.text, s.start, s.end) for s in found["v2"]] == [("连衣裙", 2.0, 3.5), ("外套", 9.0, None)]
    assert "empty" not in found
    assert read_titles(tmp_path) == {"v1": "这个短裤"}
    (tmp_path / "bad.jsonl").write_text('{"text": 3}\n', encoding="utf-8")
    with pytest.raises(TranscriptError, match=r"bad\.jsonl:1"):
        read_transcripts(tmp_path)
    with pytest.raises(TranscriptError, match="not found"):
        read_transcripts(tmp_path / "missing")
