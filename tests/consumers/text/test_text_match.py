"""Text normalisation, terms and title scoring: table-driven, Chinese and English."""

from __future__ import annotations

import pytest

from consumers.text.category_words import category_mentions, garment_words
from consumers.text.text_match import TitleIndex, normalise, terms
from engines.categories import CATEGORIES

TITLES = {
    "shorts": "【迦尔伽】2019新款修身显瘦西装短裤女 1830707",
    "dress": "法式复古碎花连衣裙女夏季新款收腰长裙",
    "coat": "Wool long coat, camel, double-breasted",
    "tee": "纯棉白色T恤女短袖宽松",
    "untitled": "",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("【迦尔伽】短裤！", "迦尔伽 短裤"),
        ("ＡＢＣ１２３", "abc123"),  # full-width forms fold (NFKC)
        ("T-Shirt, size M", "t shirt size m"),
    ],
)
def test_normalise(text: str, expected: str) -> None:
    assert normalise(text) == expected


def test_terms_are_cjk_bigrams_latin_words_and_numbers() -> None:
    assert terms("西装短裤 1830707 Coat a") == ["西装", "装短", "短裤", "1830707", "coat"]
    assert terms("裙") == ["裙"]  # a lone character is its own term


@pytest.mark.parametrize(
    ("text", "best"),
    [
        ("这个短裤啊是西装短裤，在十五号链接", "shorts"),
        ("收腰的碎花连衣裙，法式复古", "dress"),
        ("a camel wool coat", "coat"),
        ("白色的T恤，纯棉的", "tee"),
        ("看一下这个型号 1830707", "shorts"),
    ],
)
def test_title_scores_rank_the_named_item_first(text: str, best: str) -> None:
    scores = TitleIndex(TITLES).score(text)
    assert max(scores, key=lambda item: scores[item]) == best
    assert all(0.0 < s <= 1.0 + 1e-9 for s in scores.values())


def test_title_scores_respect_the_catalog_and_ignore_unrelated_text() -> None:
    index = TitleIndex(TITLES)
    assert len(index) == 4  # the empty title is left out
    assert index.score("今天天气很好") == {}
    assert set(index.score("短裤和连衣裙", items={"dress"})) == {"dress"}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("这个短裤啊，背带裤和裤子", ["短裤", "背带裤", "裤子"]),
        ("a T-shirt and a dress; stop", ["tshirt", "dress"]),  # "top" inside "stop" is not a word
        ("牛仔外套配连衣裙", ["牛仔外套", "连衣裙"]),
        ("今天天气很好", []),
    ],
)
def test_garment_words_take_the_longest_word(text: str, words: list[str]) -> None:
    assert garment_words(text) == words


def test_broad_words_share_a_mention_across_their_group() -> None:
    mentions = category_mentions("短裤，裤子", CATEGORIES)
    shorts, trousers = CATEGORIES.index("短裤"), CATEGORIES.index("长裤")
    assert mentions[shorts] == pytest.approx(1.25)
    assert mentions[trousers] == pytest.approx(0.25)
    assert category_mentions("短裤", ("长裤",)) == {}  # categories the detector lacks are left out
