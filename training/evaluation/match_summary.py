"""What one replayed stream matched: segments, scores and evidence per item.

Built from the match events of the ``matches`` topic (JSON dicts in the match event v1
format) plus, optionally, the per-frame search hits of the inference stage, which rank the
items the voter never confirmed (for recall at K).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from consumers.stage.frames import Hit


@dataclass(frozen=True)
class Evidence:
    """One piece of evidence for an item: where in which frame, against which gallery image."""

    pts: float
    frame_box: tuple[float, ...]
    gallery_image_id: str
    item_box: tuple[float, ...] | None
    similarity: float


@dataclass
class ItemTally:
    """Everything accumulated for one item of one stream."""

    matched_s: float = 0.0
    best_score: float = 0.0
    frame_score: float = 0.0
    first_match_s: float | None = None
    open_since: float | None = None
    best_evidence: Evidence | None = None
    segments: list[tuple[float, float]] = field(default_factory=list)


class MatchSummary:
    """Per-item tallies of one stream, fed event by event.

    Segments still open when the stream ends are closed at the last seen time by ``close``.
    """

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self.items: dict[str, ItemTally] = {}
        self.last_pts = 0.0
        self.events = 0
        self.frames = 0
        self.uncounted: dict[str, Evidence] = {}  # item -> its best hit below the voter's floor

    def _tally(self, item_id: str) -> ItemTally:
        return self.items.setdefault(item_id, ItemTally())

    def _keep_evidence(self, tally: ItemTally, evidence: Evidence) -> None:
        if tally.best_evidence is None or evidence.similarity > tally.best_evidence.similarity:
            tally.best_evidence = evidence

    def add_event(self, event: dict[str, Any]) -> None:
        """Account one match event (dict in the v1 format)."""
        self.events += 1
        item_id = str(event["item_id"])
        tally = self._tally(item_id)
        tally.best_score = max(tally.best_score, float(event.get("score", 0.0)))
        segment = event.get("segment") or {}
        evidence = [_evidence(raw) for raw in event.get("evidence", [])]
        for piece in evidence:
            self._keep_evidence(tally, piece)
            self.last_pts = max(self.last_pts, piece.pts)
        kind = event.get("event", "")
        if kind == "match.started":
            start = float(segment.get("start", evidence[0].pts if evidence else self.last_pts))
            decided_at = max((p.pts for p in evidence), default=start)
            if tally.first_match_s is None:
                tally.first_match_s = decided_at
            if tally.open_since is None:
                tally.open_since = start
        elif kind == "match.ended":
            start = tally.open_since if tally.open_since is not None else float(segment.get("start", 0.0))
            end_raw = segment.get("end")
            end = float(end_raw) if end_raw is not None else self.last_pts
            self._close(tally, start, end)

    def add_frame(self, pts: float, hits: list[Hit]) -> None:
        """Account the per-detection hits of one frame (each item's best similarity, times the
        detection's garment probability and the hit's text prior, counts once)."""
        self.frames += 1
        self.last_pts = max(self.last_pts, pts)
        best: dict[str, Hit] = {}
        for hit in hits:
            if not hit.counted:
                self._keep_uncounted(pts, hit)
                continue
            if hit.item_id not in best or hit.similarity * hit.prior > best[hit.item_id].similarity * best[hit.item_id].prior:
                best[hit.item_id] = hit
        for item_id, hit in best.items():
            tally = self._tally(item_id)
            tally.frame_score += max(hit.similarity, 0.0) * min(1.0, max(0.0, hit.garment)) * max(0.0, hit.prior)

    def _keep_uncounted(self, pts: float, hit: Hit) -> None:
        known = self.uncounted.get(hit.item_id)
        if known is None or hit.similarity > known.similarity:
            self.uncounted[hit.item_id] = Evidence(pts, hit.frame_box, hit.gallery_image_id, hit.item_box, hit.similarity)

    def last_resort(self) -> str | None:
        """The item of the most similar hit below the voter's floor, for a stream where no hit
        counted (the challenge needs one item per video); None without any."""
        if not self.uncounted:
            return None
        return max(self.uncounted, key=lambda i: (self.uncounted[i].similarity, i))

    def _close(self, tally: ItemTally, start: float, end: float) -> None:
        end = max(end, start)
        tally.segments.append((start, end))
        tally.matched_s += end - start
        tally.open_since = None

    def close(self, end_pts: float | None = None) -> None:
        """Close every open segment at ``end_pts`` (default: the last time seen)."""
        end = self.last_pts if end_pts is None else max(end_pts, self.last_pts)
        for tally in self.items.values():
            if tally.open_since is not None:
                self._close(tally, tally.open_since, end)

    def ranked_items(self) -> list[str]:
        """Items best first: confirmed items by matched time (ties by score), then the rest by frame score."""
        confirmed = [i for i, t in self.items.items() if t.first_match_s is not None]
        others = [i for i, t in self.items.items() if t.first_match_s is None]
        confirmed.sort(key=lambda i: (-self.items[i].matched_s, -self.items[i].best_score, i))
        others.sort(key=lambda i: (-self.items[i].frame_score, i))
        return confirmed + others

    def prediction(self) -> str | None:
        """The item with the longest matched time (ties by score), or None when nothing was matched."""
        ranked = self.ranked_items()
        if not ranked or self.items[ranked[0]].first_match_s is None:
            return None
        return ranked[0]

    def item_at(self, start_s: float, end_s: float) -> str | None:
        """The item whose matched segments overlap ``[start_s, end_s]`` the longest, or None."""
        best: tuple[float, str] | None = None
        for item_id, tally in self.items.items():
            overlap = sum(max(0.0, min(end_s, b) - max(start_s, a)) for a, b in tally.segments)
            if overlap > 0 and (best is None or overlap > best[0]):
                best = (overlap, item_id)
        return best[1] if best else None


def _evidence(raw: dict[str, Any]) -> Evidence:
    item_box = raw.get("item_box")
    return Evidence(
        pts=float(raw.get("pts", 0.0)),
        frame_box=tuple(float(v) for v in raw.get("frame_box", ())),
        gallery_image_id=str(raw.get("gallery_image_id", "")),
        item_box=tuple(float(v) for v in item_box) if item_box else None,
        similarity=float(raw.get("similarity", 0.0)),
    )
