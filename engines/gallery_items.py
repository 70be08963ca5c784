"""What the gallery knows about its items besides vectors: catalogs, categories and titles.

:class:`engines.gallery.GalleryIndex` keeps one :class:`ItemMetadata` in step with its images (under
its write lock): every image's metadata may name its ``catalog``, its ``category`` (an index into the
detector's classes) and its item's ``title``. The tables are kept per image, so removing an image
forgets exactly what it brought; updates cost O(images changed), never a pass over the gallery.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: Longest item title kept (the text cues read no more).
MAX_TITLE_CHARS = 500


class ItemMetadata:
    """Catalog -> items, item -> categories and item -> title, from per-image metadata.

    Reads and writes may come from different threads (a lock guards the tables).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._catalogs: dict[str, dict[str, str]] = {}  # catalog -> image id -> item id
        self._categories: dict[str, dict[str, int]] = {}  # item id -> image id -> category index
        self._titles: dict[str, dict[str, str]] = {}  # item id -> image id -> title
        self._where: dict[str, tuple[str | None, str]] = {}  # image id -> (catalog, item id)

    def add(self, image_ids: Sequence[str], item_ids: Sequence[str], metadata: Sequence[Mapping[str, Any]]) -> None:
        """Record (or replace) what each image's metadata says about its item."""
        with self._lock:
            for image_id, item_id, meta in zip(image_ids, item_ids, metadata, strict=True):
                self._forget(image_id)
                catalog = meta.get("catalog")
                catalog = str(catalog) if catalog is not None else None
                self._where[image_id] = (catalog, item_id)
                if catalog is not None:
                    self._catalogs.setdefault(catalog, {})[image_id] = item_id
                category = meta.get("category")
                if isinstance(category, int) and not isinstance(category, bool) and category >= 0:
                    self._categories.setdefault(item_id, {})[image_id] = category
                title = meta.get("title")
                if isinstance(title, str) and title:
                    self._titles.setdefault(item_id, {})[image_id] = title[:MAX_TITLE_CHARS]

    def remove(self, image_ids: Iterable[str]) -> None:
        """Forget what these images brought (unknown ids are ignored)."""
        with self._lock:
            for image_id in image_ids:
                self._forget(image_id)

    def _forget(self, image_id: str) -> None:
        where = self._where.pop(image_id, None)
        if where is None:
            return
        catalog, item_id = where
        for table, key in ((self._catalogs, catalog), (self._categories, item_id), (self._titles, item_id)):
            if key is None or key not in table:
                continue
            images = table[key]
            images.pop(image_id, None)
            if not images:
                del table[key]

    def catalog_items(self, catalog: str) -> frozenset[str] | None:
        """Items of ``catalog`` with at least one image; None for a catalog the gallery does not have."""
        with self._lock:
            images = self._catalogs.get(catalog)
            return frozenset(images.values()) if images else None

    def item_categories(self, item_id: str) -> frozenset[int] | None:
        """Category indices the item's images give (None when they give none)."""
        with self._lock:
            images = self._categories.get(item_id)
            return frozenset(images.values()) if images else None

    def item_titles(self) -> dict[str, str]:
        """item id -> title (of one of its images)."""
        with self._lock:
            return {item: next(iter(images.values())) for item, images in self._titles.items()}
