"""One immutable state of the gallery: rows, lookups and a built search structure.

:class:`engines.gallery.GalleryIndex` answers every search from its current snapshot without a lock
and replaces it whole after a change. A change builds the next snapshot aside (copies of the arrays,
a FAISS index cloned and updated or rebuilt, the torch matrix uploaded) while searches go on against
the previous one; so adding or removing images never stalls searches, at the price of holding two
copies while the next one is built.

Lookups are numpy arrays, not per-image Python objects: building a snapshot then runs in numpy and
FAISS, which let go of the interpreter lock, and creates no million-entry dicts whose building (and
garbage collection) would hold every search thread back. Faiss ids are stable int64 per image,
increasing with the row (rows keep their order), so a faiss id finds its row by binary search.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engines.gallery_search import FaissSearcher, TorchSearcher

CATALOG_CACHE = 256


@dataclass(frozen=True)
class GallerySnapshot:
    """The gallery at one moment (never changed after it is built; the catalog cache aside).

    Attributes:
        ids: (N,) int64 faiss ids, increasing.
        vectors: (N, D) float32 unit vectors.
        boxes: (N, 4) float32 item boxes in the shop images (NaN rows: unknown).
        image_ids, item_ids, metadata: (N,) object arrays (str, str, dict).
        item_codes: (N,) int64 code of each row's item (``codes`` maps item id -> code).
        codes: Item id -> code; grows only (a code may outlive its item's last image).
        next_id: The faiss id the next added image gets.
        faiss: The built FAISS searcher (None with the torch backend).
        torch: The torch searcher with its matrix uploaded (None with FAISS).
    """

    ids: np.ndarray
    vectors: np.ndarray
    boxes: np.ndarray
    image_ids: np.ndarray
    item_ids: np.ndarray
    metadata: np.ndarray
    item_codes: np.ndarray
    codes: Mapping[str, int]
    next_id: int
    faiss: FaissSearcher | None
    torch: TorchSearcher | None
    _catalogs: OrderedDict[frozenset[str], np.ndarray] = field(default_factory=OrderedDict)
    _catalog_lock: threading.Lock = field(default_factory=threading.Lock)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def rows_of_ids(self, faiss_ids: np.ndarray) -> np.ndarray:
        """Rows of faiss ids (same shape); -1 for an id not in this snapshot (FAISS's -1 included)."""
        ids = np.asarray(faiss_ids, dtype=np.int64)
        if len(self) == 0:
            return np.full(ids.shape, -1, np.int64)
        pos = np.minimum(np.searchsorted(self.ids, ids), len(self) - 1)
        return np.where(self.ids[pos] == ids, pos, -1).astype(np.int64)

    def rows_of_items(self, item_ids: Collection[str]) -> np.ndarray:
        """Sorted (M,) int64 rows of the images of these items."""
        wanted = [self.codes[i] for i in item_ids if i in self.codes]
        if not wanted:
            return np.zeros((0,), np.int64)
        return np.flatnonzero(np.isin(self.item_codes, np.asarray(wanted, dtype=np.int64))).astype(np.int64)

    def catalog_rows(self, catalog: Collection[str]) -> np.ndarray:
        """:meth:`rows_of_items` cached per catalog (at most ``CATALOG_CACHE`` catalogs)."""
        key = frozenset(catalog)
        with self._catalog_lock:
            rows = self._catalogs.get(key)
            if rows is not None:
                self._catalogs.move_to_end(key)
                return rows
        rows = self.rows_of_items(key)
        with self._catalog_lock:
            self._catalogs[key] = rows
            if len(self._catalogs) > CATALOG_CACHE:
                self._catalogs.popitem(last=False)
        return rows

    def item_set(self) -> set[str]:
        """Items with at least one image."""
        return set(self.item_ids.tolist())


def objects(values: Sequence[Any]) -> np.ndarray:
    """A (N,) object array of ``values`` (strings stay strings, dicts stay dicts)."""
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def empty_snapshot(dim: int, faiss: FaissSearcher | None, torch: TorchSearcher | None) -> GallerySnapshot:
    none = objects([])
    return GallerySnapshot(np.zeros((0,), np.int64), np.zeros((0, dim), np.float32), np.zeros((0, 4), np.float32),
                           none, none, none, np.zeros((0,), np.int64), {}, 0, faiss, torch)


def loaded(
    ids: np.ndarray, vectors: np.ndarray, boxes: np.ndarray, image_ids: Sequence[str], item_ids: Sequence[str],
    metadata: Sequence[dict[str, Any]], next_id: int, faiss: FaissSearcher | None, torch: TorchSearcher | None,
) -> GallerySnapshot:
    """A snapshot of saved rows (``faiss`` / ``torch`` must already hold them); rows sorted by id."""
    order = np.argsort(ids, kind="stable")
    items = objects(item_ids)[order]
    codes: dict[str, int] = {}
    item_codes = np.asarray([codes.setdefault(i, len(codes)) for i in items.tolist()], dtype=np.int64)
    return GallerySnapshot(ids[order], vectors[order], boxes[order], objects(image_ids)[order], items,
                           objects(metadata)[order], item_codes, codes, next_id, faiss, torch)


def appended(
    snap: GallerySnapshot, image_ids: Sequence[str], item_ids: Sequence[str], unit: np.ndarray, boxes: np.ndarray,
    metadata: Sequence[dict[str, Any]],
) -> GallerySnapshot:
    """``snap`` with the rows added at its end (image ids not in ``snap``; see :func:`without_rows`)."""
    n = len(image_ids)
    new_ids = np.arange(snap.next_id, snap.next_id + n, dtype=np.int64)
    ids = np.concatenate([snap.ids, new_ids])
    vectors = np.concatenate([snap.vectors, unit])
    items = [str(i) for i in item_ids]
    codes = snap.codes
    if any(item not in codes for item in items):  # a new item: a grown copy (the old one may be in use)
        grown = dict(codes)
        for item in items:
            grown.setdefault(item, len(grown))
        codes = grown
    new_codes = np.asarray([codes[item] for item in items], dtype=np.int64)
    return GallerySnapshot(
        ids, vectors, np.concatenate([snap.boxes, boxes]),
        np.concatenate([snap.image_ids, objects([str(i) for i in image_ids])]),
        np.concatenate([snap.item_ids, objects(items)]),
        np.concatenate([snap.metadata, objects([dict(m) for m in metadata])]),
        np.concatenate([snap.item_codes, new_codes]), codes, snap.next_id + n,
        _next_faiss(snap.faiss, vectors, ids, added=(unit, new_ids)), _next_torch(snap.torch, vectors),
    )  # fmt: skip


def without_rows(snap: GallerySnapshot, rows: Collection[int]) -> GallerySnapshot:
    """``snap`` without the given rows (the others keep their faiss ids and order)."""
    keep = np.ones(len(snap), dtype=bool)
    keep[np.asarray(list(rows), dtype=np.int64)] = False
    ids, vectors = snap.ids[keep], snap.vectors[keep]
    return GallerySnapshot(
        ids, vectors, snap.boxes[keep], snap.image_ids[keep], snap.item_ids[keep], snap.metadata[keep],
        snap.item_codes[keep], snap.codes, snap.next_id,
        _next_faiss(snap.faiss, vectors, ids, removed=snap.ids[~keep]), _next_torch(snap.torch, vectors),
    )  # fmt: skip


def _next_faiss(
    current: FaissSearcher | None, vectors: np.ndarray, ids: np.ndarray,
    added: tuple[np.ndarray, np.ndarray] | None = None, removed: np.ndarray | None = None,
) -> FaissSearcher | None:
    """A searcher over ``vectors`` / ``ids``: ``current`` cloned and updated where its kind allows
    it, else rebuilt (``current`` itself is never changed: searches may be using it)."""
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
