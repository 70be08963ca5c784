"""Open segments survive a change of owner: state records, adoption by another voter, redelivery."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from consumers.bus import Record
from consumers.messages.match_event import MatchEvent
from consumers.messages.payload_schemas import check_payload
from consumers.messages.segment_state import SegmentState, SegmentStateError, latest_states, tombstone
from consumers.voting.voter import GalleryHit, Observation, StreamVoter, VoterSettings
from stream.clock import FakeClock

SETTINGS = VoterSettings(half_life_s=2.0, min_votes=3, start_score=1.0, margin=1.5, end_score=0.3,
                         update_interval_s=1.0, idle_timeout_s=30.0)
WALL0 = 1_800_000_000.0


def _obs(item: str, sim: float = 0.8) -> list[Observation]:
    hits = (GalleryHit(f"{item}-img", item, sim, (0.0, 0.0, 50.0, 60.0)),)
    return [Observation((10.0, 20.0, 110.0, 220.0), sold=1.0, confidence=1.0, hits=hits, top_categories=())]


def _feed(voter: StreamVoter, frames: list[float], item: str = "A") -> list[MatchEvent]:
    events: list[MatchEvent] = []
    for pts in frames:
        events += voter.observe("s1", pts, _obs(item), wallclock=WALL0 + pts)
    return events


def _state() -> SegmentState:
    voter = StreamVoter(SETTINGS, FakeClock())
    _feed(voter, [i * 0.5 for i in range(8)])
    state = voter.open_segment("s1")
    assert state is not None
    return state


def test_a_state_round_trips_and_follows_its_schema() -> None:
    state = _state()
    assert state.item_id == "A" and state.last_pts == 3.5 and state.last_wallclock == WALL0 + 3.5
    assert SegmentState.from_value(state.to_value()) == state
    check_payload("segments", json.loads(state.to_value()))
    record = state.to_record("segments", "g1")
    assert record.key == b"s1" and record.header("lt-group") == b"g1"
    assert tombstone("segments", "s1", "g1").value is None


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.pop("score"), "missing \\['score'\\]"),
        (lambda d: d.update(extra=1), "unknown \\['extra'\\]"),
        (lambda d: d.update(schema="livetag.segment/v9"), "must be a livetag.segment/v1"),
        (lambda d: d.update(score=math.inf), "finite number"),
        (lambda d: d.update(votes=-1), "expected a count"),
        (lambda d: d.update(stream_id=""), "1-200 characters"),
        (lambda d: d.update(last_pts=-5.0), "inconsistent"),
    ],
)
def test_bad_states_are_refused_with_the_reason(mutate: object, reason: str) -> None:
    doc = json.loads(_state().to_value())
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(SegmentStateError, match=reason):
        SegmentState.from_value(json.dumps(doc).encode())
    with pytest.raises(SegmentStateError, match="over 16384"):
        SegmentState.from_value(b" " * 20_000)
    with pytest.raises(SegmentStateError, match="not JSON"):
        SegmentState.from_value(b"{oops")


def test_the_latest_record_per_stream_wins_and_tombstones_forget() -> None:
    state = _state()
    other = replace(state, stream_id="s2")
    records = [
        Record("segments", b"s1", state.to_value(), offset=0),
        Record("segments", b"s2", other.to_value(), offset=1),
        Record("segments", b"s1", None, offset=2),  # s1's segment ended
        Record("segments", b"s3", b"not json", offset=3),
        Record("segments", b"s4", state.to_value(), offset=4),  # key and stream differ
    ]
    states, problems = latest_states(records)
    assert states == {"s2": other}
    assert len(problems) == 2 and "@3: segment state is not JSON" in problems[0] and "key 's4'" in problems[1]


def test_a_group_reads_only_the_segments_its_own_members_wrote() -> None:
    """Two consumer groups on one frames topic (a shadow deployment) never adopt each other's segments."""
    state = _state()
    records = [state.to_record("segments", "live"), replace(state, item_id="B").to_record("segments", "shadow"),
               tombstone("segments", "s1", "shadow")]
    assert latest_states(records, "live")[0] == {"s1": state}
    assert latest_states(records, "shadow")[0] == {}


def test_an_adopted_segment_goes_on_with_the_ids_the_first_owner_would_have_given() -> None:
    """Owner 1 counts frames 0-3.5 s and is killed; owner 2 adopts its state, gets 2.5-3.5 s again
    (uncommitted, redelivered) and then new frames: its events equal those owner 1 would have sent."""
    before, after = [i * 0.5 for i in range(8)], [4.0 + i * 0.5 for i in range(6)]
    clock = FakeClock()
    first = StreamVoter(SETTINGS, clock)
    started = _feed(first, before)
    assert [e.event for e in started][0] == "match.started"
    state = first.open_segment("s1")
    assert state is not None
    would_have = _feed(first, after) + first.end_stream("s1")  # what the first owner would have sent

    second = StreamVoter(SETTINGS, FakeClock())
    assert second.adopt(state) and not second.adopt(state), "a stream it holds keeps its own state"
    assert second.current("s1") == "A"
    assert _feed(second, before[5:]) == [], "redelivered frames the state counted do not vote again"
    assert second.stats["handover_skipped"] == 3
    went_on = _feed(second, after) + second.end_stream("s1")
    assert [(e.event, e.event_id, e.segment_start) for e in went_on] == [
        (e.event, e.event_id, e.segment_start) for e in would_have]
    assert went_on[-1].event == "match.ended" and went_on[-1].score == pytest.approx(would_have[-1].score)


def test_an_adopted_segment_without_frames_ends_by_idle_eviction() -> None:
    state = _state()
    clock = FakeClock()
    voter = StreamVoter(SETTINGS, clock)
    voter.adopt(state)
    assert voter.evict_idle() == []
    clock.advance(SETTINGS.idle_timeout_s + 1)
    (ended,) = voter.evict_idle()
    assert ended.event == "match.ended" and ended.segment_start == state.segment_start
    assert ended.segment_end == state.last_vote_pts


def test_a_pts_restart_after_a_handover_ends_the_adopted_segment() -> None:
    """Frames with a lower pts but a later wall clock are a new publisher session, not a redelivery."""
    state = _state()
    voter = StreamVoter(SETTINGS, FakeClock())
    voter.adopt(state)
    events = voter.observe("s1", 0.0, _obs("A"), wallclock=WALL0 + 600)
    assert [e.event for e in events] == ["match.ended"] and voter.stats["pts_resets"] == 1
