"""One immutable state of the gallery: rows, lookups and a built search structure.

:class:`engines.gallery.GalleryIndex` answers every search from its current snapshot without a lock
and replaces it whole after a change. A change builds the next snapshot aside (copies of the arrays,
the lookups, a FAISS index cloned and updated or rebuilt, the torch matrix uploaded) while searches
go on against the previous one; so adding or removing images never stalls searches, at the price of
holding two copies while the next one is built.

Rows are positions in the arrays; faiss ids are stable int64 per image (an image keeps its id until
it is removed or replaced).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engines.gallery_search import FaissSearcher, TorchSearcher

CATALOG_CACHE = 256


@dataclass(frozen=True)
class GallerySnapshot:
    """The gallery at one moment (never changed after it is built; the catalog cache aside).

    Attributes:
        ids: (N,) int64 faiss ids.
        vectors: (N, D) float32 unit vectors.
        boxes: (N, 4) float32 item boxes in the shop images (NaN rows: unknown).
        image_ids, item_ids, metadata: Per row.
        next_id: The faiss id the next added image gets.
        faiss: The built FAISS searcher (None with the torch backend).
        torch: The torch searcher with its matrix uploaded (None with FAISS).
    """

    ids: np.ndarray
    vectors: np.ndarray
    boxes: np.ndarray
    image_ids: list[str]
    item_ids: list[str]
    metadata: list[dict[str, Any]]
    next_id: int
    faiss: FaissSearcher | None
    torch: TorchSearcher | None
    row_of_image: dict[str, int] = field(default_factory=dict)
    row_of_id: dict[int, int] = field(default_factory=dict)
    rows_of_item: dict[str, list[int]] = field(default_factory=dict)
    _catalogs: OrderedDict[frozenset[str], np.ndarray] = field(default_factory=OrderedDict)
    _catalog_lock: threading.Lock = field(default_factory=threading.Lock)

    def __len__(self) -> int:
        return len(self.image_ids)

    def catalog_rows(self, catalog: Collection[str]) -> np.ndarray:
        """Sorted (M,) int64 rows of the catalog's items (cached, at most ``CATALOG_CACHE`` catalogs)."""
        key = frozenset(catalog)
        with self._catalog_lock:
            rows = self._catalogs.get(key)
            if rows is not None:
                self._catalogs.move_to_end(key)
                return rows
        found = [r for item in key for r in self.rows_of_item.get(item, [])]
        rows = np.asarray(sorted(found), dtype=np.int64)
        with self._catalog_lock:
            self._catalogs[key] = rows
            if len(self._catalogs) > CATALOG_CACHE:
                self._catalogs.popitem(last=False)
        return rows


def build_snapshot(
    ids: np.ndarray, vectors: np.ndarray, boxes: np.ndarray, image_ids: list[str], item_ids: list[str],
    metadata: list[dict[str, Any]], next_id: int, faiss: FaissSearcher | None, torch: TorchSearcher | None,
) -> GallerySnapshot:
    """A snapshot of these rows with its lookups; ``faiss`` / ``torch`` must already hold these rows."""
    rows_of_item: dict[str, list[int]] = {}
    for row, item in enumerate(item_ids):
        rows_of_item.setdefault(item, []).append(row)
    return GallerySnapshot(
        ids, vectors, boxes, image_ids, item_ids, metadata, next_id, faiss, torch,
        row_of_image={img: row for row, img in enumerate(image_ids)},
        row_of_id={fid: row for row, fid in enumerate(ids.tolist())},
        rows_of_item=rows_of_item,
    )  # fmt: skip


def appended(
    snap: GallerySnapshot, image_ids: Sequence[str], item_ids: Sequence[str], unit: np.ndarray, boxes: np.ndarray,
    metadata: Sequence[dict[str, Any]],
) -> GallerySnapshot:
    """``snap`` with the rows added at its end (image ids not in ``snap``; see :func:`without_rows`)."""
    n = len(image_ids)
    new_ids = np.arange(snap.next_id, snap.next_id + n, dtype=np.int64)
    ids = np.concatenate([snap.ids, new_ids])
    vectors = np.concatenate([snap.vectors, unit])
    faiss = _next_faiss(snap.faiss, vectors, ids, added=(unit, new_ids))
    return build_snapshot(
        ids, vectors, np.concatenate([snap.boxes, boxes]), [*snap.image_ids, *map(str, image_ids)],
        [*snap.item_ids, *map(str, item_ids)], [*snap.metadata, *(dict(m) for m in metadata)],
        snap.next_id + n, faiss, _next_torch(snap.torch, vectors),
    )  # fmt: skip


def without_rows(snap: GallerySnapshot, rows: Collection[int]) -> GallerySnapshot:
    """``snap`` without the given rows (the others keep their faiss ids and order)."""
    drop = np.zeros(len(snap), dtype=bool)
    drop[list(rows)] = True
    keep = np.flatnonzero(~drop)
    ids, vectors = snap.ids[keep], snap.vectors[keep]
    faiss = _next_faiss(snap.faiss, vectors, ids, removed=snap.ids[drop])
    return build_snapshot(
        ids, vectors, snap.boxes[keep], [snap.image_ids[r] for r in keep], [snap.item_ids[r] for r in keep],
        [snap.metadata[r] for r in keep], snap.next_id, faiss, _next_torch(snap.torch, vectors),
    )  # fmt: skip


def _next_faiss(
    current: FaissSearcher | None, vectors: np.ndarray, ids: np.ndarray,
    added: tuple[np.ndarray, np.ndarray] | None = None, removed: np.ndarray | None = None,
) -> FaissSearcher | None:
    """A searcher over ``vectors`` / ``ids``: ``current`` copied and updated in place where its kind
    allows it, else rebuilt (``current`` itself is never changed: searches may be using it)."""
    if current is None:
        return None
    in_place = current.index is not None and not current.needs_rebuild(len(ids))
    if in_place and added is not None:
        nxt = current.copy(with_index=True)
        nxt.add(*added)
        return nxt
    if in_place and removed is not None and current.built_kind != "hnsw":
        nxt = current.copy(with_index=True)
        nxt.remove(removed)
        return nxt
    nxt = current.copy(with_index=False)
    nxt.build(vectors, ids)
    return nxt


def _next_torch(current: TorchSearcher | None, vectors: np.ndarray) -> TorchSearcher | None:
    if current is None:
        return None
    nxt = current.copy()
    nxt.build(vectors)
    return nxt
