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
    with pytest.raises(TranscriptError, match="not found"):
        read_transcripts(tmp_path / "missing")


def test_bad_files_and_lines_are_skipped_with_the_reason(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """One bad file or line is logged and skipped; the rest of the folder is read."""
    (tmp_path / "v1.jsonl").write_text('{"text": 3}\n{"text": "外套", "start": 9}\nnot json\n', encoding="utf-8")
    (tmp_path / "v2.txt").write_bytes(b"\xff\xfe\x00bad")  # neither UTF-8 nor GB18030
    (tmp_path / "v3.txt").write_text("这个短裤", encoding="utf-8")
    with caplog.at_level("WARNING", logger="consumers.text.transcripts"):
        found = read_transcripts(tmp_path)
        titles = read_titles(tmp_path)
    assert [(s.text, s.start) for s in found["v1"]] == [("外套", 9.0)]
    assert "v2" not in found and "v2" not in titles
    assert found["v3"][0].text == "这个短裤" and titles["v3"] == "这个短裤"
    messages = [r.getMessage() for r in caplog.records]
    assert any("v1.jsonl:1" in m for m in messages) and any("v1.jsonl:3" in m for m in messages)
    assert any("v2.txt" in m and "not text" in m for m in messages)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_titles_in_the_usual_encodings_of_chinese_text(tmp_path: Path, encoding: str) -> None:
    (tmp_path / "000001.txt").write_bytes("2019早秋新款 雪纺无袖连衣裙\n".encode(encoding))
    assert read_titles(tmp_path) == {"000001": "2019早秋新款 雪纺无袖连衣裙"}
