"""Per-stream text state: factors, fading, pending text, bounds and eviction, on a fake clock."""

from __future__ import annotations

import pytest

from consumers.settings import SettingsError
from consumers.settings.text import TextSettings
from consumers.text.text_prior import MAX_PENDING, TextPriors
from engines.categories import CATEGORIES
from stream.clock import FakeClock

SHORTS, DRESS = CATEGORIES.index("短裤"), CATEGORIES.index("长袖连衣裙")
ITEM_CATEGORIES = {"shorts": {SHORTS}, "dress": {DRESS}, "plain": set()}
TITLES = {"shorts": "西装短裤女 1830707", "dress": "法式碎花长袖连衣裙"}


def _priors(clock: FakeClock | None = None, **overrides: object) -> TextPriors:
    settings = TextSettings(**overrides)  # type: ignore[arg-type]
    return TextPriors(settings, CATEGORIES, TITLES, ITEM_CATEGORIES.get, clock or FakeClock(), items=ITEM_CATEGORIES)


def test_no_text_gives_factors_of_exactly_one() -> None:
    priors = _priors()
    assert priors.item_factor("s1", "shorts") == 1.0
    assert priors.box_factor("s1", (SHORTS,)) == 1.0
    assert priors.candidates("s1") == frozenset()
    priors.add("s1", "今天天气很好", "speech", 0.0)  # names nothing
    priors.seen("s1", 0.0)
    assert priors.item_factor("s1", "shorts") == 1.0 and not priors.has_text("s1")


def test_a_named_category_and_title_raise_that_item_only() -> None:
    priors = _priors()
    priors.add("s1", "这个短裤，型号1830707", "speech", 1.0)
    priors.seen("s1", 1.0)
    shorts, dress = priors.item_factor("s1", "shorts"), priors.item_factor("s1", "dress")
    assert dress == 1.0
    assert 2.0 < shorts <= 3.0  # the category (full) plus the title (its cosine)
    assert priors.strength("s1", "shorts") == pytest.approx((shorts - 1.0) / 2.0)
    assert priors.candidates("s1") == {"shorts"}
    assert priors.box_factor("s1", (SHORTS, DRESS)) == pytest.approx(1.5)
    assert priors.box_factor("s1", (DRESS,)) == 1.0
    assert priors.item_factor("other", "shorts") == 1.0  # streams do not share text
    evidence = priors.evidence("s1", "shorts")
    assert evidence and evidence[0]["source"] == "speech" and evidence[0]["pts"] == 1.0
    assert priors.evidence("s1", "dress") == []


def test_spoken_text_waits_for_its_time_and_fades_while_the_title_stays() -> None:
    priors = _priors(half_life_s=10.0, title_weight=0.0)  # the category alone
    priors.add("s1", "短裤", "speech", 5.0)
    priors.seen("s1", 4.0)
    assert priors.item_factor("s1", "shorts") == 1.0  # said at 5 s: not known at 4 s
    priors.seen("s1", 5.0)
    assert priors.item_factor("s1", "shorts") == pytest.approx(2.0)
    priors.seen("s1", 25.0)  # two half-lives later: a quarter of one mention
    assert priors.item_factor("s1", "shorts") == pytest.approx(1.25)
    priors.add("s1", "长袖连衣裙", "title")  # the stream's title does not fade
    priors.seen("s1", 1000.0)
    assert priors.item_factor("s1", "dress") == pytest.approx(2.0)
    assert priors.item_factor("s1", "shorts") == 1.0  # faded out of the table


def test_untimed_speech_is_about_the_whole_stream_and_keeps_its_source() -> None:
    """A transcript without times (a ``.txt`` file) counts from the first frame and never fades."""
    priors = _priors(half_life_s=10.0, title_weight=0.0)
    priors.add("s1", "短裤", "speech")  # no pts
    priors.seen("s1", 0.0)
    assert priors.item_factor("s1", "shorts") == pytest.approx(2.0)
    priors.seen("s1", 100.0)  # ten half-lives later: still whole
    assert priors.item_factor("s1", "shorts") == pytest.approx(2.0)
    assert [e["source"] for e in priors.evidence("s1", "shorts")] == ["speech"]
    assert priors.evidence("s1", "shorts")[0]["pts"] is None


def test_state_is_bounded_and_evicted() -> None:
    clock = FakeClock()
    priors = _priors(clock, max_streams=2, idle_timeout_s=60.0)
    for stream in ("a", "b", "c"):
        priors.add(stream, "短裤", "title")
    assert len(priors) == 2 and priors.evicted == 1 and not priors.has_text("a")
    for i in range(MAX_PENDING + 5):
        priors.add("b", "短裤", "speech", 100.0 + i)
    assert priors.dropped == 5
    clock.advance(61.0)
    assert priors.evict_idle() == 2 and len(priors) == 0
    priors.add("x", "短裤", "title")
    priors.drop_stream("x")
    assert len(priors) == 0


def test_text_off_adds_nothing_and_settings_are_checked() -> None:
    priors = _priors(enabled=False)
    priors.add("s1", "短裤", "title")
    assert priors.item_factor("s1", "shorts") == 1.0
    with pytest.raises(SettingsError, match="text.ocr_mode"):
        TextSettings(ocr_mode="always")
    with pytest.raises(SettingsError, match="text.title_weight"):
        TextSettings(title_weight=-1.0)
