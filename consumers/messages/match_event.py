"""Match events: what the pipeline publishes on the ``matches`` topic.

The wire form is JSON, described by ``consumers/messages/schemas/match_event.v1.json`` (extra fields are
rejected). An event whose match the stream's text supported is v2
(``consumers/messages/schemas/match_event.v2.json``): v1 plus a ``text`` list quoting that text; every other
event stays v1, so a stream without text publishes exactly what it did before. ``event_id`` is derived from the stream, the segment start, the item, the event kind, a
per-segment sequence number and the wall clock of the segment's first frame, so an event re-emitted
for redelivered records has the same id and a subscriber can de-duplicate on it, while a stream whose
pts restarted (a publisher reconnect) never reuses an earlier event's id.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from stream.errors import LiveTagError

SCHEMA_NAME = "livetag.match/v1"
SCHEMA_NAME_V2 = "livetag.match/v2"
SCHEMA_FILES = {SCHEMA_NAME: "match_event.v1.json", SCHEMA_NAME_V2: "match_event.v2.json"}
SCHEMA_FILE = SCHEMA_FILES[SCHEMA_NAME]
#: Header of a match-event record: stream seconds of the frame whose processing emitted the event.
FRAME_PTS_HEADER = "lt-frame-pts"
EventKind = Literal["match.started", "match.updated", "match.ended"]
EVENT_KINDS: tuple[str, ...] = ("match.started", "match.updated", "match.ended")
#: Evidence items kept per event (the most similar ones).
MAX_EVIDENCE = 5
#: Text snippets kept per event (the newest).
MAX_TEXT = 8
_ID_NAMESPACE = uuid.UUID("6f1c1a52-3d55-5b8e-9a43-1e2f4c0b7d21")

Box = tuple[float, float, float, float]


class MatchEventError(LiveTagError):
    """A document is not a valid v1 match event."""


def make_event_id(
    stream_id: str, segment_start: float, item_id: str, event: str, sequence: int, session: float | None = None
) -> str:
    """A deterministic UUID (v5) naming one event of one segment.

    Args:
        stream_id: The stream.
        segment_start: Segment start in stream seconds (rounded to the microsecond).
        item_id: The matched catalog item.
        event: The event kind.
        sequence: 0 for started/ended, n for the n-th update of the segment.
        session: Wall-clock seconds (the ingest's, from the frame record) of the segment's first
            frame. A publisher that reconnects restarts its pts, so the same segment start can come
            back; the wall clock does not. A redelivered record carries the same wall clock, so the
            id stays the same for at-least-once redelivery. None leaves it out (ids as before).
    """
    name = f"{stream_id}|{segment_start:.6f}|{item_id}|{event}|{sequence}"
    if session is not None:
        name += f"|{session:.3f}"
    return str(uuid.uuid5(_ID_NAMESPACE, name))


@dataclass(frozen=True)
class Evidence:
    """One supporting observation.

    Attributes:
        pts: Stream seconds of the frame.
        frame_box: ``x1, y1, x2, y2`` of the detection in frame pixels.
        gallery_image_id: The shop image that matched.
        item_box: Box of the item in the shop image, or None when unknown.
        similarity: Cosine similarity in [-1, 1].
    """

    pts: float
    frame_box: Box
    gallery_image_id: str
    item_box: Box | None
    similarity: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "pts": float(self.pts),
            "frame_box": [float(v) for v in self.frame_box],
            "gallery_image_id": self.gallery_image_id,
            "item_box": None if self.item_box is None else [float(v) for v in self.item_box],
            "similarity": min(1.0, max(-1.0, float(self.similarity))),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Evidence:
        item_box = doc["item_box"]
        return cls(
            pts=float(doc["pts"]),
            frame_box=_box(doc["frame_box"]),
            gallery_image_id=str(doc["gallery_image_id"]),
            item_box=None if item_box is None else _box(item_box),
            similarity=float(doc["similarity"]),
        )


def _box(values: Sequence[float]) -> Box:
    x1, y1, x2, y2 = (float(v) for v in values)
    return (x1, y1, x2, y2)


@dataclass(frozen=True)
class MatchEvent:
    """One match event (see the module docstring and the JSON schema).

    Attributes:
        event: ``match.started``, ``match.updated`` or ``match.ended``.
        event_id: Deterministic id (:func:`make_event_id`).
        stream_id: The stream.
        item_id: The catalog item on screen.
        score: The item's decayed vote score (>= 0).
        vote_share: The item's share of all decayed votes of the stream, in [0, 1].
        votes: Number of observations that voted for the item in this segment.
        segment_start: Stream seconds of the first supporting evidence.
        segment_end: Stream seconds of the end, None while the segment runs.
        evidence: The most similar observations (at most MAX_EVIDENCE are published).
        detector_version: Version of the detector model package.
        embedder_version: Version of the embedder model package.
        emitted_at: Unix seconds when the event was made.
        text: Text snippets that supported the match (``source``, ``text``, ``pts``,
            ``title_score``); non-empty makes the document v2.
    """

    event: EventKind
    event_id: str
    stream_id: str
    item_id: str
    score: float
    vote_share: float
    votes: int
    segment_start: float
    segment_end: float | None
    evidence: tuple[Evidence, ...] = field(default_factory=tuple)
    detector_version: str = ""
    embedder_version: str = ""
    emitted_at: float = 0.0
    text: tuple[Mapping[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.event not in EVENT_KINDS:
            raise MatchEventError(f"unknown event kind {self.event!r}; use one of {', '.join(EVENT_KINDS)}")
        if not self.stream_id or not self.item_id:
            raise MatchEventError("a match event needs a stream_id and an item_id")
        if not math.isfinite(self.score) or self.score < 0:
            raise MatchEventError(f"score must be a finite number >= 0, got {self.score}")

    @property
    def schema(self) -> str:
        """``livetag.match/v2`` when text supported the match, else ``livetag.match/v1``."""
        return SCHEMA_NAME_V2 if self.text else SCHEMA_NAME

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (evidence sorted by similarity, best first, and bounded)."""
        best = sorted(self.evidence, key=lambda e: -e.similarity)[:MAX_EVIDENCE]
        doc: dict[str, Any] = {
            "schema": self.schema,
            "event": self.event,
            "event_id": self.event_id,
            "stream_id": self.stream_id,
            "item_id": self.item_id,
            "score": float(self.score),
            "vote_share": min(1.0, max(0.0, float(self.vote_share))),
            "votes": int(self.votes),
            "segment": {"start": float(self.segment_start), "end": _opt_float(self.segment_end)},
            "evidence": [e.to_dict() for e in best],
            "models": {"detector": self.detector_version, "embedder": self.embedder_version},
            "emitted_at": float(self.emitted_at),
        }
        if self.text:
            doc["text"] = [dict(t) for t in self.text[-MAX_TEXT:]]
        return doc

    def to_json(self) -> str:
        """Compact JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    def to_record(self) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
        """``(key, value, headers)`` for the ``matches`` topic; key = stream id."""
        headers = [("lt-schema", self.schema.encode()), ("event", self.event.encode())]
        return self.stream_id.encode(), self.to_json().encode(), headers

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> MatchEvent:
        """Parse a v1 or v2 document; raises MatchEventError naming the first problem."""
        validate_match_event(doc)
        segment, models = doc["segment"], doc["models"]
        return cls(
            event=doc["event"],
            event_id=doc["event_id"],
            stream_id=doc["stream_id"],
            item_id=doc["item_id"],
            score=float(doc["score"]),
            vote_share=float(doc["vote_share"]),
            votes=int(doc["votes"]),
            segment_start=float(segment["start"]),
            segment_end=_opt_float(segment["end"]),
            evidence=tuple(Evidence.from_dict(e) for e in doc["evidence"]),
            detector_version=models["detector"],
            embedder_version=models["embedder"],
            emitted_at=float(doc["emitted_at"]),
            text=tuple(dict(t) for t in doc.get("text", ())),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> MatchEvent:
        """Parse JSON text or bytes; raises MatchEventError on bad JSON or a bad document."""
        try:
            doc = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MatchEventError(f"match event is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise MatchEventError("match event must be a JSON object")
        return cls.from_dict(doc)


def _opt_float(value: float | None) -> float | None:
    return None if value is None else float(value)


@lru_cache(maxsize=2)
def load_schema(name: str = SCHEMA_NAME) -> dict[str, Any]:
    """The JSON schema of ``name`` (``livetag.match/v1`` or ``/v2``) shipped in ``consumers/messages/schemas``."""
    text = resources.files("consumers.messages").joinpath("schemas", SCHEMA_FILES[name]).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@lru_cache(maxsize=2)
def _validator(name: str) -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(load_schema(name))


def validate_match_event(doc: Mapping[str, Any]) -> None:
    """Raise MatchEventError (one line, naming the field) unless ``doc`` follows the schema it names
    (v1 unless it says v2)."""
    from jsonschema.exceptions import best_match

    name = SCHEMA_NAME_V2 if doc.get("schema") == SCHEMA_NAME_V2 else SCHEMA_NAME
    error = best_match(_validator(name).iter_errors(doc))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise MatchEventError(f"invalid match event at {where}: {error.message}")
