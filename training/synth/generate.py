"""Generate a whole synthetic data set: catalog, shop images, streams, in parallel and deterministic."""

from __future__ import annotations

import json
import logging
import multiprocessing
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from stream.clock import Clock, SystemClock
from stream.errors import LiveTagError
from training.categories import CATEGORIES
from training.synth.catalog import Product, make_catalog
from training.synth.shop_images import render_shop_images
from training.synth.streams import StreamJob, render_stream
from training.synth.texts import product_title, stream_transcript
from training.synth.writer import split_dirs, write_jpeg, write_json

log = logging.getLogger(__name__)
GENERATOR = "livetag-synth/3"


class SynthConfigError(LiveTagError):
    """Invalid options for the synthetic data generator."""


@dataclass(frozen=True)
class SynthConfig:
    """Options of one generation run (validated by :meth:`validate`).

    Attributes:
        out: output folder (must not already hold a data set unless ``overwrite``).
        products: number of catalog products N.
        streams: number of videos M.
        seed: data set seed.
        test_fraction: share of products held out in ``test``.
        seconds: length of each stream.
        fps: stream frame rate (0 = drawn per stream from 20/24/25/30).
        segments: products shown per stream.
        annotate_every: annotate every k-th video frame.
        workers: worker processes.
        crf: x264 quality (lower = larger files).
        jpeg_quality: shop image JPEG quality.
        text_banners: draw each shown product's banner (model number and garment word) for OCR.
        flat: write the split folder's content straight into ``out`` (one split only: test_fraction
            0 or 1), the layout of the shipped demo sample.
        overwrite: allow writing into a folder that already holds catalog.json.
        progress: show a progress bar.
    """

    out: Path
    products: int
    streams: int
    seed: int = 0
    test_fraction: float = 0.25
    seconds: float = 8.0
    fps: int = 0
    segments: int = 3
    annotate_every: int = 5
    workers: int = 2
    crf: int = 23
    jpeg_quality: int = 90
    text_banners: bool = False
    flat: bool = False
    overwrite: bool = False
    progress: bool = True

    def validate(self) -> SynthConfig:
        """Check every option once; returns self or raises :class:`SynthConfigError`."""
        checks = [
            (self.products >= 1, f"--products must be >= 1, got {self.products}"),
            (self.streams >= 0, f"--streams must be >= 0, got {self.streams}"),
            (0.0 <= self.test_fraction <= 1.0, f"--test-fraction must be in [0, 1], got {self.test_fraction}"),
            (not self.flat or self.test_fraction in (0.0, 1.0),
             "--flat writes one split: use --test-fraction 0 (all train) or 1 (all test)"),
            (1.0 <= self.seconds <= 600.0, f"--seconds must be in [1, 600], got {self.seconds}"),
            (self.fps == 0 or 20 <= self.fps <= 30, f"--fps must be 0 (random) or 20..30, got {self.fps}"),
            (self.segments >= 1, f"--segments must be >= 1, got {self.segments}"),
            (self.seconds >= 1.0 * self.segments, f"--seconds {self.seconds} is too short for {self.segments} segments"
             " (give each segment at least 1 s)"),
            (self.annotate_every >= 1, f"--annotate-every must be >= 1, got {self.annotate_every}"),
            (self.workers >= 1, f"--workers must be >= 1, got {self.workers}"),
            (0 <= self.crf <= 51, f"--crf must be in 0..51, got {self.crf}"),
            (30 <= self.jpeg_quality <= 100, f"--jpeg-quality must be in 30..100, got {self.jpeg_quality}"),
        ]
        for ok, message in checks:
            if not ok:
                raise SynthConfigError(message)
        if (self.out / "catalog.json").exists() and not self.overwrite:
            raise SynthConfigError(f"{self.out} already holds a data set (catalog.json); choose another --out "
                                   "or pass --overwrite")
        return self


def plan_streams(config: SynthConfig, catalog: list[Product]) -> list[tuple[str, StreamJob]]:
    """Assign streams to splits (by product share) and products to streams (covering each split evenly).

    Train streams come first, then test streams; in each split one stream in three is landscape.

    Returns:
        [(split, job)] with video ids ``v000000``.. in index order.
    """
    by_split = {s: [p for p in catalog if p.split == s] for s in ("train", "test")}
    if config.streams == 0:
        return []
    n_test = int(round(config.streams * len(by_split["test"]) / len(catalog)))
    if by_split["test"] and config.streams >= 2:
        n_test = max(1, n_test)
    if by_split["train"] and config.streams >= 2:
        n_test = min(n_test, config.streams - 1)
    if not by_split["train"]:
        n_test = config.streams
    if not by_split["test"]:
        n_test = 0
    splits = ["train"] * (config.streams - n_test) + ["test"] * n_test
    cycles = {s: _cycle(np.random.default_rng([config.seed, 3, k]), by_split[s]) for k, s in enumerate(("train", "test"))}
    jobs: list[tuple[str, StreamJob]] = []
    seen = {"train": 0, "test": 0}
    for index, split in enumerate(splits):
        m = min(config.segments, len(by_split[split]))
        chosen: list[Product] = []
        while len(chosen) < m:
            p = next(cycles[split])
            if p not in chosen:
                chosen.append(p)
        # one stream in three is landscape, in each split; when both splits have streams the test split
        # starts with a landscape one, so that even two streams show both orientations
        offset = 1 if split == "test" and 0 < n_test < config.streams else 0
        landscape = (seen[split] + offset) % 3 == 1
        seen[split] += 1
        jobs.append((split, StreamJob(f"v{index:06d}", index, tuple(chosen), config.seconds, config.fps,
                                      config.annotate_every, config.seed, landscape, config.crf,
                                      config.text_banners)))
    return jobs


def _cycle(rng: np.random.Generator, products: list[Product]) -> Iterator[Product]:
    while True:
        for i in rng.permutation(len(products)):
            yield products[int(i)]


def _shop_task(args: tuple[Product, int, str, int]) -> tuple[str, str, int]:
    product, seed, root, quality = args
    dirs = split_dirs(Path(root))
    (dirs["image_text"] / f"{product.item_id}.txt").write_text(product_title(product, seed) + "\n", encoding="utf-8")
    images = render_shop_images(product, seed)
    for n, (img, ann) in enumerate(images):
        name = f"{n}.jpg"
        write_jpeg(dirs["image"] / product.item_id / name, img, quality)
        write_json(dirs["image_annotation"] / product.item_id / f"{n}.json",
                   {"item_id": product.item_id, "img_name": name, "annotations": [ann]})
    return "shop", product.item_id, len(images)


def _stream_task(args: tuple[str, StreamJob, str]) -> tuple[str, str, dict]:
    split, job, root = args
    dirs = split_dirs(Path(root))
    annotation, segments, facts = render_stream(job, dirs["video"] / f"{job.video_id}.mp4")
    write_json(dirs["video_annotation"] / f"{job.video_id}.json", annotation)
    return "stream", job.video_id, {"split": split, "segments": segments, **facts}


def _run_task(task: tuple) -> tuple:
    kind, args = task
    return _stream_task(args) if kind == "stream" else _shop_task(args)


def generate(config: SynthConfig, clock: Clock | None = None) -> dict:
    """Write a data set; returns a summary (counts, seconds taken).

    Args:
        config: the options.
        clock: times the run (``SystemClock`` by default).

    Raises:
        SynthConfigError: invalid options.
    """
    config.validate()
    clock = clock or SystemClock()
    started = clock.monotonic()
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    catalog = make_catalog(config.products, config.seed, config.test_fraction)
    jobs = plan_streams(config, catalog)

    def root_of(split: str) -> Path:
        return out if config.flat else out / split

    tasks: list[tuple] = [("stream", (split, job, str(root_of(split)))) for split, job in jobs]
    tasks += [("shop", (p, config.seed, str(root_of(p.split)), config.jpeg_quality)) for p in catalog]
    used_splits = sorted({p.split for p in catalog} | {s for s, _ in jobs})
    for split in used_splits:
        split_dirs(root_of(split))
    results: list[tuple] = []
    bar = tqdm(total=len(tasks), desc="synth", unit="task", disable=not config.progress)
    if config.workers == 1:
        for task in tasks:
            results.append(_run_task(task))
            bar.update()
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(config.workers) as pool:
            for result in pool.imap_unordered(_run_task, tasks):
                results.append(result)
                bar.update()
    bar.close()
    streams = {r[1]: r[2] for r in results if r[0] == "stream"}
    images = {r[1]: r[2] for r in results if r[0] == "shop"}
    for index, (split, job) in enumerate(jobs):
        lines = stream_transcript(index, streams[job.video_id]["segments"], job.products, catalog, config.seed)
        text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
        (root_of(split) / "video_text" / f"{job.video_id}.jsonl").write_text(text, encoding="utf-8")
    for split in used_splits:
        split_streams = {vid: s for vid, s in sorted(streams.items()) if s["split"] == split}
        write_json(root_of(split) / "segments.json", {vid: s["segments"] for vid, s in split_streams.items()})
    write_json(out / "catalog.json", {
        "generator": GENERATOR,
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()
                    if k not in ("out", "workers", "progress", "overwrite")},
        "layout": "flat" if config.flat else "splits",
        "categories": list(CATEGORIES),
        "products": [dict(p.to_json(), images=images[p.item_id]) for p in catalog],
        "videos": [{"video_id": vid, **{k: v for k, v in s.items() if k != "segments"}}
                   for vid, s in sorted(streams.items())],
    })
    summary = {
        "products": len(catalog),
        "train_products": sum(p.split == "train" for p in catalog),
        "test_products": sum(p.split == "test" for p in catalog),
        "images": sum(images.values()),
        "videos": len(streams),
        "frames": sum(s["frames"] for s in streams.values()),
        "seconds": round(clock.monotonic() - started, 1),
    }
    log.info("synthetic data set in %s: %s", out, summary)
    return summary
