"""The 23 garment categories of the Tianchi live-stream product challenge.

The Chinese names are the label set (model class order and the ``label`` field of annotations);
English aliases are for logs, plots and humans. Each category also has a body ``region`` that says
where it is worn, which the synthetic generator uses to dress a presenter.
"""

from __future__ import annotations

from typing import Literal

from stream.errors import LiveTagError

Region = Literal["upper", "lower", "full"]

CATEGORIES: tuple[str, ...] = (
    "短袖上衣",
    "长袖上衣",
    "短袖衬衫",
    "长袖衬衫",
    "背心上衣",
    "吊带上衣",
    "无袖上衣",
    "短外套",
    "短马甲",
    "长袖连衣裙",
    "短袖连衣裙",
    "无袖连衣裙",
    "长马甲",
    "长外套",
    "连体衣",
    "古风",
    "短裙",
    "中等半身裙",
    "长半身裙",
    "短裤",
    "中裤",
    "长裤",
    "背带裤",
)

ENGLISH: tuple[str, ...] = (
    "short_sleeve_top",
    "long_sleeve_top",
    "short_sleeve_shirt",
    "long_sleeve_shirt",
    "vest_top",
    "camisole",
    "sleeveless_top",
    "short_jacket",
    "short_waistcoat",
    "long_sleeve_dress",
    "short_sleeve_dress",
    "sleeveless_dress",
    "long_waistcoat",
    "long_coat",
    "jumpsuit",
    "hanfu",
    "short_skirt",
    "midi_skirt",
    "long_skirt",
    "shorts",
    "cropped_trousers",
    "trousers",
    "overalls",
)

REGIONS: tuple[Region, ...] = (
    "upper", "upper", "upper", "upper", "upper", "upper", "upper", "upper", "upper",
    "full", "full", "full", "full", "full", "full", "full",
    "lower", "lower", "lower", "lower", "lower", "lower", "full",
)

NUM_CATEGORIES = len(CATEGORIES)

#: The spellings of the official Tianchi annotation files, where they differ from the names above.
OFFICIAL_SPELLINGS: dict[str, str] = {
    "短袖Top": "短袖上衣",
    "长袖Top": "长袖上衣",
    "吊带Top": "吊带上衣",
    "背心Top": "背心上衣",
    "无袖Top": "无袖上衣",
    "长款外套": "长外套",
    "古装": "古风",
    "中等半身裙（及膝）": "中等半身裙",
    "长半身裙（到脚）": "长半身裙",
}

_INDEX = {name: i for i, name in enumerate(CATEGORIES)}
_INDEX.update({name: i for i, name in enumerate(ENGLISH)})
_INDEX.update({spelling: _INDEX[name] for spelling, name in OFFICIAL_SPELLINGS.items()})


class UnknownCategoryError(LiveTagError):
    """A label that is neither one of the 23 Chinese names nor an English alias."""


def category_index(name: str) -> int:
    """Index of a category given its Chinese name or English alias.

    Raises:
        UnknownCategoryError: the name is not a known category.
    """
    try:
        return _INDEX[name]
    except KeyError:
        raise UnknownCategoryError(
            f"unknown garment category {name!r}; expected one of the 23 Tianchi labels"
        ) from None


def canonical(name: str) -> str:
    """The Chinese name of :data:`CATEGORIES` for any known spelling (official, alias or canonical).

    Raises:
        UnknownCategoryError: the name is not a known category.
    """
    return CATEGORIES[category_index(name)]


def english(name: str) -> str:
    """English alias of a category (Chinese name or alias accepted)."""
    return ENGLISH[category_index(name)]


def region(name: str) -> Region:
    """Where a category is worn: ``upper`` body, ``lower`` body or ``full`` length."""
    return REGIONS[category_index(name)]
