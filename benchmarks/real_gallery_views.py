"""Gallery-side options on real footage: shop-image views and re-ranking, by annotated-crop item R@1.

The queries are the annotated sold-item crops of a Tianchi-layout folder; the gallery is its shop
images' annotated boxes (as in ``real_accuracy.py``). Rows, each against the same queries:

- views of each shop crop (``engines.gallery_views``: mirror, tight, wide), averaged into one
  vector (the ``models.gallery_views`` option) or kept as entries;
- database-side augmentation (alpha-DBA): each shop vector averaged with its k nearest shop vectors,
  weights similarity^3;
- query expansion (alpha-QE): each query averaged with its k nearest shop vectors, weights similarity^3.

    python benchmarks/real_gallery_views.py --data ../shared/realdev/tianchi-demo-25 [--embedder DIR]

Evaluation only: the figures say whether an option earns a place at gallery build; none is chosen here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_accuracy import annotated_crops, item_recall  # noqa: E402

from consumers.settings.options import add_setting_options, load_settings  # noqa: E402
from consumers.stage.model_loading import load_models  # noqa: E402
from engines.gallery_views import GALLERY_VIEWS  # noqa: E402
from training.tianchi import TianchiDataset  # noqa: E402


def unit(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` [N, D] scaled to unit length."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def neighbour_average(anchors: np.ndarray, pool: np.ndarray, k: int, include_self: bool) -> np.ndarray:
    """alpha-weighted (similarity^3) average of each anchor [N, D] with its k nearest rows of ``pool`` [M, D]."""
    sims = anchors @ pool.T
    order = np.argsort(-sims, axis=1)[:, : k + int(include_self)]
    out = np.stack([(np.maximum(sims[i, order[i]], 0.0)[:, None] ** 3 * pool[order[i]]).sum(0)
                    for i in range(len(anchors))])
    return unit(out if include_self else anchors + out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a folder in the Tianchi layout")
    add_setting_options(parser, "models")
    args = parser.parse_args(argv)
    _, embedder = load_models(load_settings(args, {}).models)
    views = tuple(GALLERY_VIEWS)
    queries, query_items, _, shop, shop_items = annotated_crops(TianchiDataset(args.data), views)

    def embed(crops: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([np.asarray(embedder.embed(crops[i : i + 32])) for i in range(0, len(crops), 32)])

    q = embed(queries)
    per_view = {view: embed([crops[n] for crops in shop]) for n, view in enumerate(views)}  # view -> [S, D]
    g = per_view["box"]

    def averaged(*names: str) -> np.ndarray:
        return unit(sum((per_view[n] for n in names), np.zeros_like(g)))

    rows = {
        "base (one vector per shop crop)": (q, g, shop_items),
        "views averaged: box + flip": (q, averaged("box", "flip"), shop_items),
        "views averaged: box + flip + tight": (q, averaged("box", "flip", "tight"), shop_items),
        "views averaged: box + flip + tight + wide": (q, averaged(*views), shop_items),
        "views as entries: box, flip, tight": (q, np.concatenate([per_view[n] for n in ("box", "flip", "tight")]),
                                               shop_items * 3),
    }
    for k in (1, 2, 3):
        rows[f"alpha-DBA k={k}"] = (q, neighbour_average(g, g, k, include_self=True), shop_items)
    for k in (1, 2, 3):
        rows[f"alpha-QE k={k}"] = (neighbour_average(q, g, k, include_self=False), g, shop_items)
    print(f"embedder {embedder.spec.version}, {len(queries)} queries, {len(shop)} shop crops")
    print("| option | R@1 | R@5 |\n|---|---|---|")
    for name, (qq, gg, items) in rows.items():
        r = item_recall(qq, query_items, gg, items)
        print(f"| {name} | {r['R@1']:.3f} | {r['R@5']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
