"""Wiring of the embedded default: settings from command-line options, models, gallery, stage."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Collection
from typing import Any

from consumers.gallery_builder import LoadedGallery
from consumers.gallery_lookups import catalog_resolver, category_lookup
from consumers.inference_stage import InferenceStage
from consumers.settings import VOTE_WEIGHTS, BatchSettings, Settings, SettingsError, TopicSettings
from consumers.stage_frames import FrameObserver
from consumers.text.ocr import OcrScheduler, RapidOcrReader
from consumers.text.text_prior import CategoryLookup, TextPriors
from consumers.text.text_settings import TextSettings
from consumers.voter import StreamVoter
from stream.clock import Clock

#: The embedded bus needs one partition per topic: one consumer reads them all.
EMBEDDED_TOPICS = TopicSettings(partitions=1)
#: Below this many gallery images FAISS searches on one thread (see :func:`single_thread_search`).
SINGLE_THREAD_SEARCH_BELOW = 100_000


def quiet_library_logs() -> None:
    """Keep third-party start-up chatter (FAISS's loader) out of the command's output."""
    logging.getLogger("faiss").setLevel(logging.WARNING)


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the batching and threshold options shared by demo, replay and eval."""
    group = parser.add_argument_group("pipeline")
    group.add_argument("--max-batch", type=int, default=8, help="frames per model call (default 8)")
    group.add_argument("--max-wait-ms", type=float, default=20.0, help="longest wait for a batch to fill (default 20)")
    group.add_argument("--min-similarity", type=float, default=None, help="gallery hits below this do not vote")
    group.add_argument("--sold-threshold", type=float, default=None, help="least sold-item probability to vote")
    group.add_argument("--vote-weight", default=None, choices=VOTE_WEIGHTS,
                       help="what a detection votes with (default similarity_sold_confidence; see voter.vote_weight)")
    group.add_argument("--votes-per-frame", type=int, default=None,
                       help="only the frame's N strongest item votes count (default 0: all)")
    group.add_argument("--vote-interval-s", type=float, default=None,
                       help="stream seconds one frame's vote stands for (default 0.25; 0: every frame counts once)")
    group.add_argument("--skip-loop-filter", action="store_true",
                       help="decode keyframes without deblocking (faster; see pipeline.skip_loop_filter)")
    group.add_argument("--no-text", action="store_true",
                       help="ignore titles, transcripts and on-screen text (votes are visual alone)")
    group.add_argument("--ocr", default=None, choices=("off", "inline", "background"),
                       help="read on-screen text with OCR (default off; see text.ocr_mode)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Validated settings from the options of :func:`add_pipeline_arguments` (defaults elsewhere)."""
    overrides: dict[str, Any] = {
        "batch": BatchSettings(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms),
        "topics": EMBEDDED_TOPICS,
    }
    if args.min_similarity is not None:
        overrides["voter__min_similarity"] = args.min_similarity
    if args.sold_threshold is not None:
        overrides["pipeline__sold_threshold"] = args.sold_threshold
    if getattr(args, "vote_weight", None) is not None:
        overrides["voter__vote_weight"] = args.vote_weight
    if getattr(args, "votes_per_frame", None) is not None:
        overrides["voter__votes_per_frame"] = args.votes_per_frame
    if getattr(args, "vote_interval_s", None) is not None:
        overrides["voter__vote_interval_s"] = args.vote_interval_s
    if getattr(args, "skip_loop_filter", False):
        overrides["pipeline__skip_loop_filter"] = True
    if getattr(args, "no_text", False):
        overrides["text__enabled"] = False
    if getattr(args, "ocr", None) is not None:
        overrides["text__ocr_mode"] = args.ocr
    try:
        return Settings().with_overrides(**overrides)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"bad pipeline option: {exc}") from exc


def single_thread_search(gallery: LoadedGallery) -> None:
    """Make FAISS search on the calling thread for galleries below ``SINGLE_THREAD_SEARCH_BELOW`` images.

    A flat search over a catalog-sized gallery takes microseconds of arithmetic; OpenMP's worker
    threads only add wake-ups and spin-waits that compete with ONNX Runtime for the same cores
    (measured on the 2-core CI machine under load: 83 ms per search with 2 threads, 6 ms with 1).
    This is a process-wide FAISS setting, applied by the embedded wiring only.
    """
    if len(gallery.index) < SINGLE_THREAD_SEARCH_BELOW:
        import faiss

        faiss.omp_set_num_threads(1)


def make_text_priors(
    settings: TextSettings,
    classes: tuple[str, ...],
    gallery: LoadedGallery,
    categories: CategoryLookup,
    clock: Clock,
) -> TextPriors | None:
    """The text cues over the gallery's item titles and categories, or None when text is off."""
    if not settings.enabled:
        return None
    titles = {str(i): str(m["title"]) for i, m in zip(gallery.item_ids, gallery.metadata, strict=True) if m.get("title")}
    return TextPriors(settings, classes, titles, categories, clock, items=set(gallery.item_ids))


def make_ocr(settings: TextSettings, text: TextPriors | None) -> OcrScheduler | None:
    """The OCR cadence and reader, or None when ``text.ocr_mode`` is off (or text cues are)."""
    if text is None or settings.ocr_mode == "off":
        return None
    return OcrScheduler(settings, RapidOcrReader(), text)


def make_stage(
    detector: Any,
    embedder: Any,
    gallery: LoadedGallery,
    settings: Settings,
    clock: Clock,
    items: Collection[str] | None = None,
    observer: FrameObserver | None = None,
    metrics: Any = None,
) -> InferenceStage:
    """An inference stage over ``gallery`` with a fresh voter (catalog and category lookups from
    the gallery's metadata). Small galleries are searched on one thread (:func:`single_thread_search`).
    With ``metrics`` (a ``PipelineMetrics``), the stage's collaborators are timed into it."""
    single_thread_search(gallery)
    categories = category_lookup(gallery.item_ids, gallery.metadata)
    text = make_text_priors(settings.text, tuple(getattr(detector.spec, "classes", ())), gallery, categories, clock)
    voter = StreamVoter(
        settings.voter,
        clock,
        categories=categories,
        detector_version=detector.spec.label,
        embedder_version=embedder.spec.label,
        text=text,
    )
    stage = InferenceStage(
        detector,
        embedder,
        gallery.index,
        voter,
        settings.pipeline,
        settings.topics,
        clock,
        catalogs=catalog_resolver(gallery.item_ids, gallery.metadata),
        items=items,
        observer=observer,
        ocr=make_ocr(settings.text, text),
    )
    if metrics is not None:
        from consumers.observability.instrument import instrument_stage

        instrument_stage(stage, metrics)
    return stage
