"""The per-stream voter, table-driven on a fake clock."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import jsonschema
import pytest

from consumers.messages.match_event import MatchEvent, load_schema
from consumers.voting.voter import GalleryHit, Observation, StreamVoter, VoterInputError, VoterSettings
from stream.clock import FakeClock

STEP = 0.5  # stream seconds between processed frames
SETTINGS = VoterSettings(
    half_life_s=2.0, min_votes=3, start_score=1.0, margin=1.5, end_score=0.3, update_interval_s=1000.0,
    category_mismatch_weight=0.0,  # a hard category check; the soft one has cases of its own
    vote_interval_s=0.5,  # = STEP: every frame here counts once; the time weighting has tests of its own
)
CATALOG = {"A": {1}, "B": {2}, "C": {1, 2}}

# One detection: (item voted for, similarity, detection top categories)
Det = tuple[str, float, tuple[int, ...]]
Frame = tuple[float, list[Det]]


def _span(start: float, end: float, *dets: Det) -> list[Frame]:
    """Frames every STEP seconds from start to end (inclusive), each with the same detections."""
    count = round((end - start) / STEP) + 1
    return [(round(start + i * STEP, 6), list(dets)) for i in range(count)]


def _obs(det: Det) -> Observation:
    item, sim, cats = det
    hits = (GalleryHit(f"{item}-img{int(sim * 100)}", item, sim, (0.0, 0.0, 50.0, 60.0)),)
    return Observation((10.0, 20.0, 110.0, 220.0), sold=1.0, confidence=1.0, hits=hits, top_categories=cats)


def _run(frames: list[Frame], settings: VoterSettings = SETTINGS, stream: str = "s1") -> tuple[StreamVoter, list[MatchEvent]]:
    voter = StreamVoter(settings, FakeClock(), categories=CATALOG.get, detector_version="d1", embedder_version="e1")
    events: list[MatchEvent] = []
    for pts, dets in frames:
        events += voter.observe(stream, pts, [_obs(d) for d in dets])
    return voter, events


def _summary(events: list[MatchEvent]) -> list[tuple[str, str, float, float | None]]:
    return [(e.event.removeprefix("match."), e.item_id, e.segment_start, e.segment_end) for e in events]


@dataclass(frozen=True)
class Case:
    name: str
    frames: list[Frame]
    expected: list[tuple[str, str, float, float | None]]
    settings: VoterSettings = field(default=SETTINGS)


A, B = ("A", 0.8, ()), ("B", 0.8, ())
CASES = [
    Case("steady item starts after min_votes", _span(0, 10, A), [("started", "A", 0.0, None)]),
    Case("too few votes never start", _span(0, 0.5, A) + _span(1, 20), []),
    Case("low similarity never votes", _span(0, 10, ("A", 0.2, ())), []),
    Case("two items within the margin do not start", _span(0, 10, A, ("B", 0.75, ())), []),
    Case(
        "product change ends one segment and starts the next",
        _span(0, 5, A) + _span(5.5, 15, B),
        [("started", "A", 0.0, None), ("ended", "A", 0.0, 5.0), ("started", "B", 5.5, None)],
    ),
    Case(
        "hysteresis: a close rival does not take over a running match",
        _span(0, 5, A) + _span(5.5, 20, ("A", 0.8, ()), ("B", 0.9, ())),
        [("started", "A", 0.0, None)],
    ),
    Case(
        "hysteresis: alternating frames do not flap",
        _span(0, 5, A) + [(pts, [A] if i % 2 else [B]) for i, (pts, _) in enumerate(_span(5.5, 20))],
        [("started", "A", 0.0, None)],
    ),
    Case("category mismatch votes are ignored", _span(0, 10, ("A", 0.9, (5, 6))), []),
    Case("category match votes count", _span(0, 10, ("A", 0.9, (0, 1))), [("started", "A", 0.0, None)]),
    Case("a hit whose product is in another category is ignored", _span(0, 10, ("B", 0.9, (1,))), []),
    Case(
        "a soft category check only down-weights a mismatch: alone it still starts",
        _span(0, 10, ("A", 0.9, (5, 6))),
        [("started", "A", 0.0, None)],
        replace(SETTINGS, category_mismatch_weight=0.5),
    ),
    Case(
        "a soft category check: a matching item beats a more similar mismatching one",
        _span(0, 10, ("A", 0.9, (2,)), ("B", 0.6, (2,))),
        [("started", "B", 0.0, None)],
        replace(SETTINGS, category_mismatch_weight=0.3),
    ),
    Case(
        "decay ends a match after the item disappears",
        _span(0, 5, A) + _span(5.5, 20),
        [("started", "A", 0.0, None), ("ended", "A", 0.0, 5.0)],
    ),
    Case(
        "an item that comes back starts a new segment",
        _span(0, 5, A) + _span(5.5, 20) + _span(20.5, 25, A),
        [("started", "A", 0.0, None), ("ended", "A", 0.0, 5.0), ("started", "A", 20.5, None)],
    ),
    Case(
        "pts going backwards ends the match and starts over",
        _span(10, 15, A) + _span(0, 3, B),
        [("started", "A", 10.0, None), ("ended", "A", 10.0, 15.0), ("started", "B", 0.0, None)],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_voter_scenarios(case: Case) -> None:
    voter, events = _run(case.frames, case.settings)
    assert _summary(events) == case.expected
    validator = jsonschema.Draft202012Validator(load_schema())
    for event in events:
        doc = json.loads(event.to_json())
        validator.validate(doc)
        assert 0 < len(doc["evidence"]) <= SETTINGS.max_evidence
        assert doc["models"] == {"detector": "d1", "embedder": "e1"}


def test_category_rejections_are_counted_and_a_second_hit_can_vote() -> None:
    voter = StreamVoter(SETTINGS, FakeClock(), categories=CATALOG.get)
    hits = (GalleryHit("b1", "B", 0.95), GalleryHit("c1", "C", 0.9))
    obs = Observation((0.0, 0.0, 1.0, 1.0), 1.0, 1.0, hits, top_categories=(1,))
    events = [e for pts, _ in _span(0, 5) for e in voter.observe("s", pts, [obs])]
    assert _summary(events) == [("started", "C", 0.0, None)]
    assert voter.stats["category_rejected"] == 11


def test_soft_category_check_ranks_hits_by_weighted_similarity() -> None:
    """With a mismatch weight, one detection's vote goes to the best hit after weighting."""
    voter = StreamVoter(replace(SETTINGS, category_mismatch_weight=0.5), FakeClock(), categories=CATALOG.get)
    hits = (GalleryHit("b1", "B", 0.95), GalleryHit("c1", "C", 0.6))
    obs = Observation((0.0, 0.0, 1.0, 1.0), 1.0, 1.0, hits, top_categories=(1,))
    events = [e for pts, _ in _span(0, 5) for e in voter.observe("s", pts, [obs])]
    assert _summary(events) == [("started", "C", 0.0, None)]  # B weighs 0.475, C 0.6
    assert voter.stats["category_penalised"] == 11 and voter.stats["category_rejected"] == 0


def test_updates_are_rate_limited_and_carry_the_score() -> None:
    settings = VoterSettings(half_life_s=2.0, min_votes=3, start_score=1.0, update_interval_s=2.0)
    _, events = _run(_span(0, 10, A), settings)
    kinds = [e.event for e in events]
    assert kinds == ["match.started"] + ["match.updated"] * 4
    scores = [e.score for e in events]
    assert scores == sorted(scores)
    assert len({e.event_id for e in events}) == len(events)
    assert all(e.votes >= 3 for e in events)


def test_idle_streams_are_evicted_with_an_ended_event() -> None:
    clock = FakeClock()
    voter = StreamVoter(SETTINGS, clock)
    for pts, dets in _span(0, 5, A):
        voter.observe("quiet", pts, [_obs(d) for d in dets])
    clock.advance(20)
    voter.observe("busy", 0.0, [])
    clock.advance(15)
    events = voter.evict_idle()
    assert _summary(events) == [("ended", "A", 0.0, 5.0)]
    assert events[0].stream_id == "quiet" and events[0].emitted_at == clock.now()
    assert len(voter) == 1 and voter.current("quiet") is None
    assert voter.stats["evicted_idle"] == 1
    clock.advance(30)
    assert voter.evict_idle() == [] and len(voter) == 0


def test_max_streams_evicts_the_least_recently_seen() -> None:
    settings = VoterSettings(half_life_s=2.0, min_votes=3, start_score=1.0, update_interval_s=1000.0, max_streams=2)
    voter = StreamVoter(settings, FakeClock())
    for stream in ("s1", "s2"):
        for pts, dets in _span(0, 3, A):
            voter.observe(stream, pts, [_obs(d) for d in dets])
    voter.observe("s1", 3.5, [_obs(A)])  # s2 is now the least recently seen
    events = voter.observe("s3", 0.0, [])
    assert [(e.event, e.stream_id) for e in events] == [("match.ended", "s2")]
    assert len(voter) == 2 and voter.current("s1") == "A" and voter.stats["evicted_lru"] == 1


def test_end_and_drop_stream() -> None:
    voter, _ = _run(_span(0, 5, A))
    assert voter.current("s1") == "A"
    assert _summary(voter.end_stream("s1")) == [("ended", "A", 0.0, 5.0)]
    assert voter.end_stream("s1") == []
    voter.observe("s2", 0.0, [_obs(A)])
    voter.drop_stream("s2")
    assert len(voter) == 0


def test_candidates_and_evidence_stay_bounded() -> None:
    settings = VoterSettings(max_items_per_stream=4, max_evidence=2)
    voter = StreamVoter(settings, FakeClock())
    for i in range(50):
        obs = [_obs((f"item{i}-{j}", 0.9, ())) for j in range(3)]
        voter.observe("s", i * 0.1, obs)
    assert voter.stats["candidates_dropped"] > 0
    state = voter._streams["s"]
    assert len(state.candidates) <= 4
    assert all(len(c.evidence) <= 2 for c in state.candidates.values())


def test_event_ids_are_stable_across_identical_runs() -> None:
    frames = _span(0, 5, A) + _span(5.5, 15, B) + _span(15.5, 30)
    runs: list[Callable[[], list[MatchEvent]]] = [lambda: _run(frames)[1], lambda: _run(frames)[1]]
    first, second = (run() for run in runs)
    assert [e.event_id for e in first] == [e.event_id for e in second]
    assert len({e.event_id for e in first}) == len(first) == 4
    assert [e.to_dict() for e in first] == [e.to_dict() for e in second]


@pytest.mark.parametrize(("stream", "pts"), [("", 0.0), ("s", float("nan")), ("s", float("inf"))])
def test_malformed_frames_are_refused_and_lose_no_state(stream: str, pts: float) -> None:
    voter, _ = _run(_span(0, 5, A))
    with pytest.raises(VoterInputError, match="finite pts"):
        voter.observe(stream, pts, [])
    assert voter.current("s1") == "A" and len(voter) == 1


def test_non_finite_scores_do_not_vote() -> None:
    voter = StreamVoter(SETTINGS, FakeClock())
    bad = [
        Observation((0.0, 0.0, 1.0, 1.0), 1.0, 1.0, (GalleryHit("a", "A", float("nan")),)),
        Observation((0.0, 0.0, 1.0, 1.0), 1.0, 1.0, (GalleryHit("c", "C", float("inf")),)),
        Observation((0.0, 0.0, 1.0, 1.0), float("nan"), 1.0, (GalleryHit("b", "B", 0.9),)),
    ]
    events = [e for pts, _ in _span(0, 5) for e in voter.observe("s", pts, bad)]
    assert events == [] and voter.stats["votes"] == 0


@pytest.mark.parametrize(("vote_weight", "starts"), [("similarity", True), ("similarity_sold_confidence", False)])
def test_vote_weight_decides_whether_low_detector_probabilities_shrink_the_votes(vote_weight: str,
                                                                              starts: bool) -> None:
    """A detection that passed the thresholds with sold 0.4 and objectness 0.4 (as on real footage):
    voting with the similarity starts a match after ``min_votes`` frames, the product never does."""
    settings = replace(SETTINGS, vote_weight=vote_weight)
    voter = StreamVoter(settings, FakeClock(), categories=CATALOG.get, detector_version="d1", embedder_version="e1")
    hits = (GalleryHit("A-img", "A", 0.7, None),)
    events: list[MatchEvent] = []
    for pts, _ in _span(0, 5):
        events += voter.observe("s1", pts, [Observation((0.0, 0.0, 9.0, 9.0), sold=0.4, confidence=0.4, hits=hits)])
    assert [(e.event, e.item_id) for e in events] == ([("match.started", "A")] if starts else [])


def test_an_unknown_vote_weight_is_a_settings_error() -> None:
    from consumers.settings.checks import SettingsError

    with pytest.raises(SettingsError, match="voter.vote_weight"):
        VoterSettings(vote_weight="loudest")


@pytest.mark.parametrize("weight", ["similarity", "similarity_sold_confidence_garment"])
@pytest.mark.parametrize(("garment", "starts"), [(1.0, True), (0.3, False), (0.0, False)])
def test_the_garment_probability_weighs_votes(weight: str, garment: float, starts: bool) -> None:
    """With similarity votes (and with the product of all three probabilities), a box the embedder's
    ImageNet classes call no garment (a banner, a lamp) does not vote."""
    hits = (GalleryHit("A-img", "A", 0.8, None),)
    settings = replace(SETTINGS, vote_weight=weight)
    voter = StreamVoter(settings, FakeClock(), categories=CATALOG.get, detector_version="d1", embedder_version="e1")
    events: list[MatchEvent] = []
    for pts, _ in _span(0, 1.0):  # three frames: 0.8 each reaches start_score only at full weight
        events += voter.observe("s1", pts, [Observation((0.0, 0.0, 9.0, 9.0), 1.0, 1.0, hits, garment=garment)])
    assert bool(events) is starts


def test_the_garment_weight_also_keeps_the_detectors_probabilities() -> None:
    """Unlike similarity votes, the product rule still shrinks a vote by a low sold probability."""
    hits = (GalleryHit("A-img", "A", 0.8, None),)
    settings = replace(SETTINGS, vote_weight="similarity_sold_confidence_garment")
    voter = StreamVoter(settings, FakeClock(), categories=CATALOG.get, detector_version="d1", embedder_version="e1")
    events: list[MatchEvent] = []
    for pts, _ in _span(0, 1.0):
        events += voter.observe("s1", pts, [Observation((0.0, 0.0, 9.0, 9.0), 0.3, 1.0, hits, garment=1.0)])
    assert events == []


def test_votes_per_frame_keeps_only_the_frames_strongest_vote() -> None:
    """Garments on a rack behind the sold one vote for their own items unless one vote a frame counts."""
    settings = replace(SETTINGS, votes_per_frame=1)
    frames = _span(0, 5, A, ("B", 0.6, ()))
    _, all_votes = _run(frames)
    _, one_vote = _run(frames, settings)
    assert _summary(all_votes) == []  # B keeps A under the 1.5 margin
    assert _summary(one_vote) == [("started", "A", 0.0, None)]


def test_event_ids_survive_redelivery_but_never_repeat_after_a_pts_restart() -> None:
    """A publisher that reconnects restarts its pts: the same segment start comes back, with a later
    ingest wall clock. Ids are stable when the same records are processed again (redelivery to a new
    consumer) and never reused by a different, later segment."""

    def run(sessions: list[float]) -> list[MatchEvent]:
        voter = StreamVoter(SETTINGS, FakeClock(), categories=CATALOG.get)
        events: list[MatchEvent] = []
        for wall0 in sessions:  # each session: pts from 0 again, wall clock moves on
            for pts, dets in _span(0, 5, A):
                events += voter.observe("s1", pts, [_obs(d) for d in dets], wallclock=wall0 + pts)
        return events + voter.end_stream("s1")

    first = run([1_700_000_000.0, 1_700_000_600.0])
    assert [e.event for e in first].count("match.started") == 2
    ids = [e.event_id for e in first]
    assert len(ids) == len(set(ids)), "no id of the second session repeats one of the first"
    again = run([1_700_000_000.0, 1_700_000_600.0])
    assert [e.event_id for e in again] == ids, "redelivered records give the same ids"


def _decided_at(settings: VoterSettings, step: float, similarity: float, until: float) -> float | None:
    """Stream time of match.started for one stream voting ``similarity`` for A every ``step`` s."""
    voter = StreamVoter(settings, FakeClock(), detector_version="d1", embedder_version="e1")
    hits = (GalleryHit("A-img", "A", similarity, None),)
    for i in range(int(until / step) + 1):
        pts = round(i * step, 6)
        events = voter.observe("s", pts, [Observation((0.0, 0.0, 9.0, 9.0), 1.0, 1.0, hits)])
        if any(e.event == "match.started" for e in events):
            return pts
    return None


def test_votes_count_per_stream_second_so_sparse_frames_decide_too() -> None:
    timed = VoterSettings(half_life_s=3.0, start_score=1.0, min_votes=3, vote_interval_s=0.25)
    per_frame = replace(timed, vote_interval_s=0.0)
    # four frames a second: the interval is the spacing, both rules agree
    assert _decided_at(timed, 0.25, 0.4, 10.0) == _decided_at(per_frame, 0.25, 0.4, 10.0) == 0.5
    # keyframes 2 s apart with the same similarity: per frame, the decayed score never reaches
    # start_score; per stream second it does, on the third frame (min_votes)
    assert _decided_at(per_frame, 2.0, 0.35, 60.0) is None
    assert _decided_at(timed, 2.0, 0.35, 60.0) == 4.0


def test_a_long_gap_counts_at_most_one_half_life() -> None:
    settings = VoterSettings(half_life_s=3.0, start_score=50.0, end_score=0.3, min_votes=1, vote_interval_s=0.25)
    voter = StreamVoter(settings, FakeClock(), detector_version="d1", embedder_version="e1")
    hits = (GalleryHit("A-img", "A", 0.5, None),)
    obs = [Observation((0.0, 0.0, 9.0, 9.0), 1.0, 1.0, hits)]
    voter.observe("s", 0.0, obs)
    voter.observe("s", 600.0, obs)  # ten minutes later: the frame stands for 3 s, not 600 s
    score = voter._streams["s"].candidates["A"].score
    assert score == pytest.approx(0.5 * 3.0 / 0.25 + 0.5 * 0.5 ** (600.0 / 3.0))


def test_a_still_box_beside_a_moving_one_loses_its_vote() -> None:
    """Two detections as strong as each other: the moving one (a presenter's garment) wins over the
    still one (a rack garment); with both equally lively the still-box item would tie."""
    voter = StreamVoter(SETTINGS, FakeClock())
    rack = Observation((0.0, 0.0, 1.0, 1.0), 1.0, 1.0, (GalleryHit("b1", "B", 0.9),), moving=0.0)
    worn = Observation((2.0, 0.0, 3.0, 1.0), 1.0, 1.0, (GalleryHit("a1", "A", 0.8),), moving=1.0)
    events = [e for pts, _ in _span(0, 5) for e in voter.observe("s", pts, [rack, worn])]
    assert _summary(events) == [("started", "A", 0.0, None)]
    assert voter.current("s") == "A"
