"""Garment words in Chinese and English, and the categories they name.

A seller who says "这个短裤" ("these shorts"), a banner that reads "连衣裙", or a catalog title
that contains "西装" names a garment category. The table below maps such words to the 23 Tianchi
category names (Chinese, as in the detector's ``classes``). Specific words name one category;
broad words ("裤子", trousers of any length; "裙", any skirt or dress) name a group, and each
category of the group gets an equal share of the mention. Text is scanned left to right taking
the longest word at each position, so "背带裤" is overalls and not "裤" (trousers).

The words were chosen from garment vocabulary, not from any evaluation set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from consumers.text.text_match import normalise

_TOPS = ("短袖上衣", "长袖上衣", "短袖衬衫", "长袖衬衫", "背心上衣", "吊带上衣", "无袖上衣")
_SHIRTS = ("短袖衬衫", "长袖衬衫")
_COATS = ("短外套", "长外套")
_WAISTCOATS = ("短马甲", "长马甲")
_DRESSES = ("长袖连衣裙", "短袖连衣裙", "无袖连衣裙")
_SKIRTS = ("短裙", "中等半身裙", "长半身裙")
_TROUSERS = ("短裤", "中裤", "长裤", "背带裤")

#: word -> the category names it may mean.
CATEGORY_WORDS: Mapping[str, tuple[str, ...]] = {
    # tops
    "上衣": _TOPS, "top": _TOPS, "tops": _TOPS,
    "短袖": ("短袖上衣", "短袖衬衫", "短袖连衣裙"),
    "长袖": ("长袖上衣", "长袖衬衫", "长袖连衣裙"),
    "无袖": ("无袖上衣", "无袖连衣裙", "背心上衣"),
    "t恤": ("短袖上衣",), "体恤": ("短袖上衣",), "tshirt": ("短袖上衣",), "tee": ("短袖上衣",),
    "短袖上衣": ("短袖上衣",), "长袖上衣": ("长袖上衣",),
    "卫衣": ("长袖上衣",), "毛衣": ("长袖上衣",), "针织衫": ("长袖上衣",), "打底衫": ("长袖上衣",),
    "sweater": ("长袖上衣",), "hoodie": ("长袖上衣",),
    "衬衫": _SHIRTS, "衬衣": _SHIRTS, "shirt": _SHIRTS, "blouse": _SHIRTS,
    "短袖衬衫": ("短袖衬衫",), "长袖衬衫": ("长袖衬衫",),
    "背心": ("背心上衣",), "吊带": ("吊带上衣",), "camisole": ("吊带上衣",),
    # coats and waistcoats
    "外套": _COATS, "jacket": _COATS, "coat": _COATS,
    "短外套": ("短外套",), "夹克": ("短外套",), "西装": ("短外套",), "皮衣": ("短外套",),
    "开衫": ("短外套",), "牛仔外套": ("短外套",),
    "长外套": ("长外套",), "长款外套": ("长外套",), "大衣": ("长外套",), "风衣": ("长外套",),
    "trench": ("长外套",),
    "马甲": _WAISTCOATS, "waistcoat": _WAISTCOATS, "vest": _WAISTCOATS,
    "短马甲": ("短马甲",), "长马甲": ("长马甲",),
    # dresses, one-pieces, skirts
    "连衣裙": _DRESSES, "dress": _DRESSES,
    "长袖连衣裙": ("长袖连衣裙",), "短袖连衣裙": ("短袖连衣裙",), "无袖连衣裙": ("无袖连衣裙",),
    "吊带裙": ("无袖连衣裙",), "背带裙": ("无袖连衣裙",),
    "连体衣": ("连体衣",), "连体裤": ("连体衣",), "jumpsuit": ("连体衣",),
    "汉服": ("古风",), "古风": ("古风",), "古装": ("古风",), "hanfu": ("古风",),
    "裙": _DRESSES + _SKIRTS, "裙子": _DRESSES + _SKIRTS,
    "半身裙": _SKIRTS, "skirt": _SKIRTS,
    "短裙": ("短裙",), "迷你裙": ("短裙",), "中裙": ("中等半身裙",), "及膝裙": ("中等半身裙",),
    "长裙": ("长半身裙",), "长半身裙": ("长半身裙",),
    # trousers
    "裤": _TROUSERS, "裤子": _TROUSERS, "pants": _TROUSERS, "trousers": _TROUSERS,
    "短裤": ("短裤",), "shorts": ("短裤",),
    "中裤": ("中裤",), "五分裤": ("中裤",), "七分裤": ("中裤",),
    "长裤": ("长裤",), "阔腿裤": ("长裤",), "牛仔裤": ("长裤",), "西裤": ("长裤",), "休闲裤": ("长裤",),
    "直筒裤": ("长裤",), "jeans": ("长裤",),
    "背带裤": ("背带裤",), "overalls": ("背带裤",),
}

# Longest first: the regex alternation takes the first word that matches at a position.
_PATTERN = re.compile("|".join(re.escape(w) for w in sorted(CATEGORY_WORDS, key=lambda w: (-len(w), w))))


def garment_words(text: str) -> list[str]:
    """The garment words of ``text`` in order, longest match at each position.

    Latin words count only as whole words ("top" in "stop" does not).
    """
    found: list[str] = []
    flat = normalise(text).replace("t shirt", "tshirt")
    for match in _PATTERN.finditer(flat):
        word = match.group(0)
        if word.isascii():
            before = flat[match.start() - 1] if match.start() > 0 else " "
            after = flat[match.end()] if match.end() < len(flat) else " "
            if before.isalnum() and before.isascii() or after.isalnum() and after.isascii():
                continue
        found.append(word)
    return found


def category_mentions(text: str, classes: Sequence[str]) -> dict[int, float]:
    """Category index (position in ``classes``) -> mentions of ``text`` (a broad word's mention is
    shared equally by its group; categories missing from ``classes`` are left out)."""
    index = {name: i for i, name in enumerate(classes)}
    out: dict[int, float] = {}
    for word in garment_words(text):
        group = [index[name] for name in CATEGORY_WORDS[word] if name in index]
        for category in group:
            out[category] = out.get(category, 0.0) + 1.0 / len(group)
    return out
