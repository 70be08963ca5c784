"""The gallery: shop-image vectors with their item ids, searched within one stream's catalog.

``GalleryIndex`` keeps the vectors and metadata in numpy (the source of truth) and a search structure
derived from them: a FAISS index (exact ``IndexFlatIP`` in ``IndexIDMap2`` by default; IVF or HNSW
for large galleries) or an exact torch matmul on a GPU. Images are added, replaced and removed at run
time (the gallery topic is followed live); every method is thread-safe, and a change is built aside
and swapped in (``engines.gallery_snapshot``), so searches never wait for it.

Catalog restriction: a stream may only match items of its seller's catalog. When the catalog's
images are few (``exact_below``) they are scored exactly in numpy; otherwise FAISS searches with an
``IDSelectorBatch`` of the catalog's ids (or torch gathers the catalog's rows). Catalog lookups are
cached per catalog (at most 256 catalogs per snapshot, oldest evicted; a change starts a new cache).

Saved as a folder: ``index.faiss`` (the FAISS index), ``vectors.npz`` (faiss ids, vectors, item boxes)
and ``gallery.json`` (dim, index kind, image ids, item ids, metadata).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import zipfile
import zlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engines.gallery_items import ItemMetadata
from engines.gallery_search import FaissSearcher, TorchSearcher, exact_top_k
from engines.gallery_snapshot import GallerySnapshot, appended, empty_snapshot, loaded, without_rows
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
    item_box: tuple[float, float, float, float] | None = None
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

    Searches read the current :class:`~engines.gallery_snapshot.GallerySnapshot` without a lock;
    ``add`` and ``remove_*`` build the next snapshot aside (one writer at a time) and swap it in, so
    a change never stalls a search.

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
            faiss = FaissSearcher(dim, index, **index_opts)
        except ValueError as exc:
            raise GalleryInputError(str(exc)) from exc
        torch = TorchSearcher(device) if backend == "torch" else None
        self._write_lock = threading.Lock()
        self._snap = empty_snapshot(dim, None if torch else faiss, torch)
        self._id_of_image: dict[str, int] = {}  # image id -> faiss id; the writers' own (under the lock)
        self._items = ItemMetadata()

    @property
    def snapshot(self) -> GallerySnapshot:
        """The current state (immutable: later changes make a new one)."""
        return self._snap

    @property
    def index_kind(self) -> str:
        """The built FAISS index's kind (``flat``, ``ivf``, ``hnsw``; empty before the first image)."""
        return self._snap.faiss.built_kind if self._snap.faiss is not None else ""

    def __len__(self) -> int:
        return len(self._snap)

    def item_ids(self) -> set[str]:
        """Items with at least one image."""
        return self._snap.item_set()

    def catalog_items(self, catalog: str) -> frozenset[str] | None:
        """Items of ``catalog`` (images' metadata ``catalog``); None for a catalog not in the gallery."""
        return self._items.catalog_items(catalog)

    def item_categories(self, item_id: str) -> frozenset[int] | None:
        """Detector category indices of the item (images' metadata ``category``), or None."""
        return self._items.item_categories(item_id)

    def item_titles(self) -> dict[str, str]:
        """item id -> title (images' metadata ``title``), for the text cues."""
        return self._items.item_titles()

    def image_ids(self) -> list[str]:
        """Image ids in row order."""
        return [str(i) for i in self._snap.image_ids.tolist()]

    def vectors(self) -> np.ndarray:
        """(N, D) float32 copy of the stored unit vectors, in row order."""
        return self._snap.vectors.copy()

    def add(
        self,
        image_ids: Sequence[str],
        item_ids: Sequence[str],
        vectors: np.ndarray,
        item_boxes: np.ndarray | Sequence[Sequence[float] | None] | None = None,
        metadata: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        """Add images; an image id already present is replaced. Add many at once where you can: each
        call copies the gallery once.

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
        with self._write_lock:
            snap = self._snap
            replaced = [self._id_of_image[img] for img in image_ids if img in self._id_of_image]
            if replaced:
                snap = without_rows(snap, snap.rows_of_ids(np.asarray(replaced)).tolist())
            metadata = metadata or [{} for _ in range(n)]
            snap = appended(snap, image_ids, item_ids, unit, boxes, metadata)
            self._id_of_image.update(zip(map(str, image_ids), snap.ids[-n:].tolist(), strict=True))
            self._items.add([str(i) for i in image_ids], [str(i) for i in item_ids], metadata)
            self._swap(snap)

    def remove_images(self, image_ids: Iterable[str]) -> int:
        """Remove images by id (unknown ids are ignored); returns how many were removed."""
        with self._write_lock:
            gone = [self._id_of_image[i] for i in set(image_ids) if i in self._id_of_image]
            return self._remove_rows(set(self._snap.rows_of_ids(np.asarray(gone, dtype=np.int64)).tolist()))

    def remove_items(self, item_ids: Iterable[str]) -> int:
        """Remove every image of the given items; returns how many images were removed."""
        with self._write_lock:
            return self._remove_rows(set(self._snap.rows_of_items(set(item_ids)).tolist()))

    def _remove_rows(self, rows: set[int]) -> int:
        rows.discard(-1)
        if rows:
            snap = self._snap
            gone = snap.image_ids[sorted(rows)].tolist()
            for image_id in gone:
                self._id_of_image.pop(image_id, None)
            self._items.remove(gone)
            new = without_rows(snap, rows)
            del snap  # no reference of ours may keep the replaced snapshot alive (see _swap)
            self._swap(new)
        return len(rows)

    def _swap(self, snap: GallerySnapshot) -> None:
        """Make ``snap`` current; free the replaced one here (in the writer), once no search holds
        it, rather than in whichever search thread lets go of it last (up to 2 s of waiting)."""
        old, self._snap = self._snap, snap
        for _ in range(400):
            if sys.getrefcount(old) <= 2:  # this frame's name and the call's argument
                break
            time.sleep(0.005)
        del old

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
        snap = self._snap  # one consistent state for the whole call
        if not len(snap):
            raise EmptyGalleryError("the gallery is empty; build it with 'livetag gallery build' or add images first")
        rows = None if catalog is None else snap.catalog_rows(catalog)
        if rows is not None and rows.size == 0:
            return [[] for _ in range(q.shape[0])]
        if rows is not None and rows.size <= self.exact_below:
            scores, pos = exact_top_k(q, snap.vectors[rows], k)
            found = rows[pos]
        elif snap.torch is not None:
            scores, found = snap.torch.search(q, k, rows)
        else:
            assert snap.faiss is not None
            allowed = None if rows is None else snap.ids[rows]
            scores, faiss_ids = snap.faiss.search(q, k, allowed)
            found = snap.rows_of_ids(faiss_ids)
        return [[_hit(snap, int(r), float(s)) for r, s in zip(fr, sr, strict=True) if r >= 0]
                for fr, sr in zip(found, scores, strict=True)]

    def save(self, folder: str | Path) -> Path:
        """Write the gallery to ``folder`` (created); returns the folder."""
        import faiss

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        snap = self._snap
        searcher = snap.faiss
        if searcher is None:  # the torch backend: write a flat index so the folder loads either way
            searcher = FaissSearcher(self.dim, "flat")
            searcher.build(snap.vectors, snap.ids)
        faiss.write_index(searcher.index, str(out / "index.faiss"))
        np.savez(out / "vectors.npz", ids=snap.ids, vectors=snap.vectors, boxes=snap.boxes)
        info = {
            "format_version": FORMAT_VERSION,
            "dim": self.dim,
            "index": searcher.kind,
            "next_id": snap.next_id,
            "image_ids": snap.image_ids.tolist(),
            "item_ids": snap.item_ids.tolist(),
            "metadata": snap.metadata.tolist(),
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
        ids, vectors, boxes = ids.astype(np.int64), vectors.astype(np.float32), boxes.astype(np.float32)
        base = gallery._snap
        searcher = base.faiss.copy(with_index=False) if base.faiss is not None else None
        index_file = path / "index.faiss"
        if searcher is not None and index_file.is_file():
            try:
                index = faiss.read_index(str(index_file))
            except RuntimeError as exc:  # the index is a cache of vectors.npz: rebuild it
                log.warning("%s is unreadable (%s); the index is rebuilt from vectors.npz",
                            index_file, str(exc).splitlines()[0][:200])
                index = None
            if index is not None and index.ntotal == n and index.d == gallery.dim:
                searcher.index, searcher.built_kind, searcher.built_count = index, _kind_of(index), n
        if searcher is not None and searcher.index is None:
            searcher.build(vectors, ids)
        torch = base.torch.copy() if base.torch is not None else None
        if torch is not None:
            torch.build(vectors)
        next_id = int(info.get("next_id", int(ids.max(initial=-1)) + 1))
        gallery._snap = loaded(ids, vectors, boxes, list(info["image_ids"]), list(info["item_ids"]),
                               list(info.get("metadata") or [{} for _ in range(n)]), next_id, searcher, torch)
        gallery._id_of_image = dict(zip(map(str, info["image_ids"]), ids.tolist(), strict=True))
        snap = gallery._snap
        gallery._items.add(snap.image_ids.tolist(), snap.item_ids.tolist(), snap.metadata.tolist())
        return gallery


def _hit(snap: GallerySnapshot, row: int, score: float) -> GalleryHit:
    box = snap.boxes[row]
    return GalleryHit(
        image_id=str(snap.image_ids[row]),
        item_id=str(snap.item_ids[row]),
        score=score,
        item_box=None if np.isnan(box).any() else (float(box[0]), float(box[1]), float(box[2]), float(box[3])),
        metadata=snap.metadata[row],
    )


def _kind_of(index: Any) -> str:
    """``ivf``, ``hnsw`` or ``flat`` for a FAISS index read from disk (IndexIDMap2 is looked through)."""
    import faiss

    name = type(index).__name__
    if "IDMap" in name:
        name = type(faiss.downcast_index(index.index)).__name__
    return "ivf" if "IVF" in name else "hnsw" if "HNSW" in name else "flat"
