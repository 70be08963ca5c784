"""Printing match events as they happen: one line each."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TextIO

EVENT_WORDS = {"match.started": "started", "match.updated": "updated", "match.ended": "ended"}


def format_event(event: dict[str, Any], frame_pts: float | None = None) -> str:
    """One line: stream time, stream, event, item, score, vote share (and the segment when it ended).

    The time is ``frame_pts`` (the frame that emitted the event) when given, else the segment end
    of an ended match, else the latest evidence.

    Example: ``  12.40s  demo      started  i000123  score 2.31  share 0.87``
    """
    segment = event.get("segment") or {}
    evidence = event.get("evidence") or []
    when = max((float(e.get("pts", 0.0)) for e in evidence), default=float(segment.get("start", 0.0)))
    if event.get("event") == "match.ended" and segment.get("end") is not None:
        when = float(segment["end"])
    if frame_pts is not None:
        when = frame_pts
    line = (
        f"{when:7.2f}s  {event.get('stream_id', '?'):<10} {EVENT_WORDS.get(event.get('event', ''), event.get('event')):<8} "
        f"{event.get('item_id', '?'):<10} score {float(event.get('score', 0.0)):5.2f}  "
        f"share {float(event.get('vote_share', 0.0)):4.2f}"
    )
    if event.get("event") == "match.ended":
        line += f"  segment {float(segment.get('start', 0.0)):.2f}-{float(segment.get('end') or 0.0):.2f}s"
    return line


def printer(stream: TextIO | None = None) -> Callable[[dict[str, Any], float | None], None]:
    """A sink printing :func:`format_event` lines to ``stream`` (stdout by default), flushed each time."""

    def emit(event: dict[str, Any], frame_pts: float | None = None) -> None:
        out = stream or sys.stdout
        print(format_event(event, frame_pts), file=out, flush=True)

    return emit
