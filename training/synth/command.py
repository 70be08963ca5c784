"""``livetag data synth``: generate a synthetic live-shop data set in the Tianchi layout."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``livetag data synth``."""
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--products", type=int, default=300, help="catalog size N (default 300)")
    parser.add_argument("--streams", type=int, default=60, help="number of videos M (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="data set seed (default 0)")
    parser.add_argument("--test-fraction", type=float, default=0.25,
                        help="share of products held out in test/, 0..1 (default 0.25)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each stream (default 8)")
    parser.add_argument("--fps", type=int, default=0, help="stream fps 20..30; 0 draws 20/24/25/30 per stream")
    parser.add_argument("--segments", type=int, default=3, help="products shown per stream (default 3)")
    parser.add_argument("--annotate-every", type=int, default=5, help="annotate every k-th frame (default 5)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--crf", type=int, default=23, help="x264 CRF quality, lower is larger (default 23)")
    parser.add_argument("--jpeg-quality", type=int, default=90, help="shop image JPEG quality (default 90)")
    parser.add_argument("--text-banners", action="store_true",
                        help="draw each shown product's banner (model number, garment word) for OCR")
    parser.add_argument("--flat", action="store_true",
                        help="write one split straight into --out (needs --test-fraction 0 or 1)")
    parser.add_argument("--overwrite", action="store_true", help="write into a folder that already holds a data set (same-named files are replaced, "
                        "others stay: prefer a fresh --out)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace, _serving: object = None) -> int:
    """Generate the data set and print a one-line JSON summary."""
    from training.synth.generate import SynthConfig, generate

    config = SynthConfig(
        out=args.out, products=args.products, streams=args.streams, seed=args.seed,
        test_fraction=args.test_fraction, seconds=args.seconds, fps=args.fps, segments=args.segments,
        annotate_every=args.annotate_every, workers=args.workers, crf=args.crf, jpeg_quality=args.jpeg_quality,
        flat=args.flat, overwrite=args.overwrite, text_banners=args.text_banners,
        progress=not args.no_progress,
    ).validate()
    print(json.dumps(generate(config)))
    return 0
