"""The voter with and without a text prior (fake clock), and the v2 match event it publishes."""

from __future__ import annotations

import jsonschema
import pytest

from consumers.messages.match_event import SCHEMA_NAME, SCHEMA_NAME_V2, MatchEvent, load_schema
from consumers.settings.text import TextSettings
from consumers.text.text_prior import TextPriors
from consumers.voting.voter import GalleryHit, Observation, StreamVoter, VoterSettings
from engines.categories import CATEGORIES
from stream.clock import FakeClock

SHORTS, TOP = CATEGORIES.index("短裤"), CATEGORIES.index("长袖上衣")
ITEMS = {"shorts": {SHORTS}, "top": {TOP}}
SETTINGS = VoterSettings(half_life_s=2.0, min_votes=3, start_score=1.0, margin=1.5, end_score=0.3)


def _frame(top_sim: float, shorts_sim: float) -> list[Observation]:
    """Two boxes: the sold head likes the top more; both are similar to their items."""
    top = Observation((0, 0, 100, 100), 0.9, 0.9, (GalleryHit("top/0.jpg", "top", top_sim),), (TOP,))
    shorts = Observation((0, 100, 100, 200), 0.9, 0.9, (GalleryHit("shorts/0.jpg", "shorts", shorts_sim),), (SHORTS,))
    return [top, shorts]


def _run(text: TextPriors | None, frames: int = 12) -> list[MatchEvent]:
    voter = StreamVoter(SETTINGS, FakeClock(), categories=ITEMS.get, text=text)
    events: list[MatchEvent] = []
    for i in range(frames):
        events += voter.observe("s1", i * 0.5, _frame(0.9, 0.5))
    return [e for e in events + voter.end_stream("s1") if e.event != "match.updated"]


def _priors(**overrides: object) -> TextPriors:
    return TextPriors(TextSettings(**overrides), CATEGORIES, {}, ITEMS.get, FakeClock(), items=ITEMS)  # type: ignore[arg-type]


def _key(events: list[MatchEvent]) -> list[tuple[str, str, float, float | None, float]]:
    return [(e.event, e.item_id, e.segment_start, e.segment_end, round(e.score, 9)) for e in events]


def test_without_text_the_events_are_exactly_the_visual_ones() -> None:
    plain = _run(None)
    assert [(e.event, e.item_id) for e in plain] == [("match.started", "top"), ("match.ended", "top")]
    with_state = _run(_priors())  # text cues on, but the stream has none
    assert _key(with_state) == _key(plain)
    assert all(e.to_dict()["schema"] == SCHEMA_NAME for e in with_state)


def test_the_named_category_wins_and_the_event_quotes_the_text() -> None:
    priors = _priors()
    priors.add("s1", "今天给大家看这条短裤，短裤很显瘦", "speech", 0.0)
    events = _run(priors)
    assert [(e.event, e.item_id) for e in events] == [("match.started", "shorts"), ("match.ended", "shorts")]
    doc = events[0].to_dict()
    assert doc["schema"] == SCHEMA_NAME_V2 and doc["text"][0]["source"] == "speech"
    jsonschema.validate(doc, load_schema(SCHEMA_NAME_V2), cls=jsonschema.Draft202012Validator)
    assert MatchEvent.from_json(events[0].to_json()) == events[0]
    assert events[0].to_record()[2][0] == ("lt-schema", SCHEMA_NAME_V2.encode())


@pytest.mark.parametrize(("said", "votes"), [(None, 0), ("短裤", 1)])
def test_a_box_chosen_for_the_text_votes_only_with_the_texts_strength(said: str | None, votes: int) -> None:
    priors = _priors()
    if said:
        priors.add("s1", said, "speech", 0.0)
    voter = StreamVoter(SETTINGS, FakeClock(), categories=ITEMS.get, text=priors)
    named = Observation((0, 0, 10, 10), 0.0, 0.9, (GalleryHit("shorts/0.jpg", "shorts", 0.7),), (SHORTS,), named_only=True)
    voter.observe("s1", 0.0, [named])
    assert voter.stats["votes"] == votes
