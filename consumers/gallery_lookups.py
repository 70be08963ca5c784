"""Lookups built from gallery metadata: a catalog's items, an item's categories."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

#: catalog id -> item ids of that catalog (None: unknown catalog).
CatalogResolver = Callable[[str], Collection[str] | None]


def catalog_resolver(item_ids: Sequence[str], metadata: Sequence[Mapping[str, Any]]) -> CatalogResolver:
    """A resolver from gallery entries: a catalog's items are those whose metadata ``catalog`` names it."""
    table: dict[str, set[str]] = {}
    for item_id, meta in zip(item_ids, metadata, strict=True):
        catalog = meta.get("catalog")
        if catalog is not None:
            table.setdefault(str(catalog), set()).add(str(item_id))
    frozen = {k: frozenset(v) for k, v in table.items()}
    return frozen.get


def category_lookup(item_ids: Sequence[str], metadata: Sequence[Mapping[str, Any]]) -> Callable[[str], Collection[int] | None]:
    """item id -> category indices found in gallery metadata (``category``), for the voter's check."""
    table: dict[str, set[int]] = {}
    for item_id, meta in zip(item_ids, metadata, strict=True):
        category = meta.get("category")
        if isinstance(category, int) and category >= 0:
            table.setdefault(str(item_id), set()).add(category)
    frozen = {k: frozenset(v) for k, v in table.items()}
    return frozen.get
