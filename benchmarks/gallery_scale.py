"""The gallery at scale: search latency, IVF recall, and how long a change stalls the searches.

For each index kind, a gallery of ``--images`` unit vectors (4 per item, scattered around a random
centre per item; items spread over ``--catalogs`` catalogs) is built in one ``add``; queries are
other points around random items' centres. Then

* search latency, one query at a time: the whole gallery (FAISS) and one catalog (the per-stream
  default, scored exactly below ``exact_below`` images);
* recall@5 of the whole-gallery search against exact inner product (1.0 for flat);
* the stall: a thread searches the whole gallery without pause while the main thread adds one image,
  then removes it. The figure is the slowest search that overlapped the change, next to the median
  search before it; the change's own duration is reported too.

Usage::

    python benchmarks/gallery_scale.py [--images 1000000] [--index flat ivf] [--json out.json]

Memory: about 4 x images x dim x 4 bytes at the peak (the vectors, the index, and the copies of both
that a change builds aside).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.gallery import GalleryIndex  # noqa: E402


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def near(rng: np.random.Generator, centres: np.ndarray, spread: float) -> np.ndarray:
    """Unit vectors around ``centres`` (one per row): the images of one item look alike."""
    out = centres + spread * rng.standard_normal(centres.shape, dtype=np.float32) / np.sqrt(centres.shape[1])
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def timed_searches(gallery: GalleryIndex, queries: np.ndarray, catalog: set[str] | None) -> list[float]:
    out = []
    for q in queries:
        start = time.perf_counter()
        gallery.search(q, k=5, catalog=catalog)
        out.append(time.perf_counter() - start)
    return out


def recall_at_5(gallery: GalleryIndex, vectors: np.ndarray, queries: np.ndarray) -> float:
    """Share of the exact top-5 image ids that the gallery's whole-gallery search returns."""
    ids = gallery.image_ids()
    hits = 0
    for q in queries:
        exact = {ids[i] for i in np.argsort(-(vectors @ q))[:5]}
        hits += len(exact & {h.image_id for h in gallery.search(q, k=5)[0]})
    return hits / (5 * len(queries))


def stall(gallery: GalleryIndex, query: np.ndarray, change: Any) -> dict[str, float]:
    """Run ``change()`` while a thread searches without pause; the slowest overlapping search."""
    spans: list[tuple[float, float]] = []
    stop = threading.Event()

    def search_loop() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            gallery.search(query, k=5)
            spans.append((start, time.perf_counter()))

    thread = threading.Thread(target=search_loop, daemon=True)
    thread.start()
    time.sleep(1.0)
    before = [end - start for start, end in spans]
    change_start = time.perf_counter()
    change()
    change_end = time.perf_counter()
    time.sleep(0.5)
    stop.set()
    thread.join()
    overlapping = [end - start for start, end in spans if end >= change_start and start <= change_end]
    return {
        "change_s": change_end - change_start,
        "search_median_before_ms": 1000 * statistics.median(before),
        "slowest_overlapping_search_ms": 1000 * max(overlapping, default=0.0),
        "searches_during_change": len(overlapping),
    }


def run(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    n = args.images
    centres = unit_rows(rng, n // 4 + 1, args.dim)  # one per item; 4 images per item around it
    vectors = near(rng, centres[np.arange(n) // 4], args.spread)
    items = [f"item-{i // 4}" for i in range(n)]
    catalog_of_item = {f"item-{j}": f"shop-{j % args.catalogs}" for j in range(n // 4 + 1)}
    gallery = GalleryIndex(args.dim, index=kind)
    start = time.perf_counter()
    gallery.add([f"img-{i}" for i in range(n)], items, vectors,
                metadata=[{"catalog": catalog_of_item[item]} for item in items])
    build_s = time.perf_counter() - start
    queries = near(rng, centres[rng.integers(0, n // 4, args.queries)], args.spread)  # a crop of some item
    shop = {item for item, cat in catalog_of_item.items() if cat == "shop-0"}
    whole = timed_searches(gallery, queries, None)
    per_catalog = timed_searches(gallery, queries, shop)
    extra = unit_rows(rng, 1, args.dim)
    add = stall(gallery, queries[0], lambda: gallery.add(["img-new"], ["item-new"], extra))
    remove = stall(gallery, queries[0], lambda: gallery.remove_images(["img-new"]))
    return {
        "index": kind, "built": gallery.index_kind, "images": n, "build_s": build_s,
        "whole_gallery_ms": {"median": 1000 * statistics.median(whole), "p99": 1000 * float(np.percentile(whole, 99))},
        "catalog_ms": {"median": 1000 * statistics.median(per_catalog), "images": len(shop) * 4},
        "recall_at_5": recall_at_5(gallery, vectors, queries[: args.recall_queries]),
        "add_one": add, "remove_one": remove,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--catalogs", type=int, default=500)
    parser.add_argument("--index", nargs="+", default=["flat", "ivf"], choices=["flat", "ivf", "hnsw", "auto"])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--recall-queries", type=int, default=50)
    parser.add_argument("--spread", type=float, default=0.5, help="noise around an item's centre (0: identical)")
    parser.add_argument("--seed", type=int, default=2031)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    results = []
    for kind in tqdm(args.index, desc="index kinds"):
        result = run(kind, args)
        results.append(result)
        print(json.dumps(result), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
