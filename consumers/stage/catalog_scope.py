"""Which items a frame may match: its catalog's (``GalleryIndex.catalog_items``) or a fixed set."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

log = logging.getLogger(__name__)

#: catalog id -> item ids of that catalog (None: unknown catalog).
CatalogResolver = Callable[[str], Collection[str] | None]
#: Unknown catalogs named in a warning (each once); further ones are only counted.
MAX_REPORTED_CATALOGS = 1000


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
