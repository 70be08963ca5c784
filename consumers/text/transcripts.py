"""Transcript records (topic ``transcripts``) and the text files replay and evaluation read.

A speech-to-text service outside LiveTag publishes what the seller says on ``transcripts``, key =
stream id, value = JSON ``{"text": str, "start": float, "end": float, "source": "speech"}``
(``start``/``end`` in the stream's seconds, the clock of the frames' pts; ``source`` optional,
``speech`` or ``ocr``; ``title`` for a stream's title). Records are data: bounded, validated, never
a path or code.

Files (``livetag replay --transcripts DIR``, Tianchi ``video_text/``): ``DIR/<stream_id>.txt`` is the
whole transcript of the stream without times: it is about the whole stream, so it counts from the
first frame to the last without fading (``start`` None), as a title does;
``DIR/<stream_id>.jsonl`` holds one record value per line. Titles (Tianchi ``image_text/``):
``DIR/<item_id>.txt``, one title per item. Files are read as UTF-8 (a byte-order mark is dropped)
or, failing that, GB18030, the encoding of Chinese text saved on many desktops. A file that is
neither, or a ``.jsonl`` line that is not a valid record, is skipped with its reason in the log: one
bad file does not stop a replay or an evaluation.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream.errors import LiveTagError

#: Longest text of one record, in characters; longer text is refused (the producer should split it).
MAX_TEXT_CHARS = 4000
#: Largest value of one record, in bytes.
MAX_RECORD_BYTES = 64 * 1024
RECORD_SOURCES = ("speech", "ocr", "title")
#: Encodings tried, in order, for the text files.
FILE_ENCODINGS = ("utf-8-sig", "gb18030")

log = logging.getLogger(__name__)


class TranscriptError(LiveTagError):
    """A transcript record or file is malformed."""


@dataclass(frozen=True)
class TranscriptSegment:
    """One piece of a stream's text.

    Attributes:
        stream_id: The stream.
        text: What was said or shown.
        start: Stream seconds it starts (None: the whole stream, e.g. a title).
        end: Stream seconds it ends (None when unknown).
        source: ``speech``, ``ocr`` or ``title``.
    """

    stream_id: str
    text: str
    start: float | None = None
    end: float | None = None
    source: str = "speech"

    def to_record(self) -> tuple[bytes, bytes]:
        """``(key, value)`` for the ``transcripts`` topic."""
        doc = {"text": self.text, "start": self.start, "end": self.end, "source": self.source}
        return self.stream_id.encode(), json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def _time(doc: dict[str, Any], name: str) -> float | None:
    value = doc.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise TranscriptError(f"transcript {name!r} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


def parse_segment(stream_id: str, doc: Any) -> TranscriptSegment:
    """Validate one decoded record value (a JSON object) of ``stream_id``."""
    if not isinstance(doc, dict):
        raise TranscriptError("a transcript record must be a JSON object {text, start, end}")
    text = doc.get("text")
    if not isinstance(text, str) or not text.strip():
        raise TranscriptError("a transcript record needs a non-empty string 'text'")
    if len(text) > MAX_TEXT_CHARS:
        raise TranscriptError(f"transcript text of {len(text)} characters exceeds {MAX_TEXT_CHARS}; split it")
    source = doc.get("source", "speech")
    if source not in RECORD_SOURCES:
        raise TranscriptError(f"transcript source must be one of {', '.join(RECORD_SOURCES)}, got {source!r}")
    start, end = _time(doc, "start"), _time(doc, "end")
    if start is not None and end is not None and end < start:
        raise TranscriptError(f"transcript ends ({end}) before it starts ({start})")
    return TranscriptSegment(stream_id, text.strip(), start, end, source)


def parse_record(key: bytes | None, value: bytes | None) -> TranscriptSegment:
    """A ``transcripts`` record -> segment; raises TranscriptError naming the problem."""
    if not key:
        raise TranscriptError("a transcript record needs the stream id as its key")
    if value is None or len(value) > MAX_RECORD_BYTES:
        size = "no" if value is None else f"{len(value)} bytes of"
        raise TranscriptError(f"a transcript record needs a value of at most {MAX_RECORD_BYTES} bytes, got {size} value")
    try:
        stream_id = key.decode("utf-8")
        doc = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise TranscriptError(f"transcript record is not UTF-8 JSON: {exc}") from exc
    return parse_segment(stream_id, doc)


def _read_text(path: Path) -> str:
    """The stripped text of ``path`` in the first of :data:`FILE_ENCODINGS` that decodes it.

    Raises:
        TranscriptError: The file cannot be read or is in none of those encodings.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TranscriptError(f"cannot read {path}: {exc}") from exc
    for encoding in FILE_ENCODINGS:
        try:
            return raw.decode(encoding).strip()
        except UnicodeDecodeError:
            continue
    raise TranscriptError(f"{path} is not text in {' or '.join(FILE_ENCODINGS)}")


def _text_or_skip(path: Path) -> str:
    try:
        return _read_text(path)
    except TranscriptError as exc:
        log.warning("skipping %s", exc)
        return ""


def read_transcripts(folder: Path) -> dict[str, list[TranscriptSegment]]:
    """stream id -> its segments from ``folder/<stream_id>.txt`` and ``.jsonl`` files (see module docs);
    an unreadable file or a bad line is skipped, its reason logged.

    Raises:
        TranscriptError: The folder is missing.
    """
    if not folder.is_dir():
        raise TranscriptError(f"transcript folder {folder} not found; pass a folder of <stream_id>.txt files")
    out: dict[str, list[TranscriptSegment]] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix == ".txt" and path.is_file():
            text = _text_or_skip(path)[:MAX_TEXT_CHARS]
            if text:
                out.setdefault(path.stem, []).append(TranscriptSegment(path.stem, text, None, None))
        elif path.suffix == ".jsonl" and path.is_file():
            for number, line in enumerate(_text_or_skip(path).splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    segment = parse_segment(path.stem, json.loads(line))
                except (ValueError, TranscriptError) as exc:
                    log.warning("skipping line %s:%d: %s", path, number, exc)
                    continue
                out.setdefault(path.stem, []).append(segment)
    return out


def read_titles(folder: Path) -> dict[str, str]:
    """item id -> title from ``folder/<item_id>.txt`` (empty or unreadable files give no title, the
    latter with its reason in the log)."""
    if not folder.is_dir():
        raise TranscriptError(f"title folder {folder} not found; pass a folder of <item_id>.txt files")
    titles = {path.stem: _text_or_skip(path)[:MAX_TEXT_CHARS] for path in sorted(folder.glob("*.txt")) if path.is_file()}
    return {item: title for item, title in titles.items() if title}
