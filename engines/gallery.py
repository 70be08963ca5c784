"""The gallery: shop-image vectors with their item ids, searched within one stream's catalog.

``GalleryIndex`` keeps the vectors and metadata in numpy (the source of truth) and a search structure
derived from them: a FAISS index (exact ``IndexFlatIP`` in ``IndexIDMap2`` by default; IVF or HNSW
for large galleries) or an exact torch matmul on a GPU. Images are added, replaced and removed at run
time (the gallery topic is followed live); every method is thread-safe.

Catalog restriction: a stream may only match items of its seller's catalog. When the catalog's
images are few (``exact_below``) they are scored exactly in numpy; otherwise FAISS searches with an
``IDSelectorBatch`` of the catalog's ids (or torch gathers the catalog's rows). Catalog lookups are
cached per catalog (at most ``CATALOG_CACHE`` catalogs, oldest evicted, cleared on any change).

Saved as a folder: ``index.faiss`` (the FAISS index), ``vectors.npz`` (faiss ids, vectors, item boxes)
and ``gallery.json`` (dim, index kind, image ids, item ids, metadata).
"""

from __future__ import annotations

import json
import logging
import threading
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engines.gallery_search import FaissSearcher, TorchSearcher, exact_top_k
from stream.errors import LiveTagError

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
CATALOG_CACHE = 256


class EmptyGalleryError(LiveTagError):
    """The gallery has no images (nothing was added, or the saved gallery is missing)."""


class GalleryInputError(LiveTagError):
    """Vectors or ids handed to the gallery do not fit it."""


@dataclass(frozen=True)
class GalleryHit:
    """One match: a shop image of an item, with its similarity.

    Attributes:
        image_id: The shop image.
        item_id: The product it shows.
        score: Cosine similarity in [-1, 1].
        item_box: ``x1, y1, x2, y2`` of the item in the shop image, or None.
        metadata: Whatever was stored with the image.
    """

    image_id: str
    item_id: str
    score: float
    item_box: tuple[float, float, float, float] | None
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)


def _unit_rows(vectors: np.ndarray, dim: int, what: str) -> np.ndarray:
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise GalleryInputError(f"{what} must be (N, {dim}) float32, got shape {np.shape(vectors)}")
    if not np.all(np.isfinite(arr)):
        raise GalleryInputError(f"{what} contain NaN or infinity; drop those rows")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise GalleryInputError(f"{what} contain an all-zero row, which has no direction; drop it")
    return np.ascontiguousarray(arr / norms, dtype=np.float32)


class GalleryIndex:
    """Shop-image vectors searchable per catalog.

    Args:
        dim: Vector size D.
        index: ``flat`` (exact), ``ivf``, ``hnsw`` or ``auto`` (flat below 100k images, then IVF).
        backend: ``faiss`` (CPU) or ``torch`` (exact matmul on ``device``).
        device: torch device for the ``torch`` backend.
        exact_below: Catalogs with at most this many images are scored exactly in numpy.
        **index_opts: ``nlist``, ``nprobe``, ``hnsw_m``, ``ef_search`` for the FAISS index.
    """

    def __init__(self, dim: int, index: str = "flat", backend: str = "faiss", device: str = "cpu", exact_below: int = 4096, **index_opts: Any) -> None:
        if dim < 1:
            raise GalleryInputError(f"dim must be >= 1, got {dim}")
        if backend not in ("faiss", "torch"):
            raise GalleryInputError(f"gallery backend must be 'faiss' or 'torch', got {backend!r}")
        self.dim = dim
        self.backend = backend
        self.exact_below = exact_below
        try:
            self._faiss = FaissSearcher(dim, index, **index_opts)
        except ValueError as exc:
            raise GalleryInputError(str(exc)) from exc
        self._torch = TorchSearcher(device) if backend == "torch" else None
        self._lock = threading.RLock()
        self._ids = np.zeros((0,), np.int64)
        self._vectors = np.zeros((0, dim), np.float32)
        self._boxes = np.zeros((0, 4), np.float32)
        self._image_ids: list[str] = []
        self._item_ids: list[str] = []
        self._meta: list[dict[str, Any]] = []
        self._row_of_image: dict[str, int] = {}
        self._row_of_id: dict[int, int] = {}
        self._rows_of_item: dict[str, list[int]] = {}
        self._next_id = 0
        self._stale = True
        self._catalog_cache: OrderedDict[frozenset[str], np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._image_ids)

    def item_ids(self) -> set[str]:
        """Items with at least one image."""
        with self._lock:
            return set(self._rows_of_item)

    def image_ids(self) -> list[str]:
        """Image ids in row order."""
        with self._lock:
            return list(self._image_ids)

    def vectors(self) -> np.ndarray:
        """(N, D) float32 copy of the stored unit vectors, in row order."""
        with self._lock:
            return self._vectors.copy()

    def _reindex(self) -> None:
        self._row_of_image = {img: row for row, img in enumerate(self._image_ids)}
        self._row_of_id = {fid: row for row, fid in enumerate(self._ids.tolist())}
        rows: dict[str, list[int]] = {}
        for row, item in enumerate(self._item_ids):
            rows.setdefault(item, []).append(row)
        self._rows_of_item = rows
        self._catalog_cache.clear()
        if self._torch is not None:
            self._torch.matrix = None

    def add(
        self,
        image_ids: Sequence[str],
        item_ids: Sequence[str],
        vectors: np.ndarray,
        item_boxes: np.ndarray | Sequence[Sequence[float] | None] | None = None,
        metadata: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        """Add images; an image id already present is replaced.

        Args:
            image_ids: N unique image ids.
            item_ids: N item ids.
            vectors: (N, D) float; rows are L2-normalised on the way in.
            item_boxes: (N, 4) item boxes in the shop images (None or NaN rows for unknown).
            metadata: N JSON-serialisable dicts.

        Raises:
            GalleryInputError: Lengths or shapes disagree, ids repeat, or vectors are not finite.
        """
        n = len(image_ids)
        unit = _unit_rows(vectors, self.dim, "gallery vectors")
        if len(item_ids) != n or unit.shape[0] != n or (metadata is not None and len(metadata) != n):
            raise GalleryInputError(f"add() needs as many item ids, vectors and metadata as image ids ({n})")
        if len(set(image_ids)) != n:
            raise GalleryInputError("add() got the same image id twice in one call")
        boxes = np.full((n, 4), np.nan, np.float32)
        if item_boxes is not None:
            for i, box in enumerate(item_boxes):
                if box is not None:
                    boxes[i] = np.asarray(box, np.float32).reshape(4)
        with self._lock:
            replaced = [img for img in image_ids if img in self._row_of_image]
            if replaced:
                self.remove_images(replaced)
            ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
            self._next_id += n
            self._ids = np.concatenate([self._ids, ids])
            self._vectors = np.concatenate([self._vectors, unit])
            self._boxes = np.concatenate([self._boxes, boxes])
            self._image_ids.extend(str(i) for i in image_ids)
            self._item_ids.extend(str(i) for i in item_ids)
            self._meta.extend(dict(m) for m in (metadata or [{} for _ in range(n)]))
            self._reindex()
            if not self._stale and not self._faiss.needs_rebuild(len(self._ids)):
                self._faiss.add(unit, ids)
            else:
                self._stale = True

    def _remove_rows(self, rows: Iterable[int]) -> int:
        drop = np.zeros(len(self._image_ids), dtype=bool)
        drop[list(rows)] = True
        count = int(drop.sum())
        if count == 0:
            return 0
        if not self._stale and not self._faiss.remove(self._ids[drop]):
            self._stale = True
        keep = ~drop
        kept_rows = np.flatnonzero(keep)
        self._ids, self._vectors, self._boxes = self._ids[keep], self._vectors[keep], self._boxes[keep]
        self._image_ids = [self._image_ids[r] for r in kept_rows]
        self._item_ids = [self._item_ids[r] for r in kept_rows]
        self._meta = [self._meta[r] for r in kept_rows]
        self._reindex()
        return count

    def remove_images(self, image_ids: Iterable[str]) -> int:
        """Remove images by id (unknown ids are ignored); returns how many were removed."""
        with self._lock:
            return self._remove_rows(self._row_of_image[i] for i in image_ids if i in self._row_of_image)

    def remove_items(self, item_ids: Iterable[str]) -> int:
        """Remove every image of the given items; returns how many images were removed."""
        with self._lock:
            return self._remove_rows(r for item in item_ids for r in self._rows_of_item.get(item, []))

    def _catalog_rows(self, catalog: Collection[str]) -> np.ndarray:
        key = frozenset(catalog)
        rows = self._catalog_cache.get(key)
        if rows is None:
            found = [r for item in key for r in self._rows_of_item.get(item, [])]
            rows = np.asarray(sorted(found), dtype=np.int64)
            self._catalog_cache[key] = rows
            if len(self._catalog_cache) > CATALOG_CACHE:
                self._catalog_cache.popitem(last=False)
        else:
            self._catalog_cache.move_to_end(key)
        return rows

    def _ensure_index(self) -> None:
        if self._torch is not None:
            if self._torch.matrix is None:
                self._torch.build(self._vectors)
            return
        if self._stale or self._faiss.needs_rebuild(len(self._ids)):
            self._faiss.build(self._vectors, self._ids)
            self._stale = False

    def search(self, queries: np.ndarray, k: int = 5, catalog: Collection[str] | None = None) -> list[list[GalleryHit]]:
        """The ``k`` most similar images per query, optionally only among a catalog's items.

        Args:
            queries: (Q, D) float vectors (normalised on the way in) or one (D,) vector.
            k: Hits per query.
            catalog: Item ids the stream may match; None searches everything.

        Returns:
            Q lists of at most ``k`` hits, best first (empty when the catalog has no images here).

        Raises:
            EmptyGalleryError: The gallery holds no images.
            GalleryInputError: Queries have the wrong shape or are not finite.
        """
        q = _unit_rows(queries, self.dim, "query vectors")
        if k < 1:
            raise GalleryInputError(f"k must be >= 1, got {k}")
        with self._lock:
            if not self._image_ids:
                raise EmptyGalleryError("the gallery is empty; build it with 'livetag gallery build' or add images first")
            rows = None if catalog is None else self._catalog_rows(catalog)
            if rows is not None and rows.size == 0:
                return [[] for _ in range(q.shape[0])]
            if rows is not None and rows.size <= self.exact_below:
                scores, pos = exact_top_k(q, self._vectors[rows], k)
                found = rows[pos]
            else:
                self._ensure_index()
                if self._torch is not None:
                    scores, found = self._torch.search(q, k, rows)
                else:
                    allowed = None if rows is None else self._ids[rows]
                    scores, faiss_ids = self._faiss.search(q, k, allowed)
                    found = np.array([[self._row_of_id.get(f, -1) for f in line] for line in faiss_ids.tolist()], np.int64)
                    found = found.reshape(faiss_ids.shape)
            return [[self._hit(int(r), float(s)) for r, s in zip(fr, sr, strict=True) if r >= 0] for fr, sr in zip(found, scores, strict=True)]

    def _hit(self, row: int, score: float) -> GalleryHit:
        box = self._boxes[row]
        return GalleryHit(
            image_id=self._image_ids[row],
            item_id=self._item_ids[row],
            score=score,
            item_box=None if np.isnan(box).any() else (float(box[0]), float(box[1]), float(box[2]), float(box[3])),
            metadata=self._meta[row],
        )

    def save(self, folder: str | Path) -> Path:
        """Write the gallery to ``folder`` (created); returns the folder."""
        import faiss

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if self._stale or self._faiss.needs_rebuild(len(self._ids)):
                self._faiss.build(self._vectors, self._ids)
                self._stale = False
            faiss.write_index(self._faiss.index, str(out / "index.faiss"))
            np.savez(out / "vectors.npz", ids=self._ids, vectors=self._vectors, boxes=self._boxes)
            info = {
                "format_version": FORMAT_VERSION,
                "dim": self.dim,
                "index": self._faiss.kind,
                "next_id": self._next_id,
                "image_ids": self._image_ids,
                "item_ids": self._item_ids,
                "metadata": self._meta,
            }
            (out / "gallery.json").write_text(json.dumps(info, ensure_ascii=False), encoding="utf-8")
        return out

    @classmethod
    def load(cls, folder: str | Path, backend: str = "faiss", device: str = "cpu", **opts: Any) -> GalleryIndex:
        """Read a gallery written by :meth:`save`.

        Raises:
            EmptyGalleryError: The folder or its files are missing.
            GalleryInputError: The files disagree with each other.
        """
        import faiss

        path = Path(folder)
        files = [path / "gallery.json", path / "vectors.npz"]
        if not all(f.is_file() for f in files):
            raise EmptyGalleryError(f"{path}: no saved gallery here (run 'livetag gallery build' first)")
        try:
            info = json.loads(files[0].read_text(encoding="utf-8"))
            with np.load(files[1]) as arrays:  # read every array now: a cut file fails here, not later
                ids, vectors, boxes = (np.array(arrays[k]) for k in ("ids", "vectors", "boxes"))
            n = len(info.get("image_ids", []))
            agree = len(ids) == vectors.shape[0] == boxes.shape[0] == len(info["item_ids"]) == n
            dim = int(info["dim"])
        except (ValueError, KeyError, TypeError, AttributeError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise GalleryInputError(f"{path}: saved gallery is unreadable ({type(exc).__name__}: {exc}); rebuild it") from exc
        if info.get("format_version") != FORMAT_VERSION or not agree or vectors.ndim != 2 or vectors.shape[1] != dim:
            raise GalleryInputError(f"{path}: gallery.json and vectors.npz disagree; rebuild the gallery")
        opts.setdefault("index", info.get("index", "flat"))
        gallery = cls(dim, backend=backend, device=device, **opts)
        with gallery._lock:
            gallery._ids, gallery._vectors, gallery._boxes = ids.astype(np.int64), vectors.astype(np.float32), boxes.astype(np.float32)
            gallery._image_ids, gallery._item_ids = list(info["image_ids"]), list(info["item_ids"])
            gallery._meta = list(info.get("metadata") or [{} for _ in range(n)])
            gallery._next_id = int(info.get("next_id", int(ids.max(initial=-1)) + 1))
            gallery._reindex()
            index_file = path / "index.faiss"
            if index_file.is_file():
                try:
                    index = faiss.read_index(str(index_file))
                except RuntimeError as exc:  # the index is a cache of vectors.npz: rebuild it
                    log.warning("%s is unreadable (%s); the index is rebuilt from vectors.npz",
                                index_file, str(exc).splitlines()[0][:200])
                    index = None
                if index is not None and index.ntotal == n and index.d == gallery.dim:
                    gallery._faiss.index = index
                    gallery._faiss.built_kind = _kind_of(index)
                    gallery._faiss.built_count = n
                    gallery._stale = False
        return gallery


def _kind_of(index: Any) -> str:
    """``ivf``, ``hnsw`` or ``flat`` for a FAISS index read from disk (IndexIDMap2 is looked through)."""
    import faiss

    name = type(index).__name__
    if "IDMap" in name:
        name = type(faiss.downcast_index(index.index)).__name__
    return "ivf" if "IVF" in name else "hnsw" if "HNSW" in name else "flat"
