"""Open match segments on the compacted ``segments`` topic, so a partition's next owner carries them on.

An inference consumer that is killed (``kill -9``, an OOM, a lost node) cannot end its open segments;
without their state the partition's next owner would never send their ``match.ended`` and would start
new segments with new ids. So with every match event the stage also writes the stream's open segment
to ``segments`` (key: the stream id, as on ``frames``, so both topics put a stream on the same
partition number): a :class:`SegmentState` while a match runs, a tombstone when it ends. The writes
go out with the batch's events, before its frame offsets are committed.

A consumer that is assigned a ``frames`` partition reads the same partition of ``segments`` to its end
and adopts the open segments (:meth:`consumers.voting.voter.StreamVoter.adopt`): the segment goes on under
the same event ids (they derive from the segment, not from who computes them); redelivered frames the
state already counted are skipped; a stream that sends no more frames is ended by idle eviction.

Records are data: a value is validated and bounded before it is used; a bad one is logged and skipped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from consumers.bus import Record
from consumers.messages.match_event import MAX_EVIDENCE, Evidence
from stream.errors import LiveTagError

SEGMENT_SCHEMA = "livetag.segment/v1"
SCHEMA_HEADER = "lt-schema"
#: Header naming the consumer group whose voter wrote the record (groups never adopt each other's).
GROUP_HEADER = "lt-group"
#: Longest value accepted from the topic (a state with 5 evidence items is under 2 KiB).
MAX_VALUE_BYTES = 16_384
_FIELDS = {"schema", "stream_id", "item_id", "segment_start", "session", "updates", "last_update_pts", "score",
           "votes", "last_vote_pts", "last_pts", "last_wallclock", "evidence"}


class SegmentStateError(LiveTagError):
    """A ``segments`` record is not a valid open-segment state."""


@dataclass(frozen=True)
class SegmentState:
    """One stream's running match, as its voter holds it.

    Attributes:
        stream_id: The stream.
        item_id: The matched item.
        segment_start: Stream seconds of the segment's first vote.
        session: Wall clock of the segment's first frame (part of the event ids), or None.
        updates: ``match.updated`` events sent so far (the next one is ``updates + 1``).
        last_update_pts: Stream seconds of the latest started/updated event.
        score: The item's decayed score at ``last_pts``.
        votes: Votes in the item's run.
        last_vote_pts: Stream seconds of the item's latest vote.
        last_pts: Stream seconds of the latest frame the voter counted.
        last_wallclock: Ingest wall clock of that frame, or None.
        evidence: The strongest supporting observations (at most ``MAX_EVIDENCE``).
    """

    stream_id: str
    item_id: str
    segment_start: float
    session: float | None
    updates: int
    last_update_pts: float
    score: float
    votes: int
    last_vote_pts: float
    last_pts: float
    last_wallclock: float | None
    evidence: tuple[Evidence, ...] = ()

    def to_value(self) -> bytes:
        doc: dict[str, Any] = {
            "schema": SEGMENT_SCHEMA, "stream_id": self.stream_id, "item_id": self.item_id,
            "segment_start": self.segment_start, "session": self.session, "updates": self.updates,
            "last_update_pts": self.last_update_pts, "score": self.score, "votes": self.votes,
            "last_vote_pts": self.last_vote_pts, "last_pts": self.last_pts, "last_wallclock": self.last_wallclock,
            "evidence": [e.to_dict() for e in self.evidence[:MAX_EVIDENCE]],
        }  # fmt: skip
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_value(cls, value: bytes) -> SegmentState:
        """Parse and validate a ``segments`` value (raises SegmentStateError with the reason)."""
        if len(value) > MAX_VALUE_BYTES:
            raise SegmentStateError(f"segment state of {len(value)} bytes is over {MAX_VALUE_BYTES}")
        try:
            doc = json.loads(value)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SegmentStateError(f"segment state is not JSON: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("schema") != SEGMENT_SCHEMA:
            raise SegmentStateError(f"segment state must be a {SEGMENT_SCHEMA} object")
        if set(doc) != _FIELDS:
            raise SegmentStateError(f"segment state fields differ: missing {sorted(_FIELDS - set(doc))}, "
                                    f"unknown {sorted(set(doc) - _FIELDS)}")
        try:
            state = cls(
                stream_id=_text(doc["stream_id"]), item_id=_text(doc["item_id"]),
                segment_start=_number(doc["segment_start"]), session=_optional(doc["session"]),
                updates=_count(doc["updates"]), last_update_pts=_number(doc["last_update_pts"]),
                score=_number(doc["score"]), votes=_count(doc["votes"]), last_vote_pts=_number(doc["last_vote_pts"]),
                last_pts=_number(doc["last_pts"]), last_wallclock=_optional(doc["last_wallclock"]),
                evidence=tuple(Evidence.from_dict(e) for e in list(doc["evidence"])[:MAX_EVIDENCE]),
            )  # fmt: skip
        except (TypeError, ValueError, KeyError) as exc:
            raise SegmentStateError(f"segment state has a bad field: {exc}") from exc
        if state.last_pts < state.segment_start or state.score < 0:
            raise SegmentStateError("segment state is inconsistent (last_pts before the start, or a negative score)")
        return state

    def to_record(self, topic: str, group: str) -> Record:
        """The record of this state, written by consumer group ``group``."""
        return Record(topic, self.stream_id.encode(), self.to_value(), _headers(group))


def tombstone(topic: str, stream_id: str, group: str) -> Record:
    """The record that forgets ``stream_id``'s segment (compaction then drops the key)."""
    return Record(topic, stream_id.encode(), None, _headers(group))


def _headers(group: str) -> list[tuple[str, bytes]]:
    return [(SCHEMA_HEADER, SEGMENT_SCHEMA.encode()), (GROUP_HEADER, group.encode())]


def latest_states(records: Iterable[Record], group: str | None = None) -> tuple[dict[str, SegmentState], list[str]]:
    """The open segments that ``records`` (one topic, in offset order) leave, and the reasons of bad ones.

    Args:
        records: The topic's records in offset order.
        group: Only records written by this consumer group count (None: all).

    Returns:
        ``({stream_id: state}, [problem, ...])``: a tombstone removes its stream; a bad value is skipped
        with its reason (the stream keeps its previous state: a later good record replaces it).
    """
    states: dict[str, SegmentState] = {}
    problems: list[str] = []
    for record in records:
        if group is not None and record.header(GROUP_HEADER) != group.encode():
            continue
        key = (record.key or b"").decode("utf-8", "replace")
        if record.value is None:
            states.pop(key, None)
            continue
        try:
            state = SegmentState.from_value(record.value)
        except SegmentStateError as exc:
            problems.append(f"{record.topic}[{record.partition}]@{record.offset}: {exc}")
            continue
        if state.stream_id != key:
            problems.append(f"{record.topic}[{record.partition}]@{record.offset}: key {key!r} != stream {state.stream_id!r}")
            continue
        states[key] = state
    return states, problems


def _text(value: object) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 200:
        raise ValueError(f"expected a string of 1-200 characters, got {value!r:.60}")
    return value


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or abs(value) > 1e12:
        raise ValueError(f"expected a finite number, got {value!r:.60}")
    return float(value)


def _optional(value: object) -> float | None:
    return None if value is None else _number(value)


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10**9:
        raise ValueError(f"expected a count, got {value!r:.60}")
    return value

