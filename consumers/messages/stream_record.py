"""The ``streams`` topic record: which live stream to ingest and how.

Key = stream id (UTF-8). Value = JSON object with exactly these fields::

    {"url": "rtmp://host/live/abc", "catalog": "shop-42", "title": "Spring sale", "sampling": "keyframes"}

``url`` and ``catalog`` are required; ``title`` defaults to ``""`` and ``sampling`` to ``"keyframes"``
(see ``stream.sampling``). Version 2 (``"schema": "livetag.stream/v2"``) adds ``description``, free
text about what is sold; a record without ``schema`` is v1. Title and description are at most
``MAX_TEXT_CHARS`` characters; ingest publishes them to ``transcripts`` (source ``title``) for the
text cues. Unknown fields are rejected so a typo never passes silently. A record with a null value
(tombstone) stops the stream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from stream.errors import LiveTagError, SamplingSpecError
from stream.sampling import SamplingSpec

FIELDS = ("url", "catalog", "title", "sampling", "description", "schema")
SCHEMA_V1, SCHEMA_V2 = "livetag.stream/v1", "livetag.stream/v2"
#: Longest title or description accepted (characters).
MAX_TEXT_CHARS = 2000
REQUIRED = ("url", "catalog")
#: Longest stream id accepted (bytes).
MAX_STREAM_ID = 200


class StreamRecordError(LiveTagError):
    """A ``streams`` record is malformed (key, JSON, fields or sampling)."""


@dataclass(frozen=True)
class StreamSpec:
    """One stream to ingest.

    Attributes:
        stream_id: The record key.
        url: Source URL or file path.
        catalog: Catalog the stream's products come from (inference searches only this catalog).
        title: The stream's title (free text; read by the text cues).
        sampling: Validated sampling (keyframes or fps:N).
        description: What the stream sells, free text (v2; read by the text cues).
    """

    stream_id: str
    url: str
    catalog: str
    title: str
    sampling: SamplingSpec
    description: str = ""

    @property
    def text(self) -> str:
        """Title and description, for the text cues."""
        return " ".join(t for t in (self.title.strip(), self.description.strip()) if t)

    def to_value(self) -> bytes:
        """The JSON value for the ``streams`` topic (v1 unless it has a description)."""
        doc = {"url": self.url, "catalog": self.catalog, "title": self.title, "sampling": str(self.sampling)}
        if self.description:
            doc.update(description=self.description, schema=SCHEMA_V2)
        return json.dumps(doc, ensure_ascii=False, sort_keys=True).encode()


def stream_id_from_key(key: bytes | None) -> str:
    """The stream id of a record key; raises StreamRecordError when absent or not UTF-8."""
    if not key:
        raise StreamRecordError("streams record has no key; the key must be the stream id")
    if len(key) > MAX_STREAM_ID:
        raise StreamRecordError(f"stream id is {len(key)} bytes; at most {MAX_STREAM_ID} are allowed")
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StreamRecordError("stream id (record key) is not UTF-8") from exc


def parse_stream_value(stream_id: str, value: bytes) -> StreamSpec:
    """Validate a non-null ``streams`` value.

    Raises:
        StreamRecordError: Bad JSON, not an object, unknown or missing fields, wrong types, bad sampling.
    """
    try:
        doc = json.loads(value)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StreamRecordError(f"stream {stream_id}: value is not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise StreamRecordError(f"stream {stream_id}: value must be a JSON object, got {type(doc).__name__}")
    unknown = sorted(set(doc) - set(FIELDS))
    if unknown:
        raise StreamRecordError(f"stream {stream_id}: unknown fields {', '.join(unknown)}; allowed: {', '.join(FIELDS)}")
    missing = [f for f in REQUIRED if not doc.get(f)]
    if missing:
        raise StreamRecordError(f"stream {stream_id}: missing fields {', '.join(missing)}")
    wrong = [f for f in FIELDS if f in doc and not isinstance(doc[f], str)]
    if wrong:
        raise StreamRecordError(f"stream {stream_id}: fields {', '.join(wrong)} must be strings")
    schema = doc.get("schema", SCHEMA_V1)
    if schema not in (SCHEMA_V1, SCHEMA_V2):
        raise StreamRecordError(f"stream {stream_id}: schema must be {SCHEMA_V1} or {SCHEMA_V2}, got {schema!r}")
    if "description" in doc and schema != SCHEMA_V2:
        raise StreamRecordError(f"stream {stream_id}: description is a {SCHEMA_V2} field; add \"schema\": \"{SCHEMA_V2}\"")
    long = [f for f in ("title", "description") if len(doc.get(f, "")) > MAX_TEXT_CHARS]
    if long:
        raise StreamRecordError(f"stream {stream_id}: {', '.join(long)} longer than {MAX_TEXT_CHARS} characters")
    try:
        sampling = SamplingSpec.parse(doc.get("sampling") or "keyframes")
    except SamplingSpecError as exc:
        raise StreamRecordError(f"stream {stream_id}: bad sampling: {exc}") from exc
    return StreamSpec(stream_id, doc["url"], doc["catalog"], doc.get("title", ""), sampling, doc.get("description", ""))


def make_stream_value(url: str, catalog: str, title: str = "", sampling: str = "keyframes", description: str = "") -> bytes:
    """The JSON value announcing a stream (validated the same way the ingest worker reads it)."""
    doc = {"url": url, "catalog": catalog, "title": title, "sampling": sampling}
    if description:
        doc.update(description=description, schema=SCHEMA_V2)
    return parse_stream_value("-", json.dumps(doc).encode()).to_value()
