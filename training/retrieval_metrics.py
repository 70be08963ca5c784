"""Retrieval metrics: Recall@K (CMC), mean average precision, and the CMC curve as a PNG.

A query is a frame crop, the gallery holds shop images; both carry a product label, and a gallery
entry is correct for a query when the labels are equal. Gallery entries are ranked by descending
similarity; ties keep gallery order (a stable sort), so results are deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stream.errors import LiveTagError


class RetrievalInputError(LiveTagError):
    """The similarity table and the label arrays do not fit together."""


@dataclass(frozen=True)
class RetrievalResult:
    """Summary of one retrieval evaluation.

    Attributes:
        cmc: (G,) float64; ``cmc[r]`` is the fraction of queries with a correct entry in the top r+1.
        mean_ap: mean over queries of the average precision of the ranked gallery.
        num_queries: queries evaluated (those with at least one correct gallery entry).
        num_skipped: queries left out because the gallery held nothing of their label.
        num_gallery: gallery entries.
        num_gallery_labels: distinct labels in the gallery.
        ks: the K values reported by :meth:`recall`.
    """

    cmc: np.ndarray
    mean_ap: float
    num_queries: int
    num_skipped: int
    num_gallery: int
    num_gallery_labels: int
    ks: tuple[int, ...] = field(default=(1, 5, 10))

    def recall(self, k: int) -> float:
        """Recall@K: the fraction of queries with a correct gallery entry among the first ``k``."""
        if k < 1:
            raise ValueError("k must be >= 1")
        if self.cmc.size == 0:
            return 0.0
        return float(self.cmc[min(k, self.cmc.size) - 1])

    def to_dict(self) -> dict[str, float | int]:
        """Flat JSON-friendly metrics (``recall@1``, ..., ``mAP``, counts)."""
        out: dict[str, float | int] = {f"recall@{k}": round(self.recall(k), 4) for k in self.ks}
        out["mAP"] = round(self.mean_ap, 4)
        out["queries"] = self.num_queries
        out["queries_skipped"] = self.num_skipped
        out["gallery_images"] = self.num_gallery
        out["gallery_products"] = self.num_gallery_labels
        return out


def evaluate_retrieval(
    similarity: np.ndarray,
    query_labels: Sequence[object] | np.ndarray,
    gallery_labels: Sequence[object] | np.ndarray,
    ks: Sequence[int] = (1, 5, 10),
) -> RetrievalResult:
    """Rank the gallery for every query and compute CMC and mAP.

    Args:
        similarity: (Q, G) float; larger means more alike (e.g. cosine of unit embeddings).
        query_labels: (Q,) labels of the queries (any comparable values: ints, item-id strings).
        gallery_labels: (G,) labels of the gallery entries.
        ks: the K values for Recall@K.

    Returns:
        The :class:`RetrievalResult`; queries whose label is absent from the gallery are skipped
        (counted in ``num_skipped``).

    Raises:
        RetrievalInputError: shapes disagree, or no query has a match in the gallery.
    """
    sim = np.asarray(similarity, dtype=np.float64)
    q_labels = np.asarray(query_labels)
    g_labels = np.asarray(gallery_labels)
    if sim.ndim != 2 or sim.shape != (q_labels.shape[0], g_labels.shape[0]):
        raise RetrievalInputError(
            f"similarity must be (Q, G) = ({q_labels.shape[0]}, {g_labels.shape[0]}), got {sim.shape}"
        )
    if sim.shape[1] == 0:
        raise RetrievalInputError("the gallery is empty; nothing to retrieve")
    order = np.argsort(-sim, axis=1, kind="stable")  # (Q, G) gallery indices, best first
    hits = g_labels[order] == q_labels[:, None]  # (Q, G) bool, in ranked order
    has_match = hits.any(axis=1)
    num_skipped = int((~has_match).sum())
    hits = hits[has_match]
    if hits.shape[0] == 0:
        raise RetrievalInputError("no query label occurs in the gallery; check that they share label space")
    first_hit = hits.argmax(axis=1)  # (Q',) 0-based rank of the first correct entry
    num_gallery = sim.shape[1]
    cmc = np.zeros(num_gallery, dtype=np.float64)
    np.add.at(cmc, first_hit, 1.0)
    cmc = np.cumsum(cmc) / hits.shape[0]
    ranks = np.arange(1, num_gallery + 1, dtype=np.float64)
    cum_hits = np.cumsum(hits, axis=1)
    precision_at_hits = np.where(hits, cum_hits / ranks[None, :], 0.0)
    average_precision = precision_at_hits.sum(axis=1) / hits.sum(axis=1)
    return RetrievalResult(
        cmc=cmc,
        mean_ap=float(average_precision.mean()),
        num_queries=int(hits.shape[0]),
        num_skipped=num_skipped,
        num_gallery=num_gallery,
        num_gallery_labels=int(np.unique(g_labels).size),
        ks=tuple(int(k) for k in ks),
    )


def plot_cmc(result: RetrievalResult, out_png: Path | str, title: str, max_rank: int = 20) -> None:
    """Draw the CMC curve (recall against rank 1..max_rank) and save it as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    n = min(max_rank, result.cmc.size)
    ranks = np.arange(1, n + 1)
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    ax.plot(ranks, result.cmc[:n], marker="o", markersize=3)
    for k in result.ks:
        if k <= n:
            ax.annotate(f"R@{k}={result.recall(k):.3f}", (k, result.recall(k)), fontsize=8,
                        textcoords="offset points", xytext=(4, -12))
    ax.set_xlabel("rank")
    ax.set_ylabel("fraction of queries matched")
    ax.set_ylim(0.0, 1.02)
    ax.set_xlim(0.5, n + 0.5)
    ax.grid(True, alpha=0.3)
    ax.set_title(f"{title}\nmAP={result.mean_ap:.3f}, {result.num_queries} queries, "
                 f"{result.num_gallery_labels} products", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
