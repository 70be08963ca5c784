"""Throughput of the engines: detector frames/s, embedder crops/s, gallery search latency.

Usage::

    python benchmarks/engines_throughput.py [--detector models/detector] [--embedder models/embedder]
        [--backend onnxruntime] [--threads 2] [--gallery-size 100000] [--seconds 3]

Model timings run only for packages that exist. The gallery part uses random unit vectors (D = 256)
and compares full exact search, catalog-restricted search (a 50-item catalog) and IVF.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines import load_detector, load_embedder  # noqa: E402
from engines.gallery import GalleryIndex  # noqa: E402


def _rate(fn: Callable[[], Any], items: int, seconds: float) -> dict[str, float]:
    fn()  # warm-up
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        calls += 1
    elapsed = time.perf_counter() - start
    return {"items_per_s": round(items * calls / elapsed, 1), "ms_per_call": round(1000 * elapsed / calls, 2)}


def bench_models(args: argparse.Namespace, rng: np.random.Generator) -> dict[str, Any]:
    out: dict[str, Any] = {}
    opts: dict[str, Any] = {"intra_op_threads": args.threads} if args.backend == "onnxruntime" else {}
    if (Path(args.detector) / "spec.json").is_file():
        detector = load_detector(args.detector, backend=args.backend, **opts)
        for batch in (1, 8):
            frames = [rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8) for _ in range(batch)]
            out[f"detector_720p_batch{batch}"] = _rate(functools.partial(detector.detect, frames), batch, args.seconds)
    if (Path(args.embedder) / "spec.json").is_file():
        embedder = load_embedder(args.embedder, backend=args.backend, **opts)
        for batch in (1, 32):
            crops = [rng.integers(0, 256, (200, 150, 3), dtype=np.uint8) for _ in range(batch)]
            out[f"embedder_batch{batch}"] = _rate(functools.partial(embedder.embed, crops), batch, args.seconds)
    return out


def bench_gallery(args: argparse.Namespace, rng: np.random.Generator) -> dict[str, Any]:
    n, dim, per_item = args.gallery_size, 256, 5
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    items = [f"i{i // per_item:06d}" for i in range(n)]
    images = [f"img{i:07d}" for i in range(n)]
    queries = rng.normal(size=(16, dim)).astype(np.float32)
    catalog = {f"i{i:06d}" for i in rng.choice(n // per_item, 50, replace=False)}
    out: dict[str, Any] = {}
    for label, opts in [("flat", {"index": "flat"}), ("ivf", {"index": "ivf", "nlist": 1024, "nprobe": 32})]:
        gallery = GalleryIndex(dim, **opts)  # type: ignore[arg-type]
        step = 20_000
        for start in tqdm(range(0, n, step), desc=f"gallery {label}", unit="chunk"):
            gallery.add(images[start : start + step], items[start : start + step], vectors[start : start + step])
        built = time.perf_counter()
        gallery.search(queries[:1])
        out[f"{label}_build_s"] = round(time.perf_counter() - built, 2)
        big = {f"i{i:06d}" for i in range(0, n // per_item, 2)}  # half the gallery: FAISS IDSelector path
        for name, restrict in (("all", None), ("catalog50", catalog), ("catalog_half", big)):
            search = functools.partial(gallery.search, queries, k=10, catalog=restrict)
            out[f"{label}_search_16q_{name}"] = _rate(search, 16, args.seconds)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", default="models/detector")
    parser.add_argument("--embedder", default="models/embedder")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gallery-size", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    results = {"models": bench_models(args, rng), "gallery": bench_gallery(args, rng)}
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
