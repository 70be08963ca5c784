"""The 23 garment categories: defined in :mod:`engines.categories` (the runtime needs them without
the training code); re-exported here for the training modules."""

from engines.categories import (
    CATEGORIES,
    ENGLISH,
    NUM_CATEGORIES,
    OFFICIAL_SPELLINGS,
    REGIONS,
    Region,
    UnknownCategoryError,
    canonical,
    category_index,
    english,
    region,
)

__all__ = [
    "CATEGORIES",
    "ENGLISH",
    "NUM_CATEGORIES",
    "OFFICIAL_SPELLINGS",
    "REGIONS",
    "Region",
    "UnknownCategoryError",
    "canonical",
    "category_index",
    "english",
    "region",
]
