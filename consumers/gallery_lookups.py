"""Lookups built from gallery metadata: a catalog's items, an item's categories."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

#: catalog id -> item ids of that catalog (None: unknown catalog).
CatalogResolver = Callable[[str], Collection[str] | None]
#: Unknown catalogs named in a warning (each once); further ones are only counted.
MAX_REPORTED_CATALOGS = 1000


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


class CatalogScope:
    """The items a frame may match, from its ``catalog`` header.

    Args:
        catalogs: Catalog id -> item ids (an unknown catalog matches nothing: warned once, counted).
        items: Fixed item ids for every frame (replay ``--catalog``); overrides the header.
    """

    def __init__(self, catalogs: CatalogResolver | None, items: Collection[str] | None = None) -> None:
        self.catalogs = catalogs
        self.items = frozenset(items) if items is not None else None
        self.unknown_searches = 0
        self._reported: set[str] = set()

    def items_of(self, catalog: str | None) -> frozenset[str] | None:
        """The allowed item ids (None: the whole gallery; empty: nothing can match)."""
        if self.items is not None:
            return self.items
        if catalog is None:
            return None
        found = self.catalogs(catalog) if self.catalogs is not None else None
        if found is not None:
            return frozenset(found)
        self.unknown_searches += 1
        if catalog not in self._reported and len(self._reported) < MAX_REPORTED_CATALOGS:
            self._reported.add(catalog)
            log.warning("catalog %r is not in the gallery: its streams match nothing "
                        "(publish its images with 'livetag gallery publish')", catalog[:100])
        return frozenset()
