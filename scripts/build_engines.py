"""Build (or find cached) TensorRT engines for the model packages on this node's GPU.

Run as the init container of the GPU inference pods. The engine cache is keyed by GPU name and
compute capability, TensorRT version, the model's sha256, precision and batch profile
(``engines.tensorrt_config.EngineCacheKey``), so on a cache volume shared by nodes of one GPU type the
first pod builds and every later pod only loads; a different GPU type gets its own entry.

Usage::

    python scripts/build_engines.py --detector /models/detector --embedder /models/embedder \
        --cache-dir /home/livetag/.cache/livetag/tensorrt --max-batch 16

Exits 0 when both engines are in the cache, 1 with a one-line error otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any


def build(detector: Path, embedder: Path, cache_dir: Path, max_batch: int, precision: str) -> list[str]:
    """Load both packages on the TensorRT backend (building missing engines); returns one line per role."""
    from engines import load_detector, load_embedder

    lines = []
    opts: dict[str, Any] = {"cache_dir": cache_dir, "max_batch": max_batch, "precision": precision}
    for role, loader, folder in (("detector", load_detector, detector), ("embedder", load_embedder, embedder)):
        start = time.monotonic()
        engine = loader(folder, backend="tensorrt", **opts)
        backend = engine.backend
        state = "built" if getattr(backend, "built", False) else "cached"
        lines.append(f"{role}: {state} {getattr(backend, 'cache_path', '?')} in {time.monotonic() - start:.1f}s")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", type=Path, default=Path("/models/detector"))
    parser.add_argument("--embedder", type=Path, default=Path("/models/embedder"))
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "livetag" / "tensorrt")
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16")
    args = parser.parse_args(argv)
    from stream.errors import LiveTagError

    try:
        for line in build(args.detector, args.embedder, args.cache_dir, args.max_batch, args.precision):
            print(line)
    except LiveTagError as exc:
        print(f"build_engines: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
