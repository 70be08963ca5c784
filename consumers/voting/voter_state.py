"""The per-stream state the voter keeps (consumers.voting.voter): candidates, the running match, the stream."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from consumers.messages.match_event import Evidence


@dataclass
class Candidate:
    """An item with votes in one stream: its decayed score and current run (times: stream seconds)."""

    score: float
    first_pts: float
    last_pts: float
    votes: int = 0
    evidence: list[Evidence] = field(default_factory=list)
    first_wallclock: float | None = None


@dataclass
class RunningMatch:
    """The stream's open segment: its item, start, updates sent and session wall clock."""

    item_id: str
    start: float
    last_update_pts: float
    updates: int = 0
    session: float | None = None


@dataclass
class StreamState:
    """One stream: when it was last seen (monotonic), its latest pts, candidates and match."""

    last_seen: float
    last_pts: float | None = None
    candidates: dict[str, Candidate] = field(default_factory=dict)
    match: RunningMatch | None = None
    last_wallclock: float | None = None
    #: (pts, wallclock) of the last frame an adopted state counted: redelivered frames up to it are skipped
    adopted_until: tuple[float, float | None] | None = None


def clamp01(value: float) -> float:
    return min(1.0, max(0.0, float(value))) if math.isfinite(value) else 0.0
