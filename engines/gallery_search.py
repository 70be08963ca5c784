"""Nearest-neighbour search behind the gallery: FAISS indexes (flat, IVF, HNSW) and an exact torch matmul.

Vectors are unit-norm, so inner product is cosine similarity. Both searchers take the row subset a
stream's catalog allows and return ``(scores (Q, k), rows (Q, k))`` with row -1 for "no hit".
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

INDEX_KINDS = ("flat", "ivf", "hnsw", "auto")
AUTO_APPROXIMATE_FROM = 100_000  # "auto" switches from exact flat search to IVF at this many images


def _faiss() -> Any:
    """The faiss module, imported on first use (its type stubs lag behind its Python API)."""
    return importlib.import_module("faiss")


def exact_top_k(queries: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k in numpy.

    Args:
        queries: (Q, D) float32.
        vectors: (N, D) float32.
        k: Hits per query.

    Returns:
        ``(scores, positions)``, each (Q, min(k, N)), best first; positions index ``vectors``.
    """
    sims = queries @ vectors.T
    k = min(k, vectors.shape[0])
    if k == 0:
        return np.zeros((queries.shape[0], 0), np.float32), np.zeros((queries.shape[0], 0), np.int64)
    part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(sims, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    return np.take_along_axis(part_scores, order, axis=1).astype(np.float32), np.take_along_axis(part, order, axis=1).astype(np.int64)


class FaissSearcher:
    """A FAISS index over faiss ids (stable int64 per image), rebuilt when it cannot be updated in place.

    Args:
        dim: Vector size D.
        kind: ``flat`` (exact, IndexFlatIP in IndexIDMap2), ``ivf`` (IndexIVFFlat, trained on the
            vectors present when it is built), ``hnsw`` (IndexHNSWFlat in IndexIDMap2; removal
            triggers a rebuild) or ``auto`` (flat below 100k images, IVF from there).
        nlist: IVF lists (capped at N / 39 so each list gets enough training points).
        nprobe: IVF lists visited per query.
        hnsw_m: HNSW graph degree.
        ef_search: HNSW search breadth.
    """

    def __init__(self, dim: int, kind: str = "flat", nlist: int = 1024, nprobe: int = 32, hnsw_m: int = 32, ef_search: int = 128) -> None:
        if kind not in INDEX_KINDS:
            raise ValueError(f"index kind must be one of {INDEX_KINDS}, got {kind!r}")
        self.dim = dim
        self.kind = kind
        self.nlist = nlist
        self.nprobe = nprobe
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self.index: Any = None
        self.built_kind = ""
        self.built_count = 0

    def copy(self, with_index: bool) -> FaissSearcher:
        """A searcher with the same settings; ``with_index`` clones the built index (to change the
        clone while searches go on against this one)."""
        other = FaissSearcher(self.dim, self.kind, self.nlist, self.nprobe, self.hnsw_m, self.ef_search)
        if with_index and self.index is not None:
            other.index = _faiss().clone_index(self.index)
            other.built_kind, other.built_count = self.built_kind, self.built_count
        return other

    def _resolved_kind(self, count: int) -> str:
        if self.kind != "auto":
            return self.kind
        return "ivf" if count >= AUTO_APPROXIMATE_FROM else "flat"

    def build(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """(Re)build from all (N, D) vectors and their (N,) int64 faiss ids."""
        faiss = _faiss()
        kind = self._resolved_kind(len(ids))
        if kind == "ivf" and len(ids) >= 39:
            nlist = max(1, min(self.nlist, len(ids) // 39))
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(self.dim), self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            index.train(vectors)
        elif kind == "hnsw":
            index = faiss.IndexIDMap2(faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT))
        else:
            kind = "flat"  # also IVF's stand-in until there are enough vectors to train it
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        if len(ids):
            index.add_with_ids(vectors, ids)
        self.index, self.built_kind, self.built_count = index, kind, len(ids)

    def needs_rebuild(self, count: int) -> bool:
        """True when the index is missing, should change structure at ``count`` images, or is an IVF
        trained on fewer than a quarter of the vectors it now holds (its lists are re-trained)."""
        if self.index is None:
            return True
        wanted = self._resolved_kind(count)
        if wanted == "ivf":
            return count >= 39 and (self.built_kind != "ivf" or count >= 4 * self.built_count)
        return wanted != self.built_kind

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add (N, D) vectors with (N,) faiss ids in place."""
        self.index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> bool:
        """Remove faiss ids in place; False when this index kind cannot (HNSW: rebuild instead)."""
        if self.built_kind == "hnsw":
            return False
        self.index.remove_ids(np.asarray(ids, dtype=np.int64))
        return True

    def search(self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k over the whole index, or only over ``allowed_ids`` (an IDSelectorBatch).

        Returns:
            ``(scores, faiss_ids)`` each (Q, k); id -1 where fewer than k were found.
        """
        faiss = _faiss()
        params = None
        if allowed_ids is not None:
            selector = faiss.IDSelectorBatch(np.asarray(allowed_ids, dtype=np.int64))
            if self.built_kind == "ivf":
                params = faiss.SearchParametersIVF(sel=selector, nprobe=self.nprobe)
            elif self.built_kind == "hnsw":
                params = faiss.SearchParametersHNSW(sel=selector, efSearch=self.ef_search)
            else:
                params = faiss.SearchParameters(sel=selector)
        elif self.built_kind == "ivf":
            params = faiss.SearchParametersIVF(nprobe=self.nprobe)
        elif self.built_kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=self.ef_search)
        scores, ids = self.index.search(queries, k, params=params)
        return scores.astype(np.float32), ids.astype(np.int64)


class TorchSearcher:
    """Exact search as one matmul on a torch device (a GPU in production; CPU tensors work too).

    Args:
        device: ``cuda``, ``cuda:N`` or ``cpu``.
        fp16: Keep the gallery in half precision (GPU only; halves memory, scores to ~1e-3).
    """

    def __init__(self, device: str = "cuda", fp16: bool = False) -> None:
        import torch

        self._torch = torch
        self.device = torch.device(device)
        self.dtype = torch.float16 if fp16 and self.device.type == "cuda" else torch.float32
        self.matrix: Any = None

    def copy(self) -> TorchSearcher:
        """A searcher on the same device and precision, without a matrix."""
        other = TorchSearcher.__new__(TorchSearcher)
        other._torch, other.device, other.dtype, other.matrix = self._torch, self.device, self.dtype, None
        return other

    def build(self, vectors: np.ndarray) -> None:
        """Upload all (N, D) vectors (row order = gallery row order)."""
        self.matrix = self._torch.from_numpy(np.ascontiguousarray(vectors)).to(self.device, self.dtype)

    def search(self, queries: np.ndarray, k: int, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows for (Q, D) queries, over all rows or only ``rows`` (int64 gallery rows).

        Returns:
            ``(scores, rows)`` each (Q, min(k, candidates)), best first.
        """
        torch = self._torch
        with torch.inference_mode():
            q = torch.from_numpy(np.ascontiguousarray(queries)).to(self.device, self.dtype)
            if rows is None:
                candidates = self.matrix
                row_map = None
            else:
                row_map = torch.from_numpy(np.asarray(rows, dtype=np.int64)).to(self.device)
                candidates = self.matrix.index_select(0, row_map)
            k = min(k, int(candidates.shape[0]))
            scores, pos = (q @ candidates.T).float().topk(k, dim=1)
            found = pos if row_map is None else row_map[pos]
            return scores.cpu().numpy().astype(np.float32), found.cpu().numpy().astype(np.int64)
