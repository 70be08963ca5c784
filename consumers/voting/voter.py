"""The per-stream voter: turns per-frame gallery hits into match segments with hysteresis.

Rules, per stream (times are stream seconds, pts, unless said otherwise):

* Each frame's observations become at most one weighted vote per item
  (:mod:`consumers.voting.frame_votes`: similarity, the detector's and embedder's probabilities, the
  motion, category and text factors). With ``votes_per_frame`` = N > 0 only the frame's N strongest
  item votes count (one product is sold at a time).
* Evidence is counted per stream second: a frame's votes are scaled by the stream time since the
  stream's previous analysed frame (capped at ``half_life_s``) over ``vote_interval_s`` (the
  default sampling's spacing, where the scale is 1), so keyframes 2 s apart weigh as much per
  second as four frames a second; ``vote_interval_s`` = 0 counts each frame once.
* Scores decay exponentially with ``half_life_s`` of stream time, applied as pts advances, so frames
  without detections also lower every score.
* A candidate's *run* starts at its first vote and restarts when it has had no vote for
  ``2 * half_life_s``; the run's first pts is the segment start, its last vote's pts the segment end.
* ``match.started``: no match is running and the leader has score >= ``start_score``, at least
  ``min_votes`` votes in its run, and at least ``margin`` times the runner-up's score.
* A running match switches (``ended`` + ``started``) only when another eligible item scores at
  least ``margin`` times the running one; it ends when its score falls below ``end_score``, when the
  stream ends, when pts goes backwards, or when the stream is evicted.
* ``match.updated`` at most every ``update_interval_s`` of stream time while a match runs.

State: streams are held in LRU order; a stream without frames for ``idle_timeout_s`` wall seconds
(injected clock) is evicted by ``evict_idle`` with ``match.ended``; beyond ``max_streams`` the least
recently seen stream is evicted the same way. Candidates (``max_items_per_stream``) and evidence
(``max_evidence`` per candidate) are bounded. Not thread-safe: one voter per consuming thread.

Handover (``consumers.messages.segment_state``): ``open_segment`` gives a stream's running match as a state
another consumer can ``adopt`` when the stream's partition moves; the adopted segment goes on under
the same event ids, and redelivered frames the state already counted are skipped.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from collections.abc import Sequence

from consumers.messages.match_event import EventKind, Evidence, MatchEvent, make_event_id
from consumers.messages.segment_state import SegmentState
from consumers.settings import VoterSettings
from consumers.text.text_prior import TextPriors
from consumers.voting.frame_votes import CategoryLookup, FrameVoteWeigher
from consumers.voting.observations import GalleryHit, Observation
from consumers.voting.voter_state import Candidate, RunningMatch, StreamState
from stream.clock import Clock
from stream.errors import LiveTagError

__all__ = ["CategoryLookup", "GalleryHit", "Observation", "StreamVoter", "VoterInputError", "VoterSettings"]

class VoterInputError(LiveTagError):
    """A frame given to the voter is malformed (empty stream id, non-finite pts)."""


class StreamVoter:
    """Votes per stream and emits match events (rules in the module docstring).

    Args:
        settings: Validated voter settings.
        clock: Wall clock for idle eviction and ``emitted_at``.
        categories: Catalog lookup item_id -> category indices; None turns the category check off.
        detector_version: Reported in every event.
        embedder_version: Reported in every event.
        text: Per-stream text cues; None: votes are the visual ones alone.
    """

    def __init__(
        self,
        settings: VoterSettings,
        clock: Clock,
        *,
        categories: CategoryLookup | None = None,
        detector_version: str = "",
        embedder_version: str = "",
        text: TextPriors | None = None,
    ) -> None:
        self.settings = settings
        self.text = text
        self._clock = clock
        self._versions = (detector_version, embedder_version)
        self._streams: OrderedDict[str, StreamState] = OrderedDict()
        self._run_gap = 2.0 * settings.half_life_s
        self.stats: Counter[str] = Counter()
        self._weigher = FrameVoteWeigher(settings, self.stats, categories=categories, text=text)

    def __len__(self) -> int:
        return len(self._streams)

    def current(self, stream_id: str) -> str | None:
        """The item of the running match of ``stream_id``, or None."""
        state = self._streams.get(stream_id)
        return state.match.item_id if state is not None and state.match is not None else None

    # -- input -----------------------------------------------------------------------------------
    def observe(
        self, stream_id: str, pts: float, observations: Sequence[Observation], wallclock: float | None = None
    ) -> list[MatchEvent]:
        """Account one processed frame of ``stream_id`` at stream time ``pts``; returns new events.

        ``wallclock`` (the frame record's ingest time) makes event ids unique across pts restarts.
        """
        if not stream_id or not math.isfinite(pts):
            raise VoterInputError(f"voter input needs a stream id and a finite pts, got {stream_id!r} at {pts}")
        events: list[MatchEvent] = []
        state = self._streams.get(stream_id)
        if state is None:
            if len(self._streams) >= self.settings.max_streams:
                old_id, old = self._streams.popitem(last=False)
                self.stats["evicted_lru"] += 1
                events += self._close(old_id, old)
            state = StreamState(last_seen=self._clock.monotonic())
            self._streams[stream_id] = state
        else:
            self._streams.move_to_end(stream_id)
            state.last_seen = self._clock.monotonic()
        if wallclock is not None and not math.isfinite(wallclock):
            wallclock = None
        if self._already_counted(state, pts, wallclock):
            self.stats["handover_skipped"] += 1
            return events
        self.stats["frames"] += 1
        state.last_wallclock = wallclock if wallclock is not None else state.last_wallclock
        if state.last_pts is not None and pts < state.last_pts:
            self.stats["pts_resets"] += 1
            events += self._close(stream_id, state)
            state.candidates.clear()
            state.last_pts = None
        span = self._frame_span(state, pts)
        self._decay(state, pts)
        if self.text is not None:
            self.text.seen(stream_id, pts)
        votes = sorted(self._weigher.weigh(stream_id, observations, pts).items(), key=lambda kv: (-kv[1][0], kv[0]))
        if self.settings.votes_per_frame > 0:
            votes = votes[: self.settings.votes_per_frame]
        for item_id, (weight, evidence) in votes:
            self._add_vote(state, item_id, weight * span, evidence, pts, wallclock)
        self._prune(state)
        events += self._decide(stream_id, state, pts)
        return events

    def evict_idle(self) -> list[MatchEvent]:
        """Evict streams without frames for ``idle_timeout_s`` wall seconds; returns their ended events."""
        events: list[MatchEvent] = []
        deadline = self._clock.monotonic() - self.settings.idle_timeout_s
        while self._streams:
            stream_id, state = next(iter(self._streams.items()))
            if state.last_seen > deadline:
                break
            del self._streams[stream_id]
            self.stats["evicted_idle"] += 1
            events += self._close(stream_id, state)
        if self.text is not None:
            self.text.evict_idle()
        return events

    def end_stream(self, stream_id: str) -> list[MatchEvent]:
        """The stream stopped: forget it and end its running match."""
        state = self._streams.pop(stream_id, None)
        events = [] if state is None else self._close(stream_id, state)
        if self.text is not None:
            self.text.drop_stream(stream_id)
        return events

    # -- handover (consumers.messages.segment_state) -------------------------------------------------------------
    def open_segment(self, stream_id: str) -> SegmentState | None:
        """The running match of ``stream_id`` as a state another consumer can adopt, or None."""
        state = self._streams.get(stream_id)
        if state is None or state.match is None or state.last_pts is None:
            return None
        match, cand = state.match, state.candidates[state.match.item_id]
        return SegmentState(
            stream_id=stream_id, item_id=match.item_id, segment_start=match.start, session=match.session,
            updates=match.updates, last_update_pts=match.last_update_pts, score=max(0.0, cand.score),
            votes=cand.votes, last_vote_pts=cand.last_pts, last_pts=state.last_pts,
            last_wallclock=state.last_wallclock, evidence=tuple(cand.evidence),
        )  # fmt: skip

    def adopt(self, segment: SegmentState) -> bool:
        """Carry on a segment another consumer had open (its partition moved here); no event now.

        A stream this voter already holds keeps its own state (returns False). The segment's later
        events have the ids the previous owner would have given them; frames up to the state's last
        frame are not counted twice; without further frames idle eviction ends it.
        """
        if segment.stream_id in self._streams:
            return False
        if len(self._streams) >= self.settings.max_streams:
            return False
        cand = Candidate(score=segment.score, first_pts=segment.segment_start, last_pts=segment.last_vote_pts,
                         votes=segment.votes, evidence=list(segment.evidence), first_wallclock=segment.session)
        state = StreamState(last_seen=self._clock.monotonic(), last_pts=segment.last_pts,
                            candidates={segment.item_id: cand}, last_wallclock=segment.last_wallclock,
                            adopted_until=(segment.last_pts, segment.last_wallclock))
        state.match = RunningMatch(segment.item_id, segment.segment_start, last_update_pts=segment.last_update_pts,
                                   updates=segment.updates, session=segment.session)
        self._streams[segment.stream_id] = state
        self.stats["adopted"] += 1
        return True

    @staticmethod
    def _already_counted(state: StreamState, pts: float, wallclock: float | None) -> bool:
        """A redelivered frame the adopted state already counted (same or earlier pts and wall clock)."""
        if state.adopted_until is None:
            return False
        until_pts, until_wallclock = state.adopted_until
        if pts <= until_pts and (wallclock is None or until_wallclock is None or wallclock <= until_wallclock):
            return True
        state.adopted_until = None  # a newer frame: from here on every frame counts
        return False

    def drop_stream(self, stream_id: str) -> None:
        """Forget a stream without events (its partition moved to another consumer)."""
        self._streams.pop(stream_id, None)
        if self.text is not None:
            self.text.drop_stream(stream_id)

    # -- voting ----------------------------------------------------------------------------------
    def _frame_span(self, state: StreamState, pts: float) -> float:
        """Stream time since the previous frame (at most ``half_life_s``) over ``vote_interval_s``; else 1."""
        interval = self.settings.vote_interval_s
        if interval <= 0.0 or state.last_pts is None:
            return 1.0
        return min(max(pts - state.last_pts, 0.0), self.settings.half_life_s) / interval

    def _decay(self, state: StreamState, pts: float) -> None:
        if state.last_pts is not None and pts > state.last_pts:
            factor = 0.5 ** ((pts - state.last_pts) / self.settings.half_life_s)
            for cand in state.candidates.values():
                cand.score *= factor
        state.last_pts = pts if state.last_pts is None else max(pts, state.last_pts)

    def _add_vote(
        self, state: StreamState, item_id: str, weight: float, evidence: Evidence, pts: float, wallclock: float | None
    ) -> None:
        self.stats["votes"] += 1
        cand = state.candidates.get(item_id)
        if cand is None:
            cand = state.candidates[item_id] = Candidate(score=0.0, first_pts=pts, last_pts=pts,
                                                          first_wallclock=wallclock)
        elif pts - cand.last_pts > self._run_gap and not (state.match and state.match.item_id == item_id):
            cand.first_pts, cand.votes, cand.evidence, cand.first_wallclock = pts, 0, [], wallclock
        cand.score += weight
        cand.votes += 1
        cand.last_pts = pts
        cand.evidence.append(evidence)
        cand.evidence.sort(key=lambda e: -e.similarity)
        del cand.evidence[self.settings.max_evidence :]

    def _prune(self, state: StreamState) -> None:
        keep = state.match.item_id if state.match is not None else None
        for item_id in [i for i, c in state.candidates.items() if c.score < self.settings.forget_score and i != keep]:
            del state.candidates[item_id]
        excess = len(state.candidates) - self.settings.max_items_per_stream
        if excess > 0:
            weakest = sorted((c.score, i) for i, c in state.candidates.items() if i != keep)[:excess]
            for _, item_id in weakest:
                del state.candidates[item_id]
            self.stats["candidates_dropped"] += len(weakest)

    # -- decisions -------------------------------------------------------------------------------
    def _eligible(self, cand: Candidate) -> bool:
        return cand.score >= self.settings.start_score and cand.votes >= self.settings.min_votes

    def _decide(self, stream_id: str, state: StreamState, pts: float) -> list[MatchEvent]:
        s = self.settings
        ranked = sorted(state.candidates.items(), key=lambda kv: (-kv[1].score, kv[0]))
        events: list[MatchEvent] = []
        match = state.match
        if match is not None:
            running = state.candidates[match.item_id]
            challenger = next(
                (
                    (i, c)
                    for i, c in ranked
                    if i != match.item_id and self._eligible(c) and c.score >= s.margin * running.score
                ),
                None,
            )
            if running.score >= s.end_score and challenger is None:
                if pts - match.last_update_pts >= s.update_interval_s:
                    match.updates += 1
                    match.last_update_pts = pts
                    events.append(self._event("match.updated", stream_id, state, match, match.updates))
                return events
            events += self._close(stream_id, state)
            ranked = [(i, c) for i, c in ranked if i != match.item_id]
        if ranked:
            item_id, leader = ranked[0]
            runner_up = ranked[1][1].score if len(ranked) > 1 else 0.0
            if self._eligible(leader) and leader.score >= s.margin * runner_up:
                state.match = RunningMatch(item_id, leader.first_pts, last_update_pts=pts, session=leader.first_wallclock)
                events.append(self._event("match.started", stream_id, state, state.match, 0))
        return events

    def _close(self, stream_id: str, state: StreamState) -> list[MatchEvent]:
        """End the running match of ``state`` (if any) and forget its candidate run."""
        match = state.match
        if match is None:
            return []
        event = self._event("match.ended", stream_id, state, match, 0, ended=True)
        state.match = None
        state.candidates.pop(match.item_id, None)
        return [event]

    def _event(
        self, kind: EventKind, stream_id: str, state: StreamState, match: RunningMatch, sequence: int, ended: bool = False
    ) -> MatchEvent:
        cand = state.candidates[match.item_id]
        total = sum(c.score for c in state.candidates.values())
        self.stats[kind] += 1
        return MatchEvent(
            event=kind,
            event_id=make_event_id(stream_id, match.start, match.item_id, kind, sequence, match.session),
            stream_id=stream_id,
            item_id=match.item_id,
            score=max(0.0, cand.score),
            vote_share=cand.score / total if total > 0 else 0.0,
            votes=cand.votes,
            segment_start=match.start,
            segment_end=cand.last_pts if ended else None,
            evidence=tuple(cand.evidence),
            detector_version=self._versions[0],
            embedder_version=self._versions[1],
            emitted_at=self._clock.now(),
            text=tuple(self.text.evidence(stream_id, match.item_id)) if self.text is not None else (),
        )
