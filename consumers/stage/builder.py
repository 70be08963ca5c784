"""The one place an inference stage is built: text cues, OCR, voter and stage over a gallery index.

Every command and benchmark that runs the models (demo, replay, eval, infer) gets its stage from
:func:`build_stage`; the Kafka inference consumer first fills the gallery from its topic
(``consumers.services.infer.stage_from_gallery_topic``) and then calls it too.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from consumers.settings import Settings
from consumers.settings.text import TextSettings
from consumers.stage.frames import FrameObserver
from consumers.stage.inference_stage import InferenceStage
from consumers.stage.model_calls import ModelCalls, PersonMasks
from consumers.text.ocr import OcrScheduler, RapidOcrReader
from consumers.text.text_prior import TextPriors
from consumers.voting.voter import StreamVoter
from engines.base import Detector, Embedder
from engines.gallery import GalleryIndex
from stream.clock import Clock
from stream.decode import PacketDecoder

if TYPE_CHECKING:
    from consumers.observability.metrics import PipelineMetrics

#: Below this many gallery images FAISS searches on one thread (see :func:`single_thread_search`).
SINGLE_THREAD_SEARCH_BELOW = 100_000


def quiet_library_logs() -> None:
    """Keep third-party start-up chatter (FAISS's loader) out of the command's output."""
    logging.getLogger("faiss").setLevel(logging.WARNING)


def single_thread_search(gallery: GalleryIndex) -> None:
    """Make FAISS search on the calling thread for galleries below ``SINGLE_THREAD_SEARCH_BELOW`` images.

    A flat search over a catalog-sized gallery takes microseconds of arithmetic; OpenMP's worker
    threads only add wake-ups and spin-waits that compete with ONNX Runtime for the same cores
    (measured on the 2-core CI machine under load: 83 ms per search with 2 threads, 6 ms with 1).
    This is a process-wide FAISS setting.
    """
    if len(gallery) < SINGLE_THREAD_SEARCH_BELOW:
        import faiss

        faiss.omp_set_num_threads(1)


def make_ocr(settings: TextSettings, text: TextPriors | None) -> OcrScheduler | None:
    """The OCR cadence and reader, or None when ``text.ocr_mode`` is off (or text cues are)."""
    if text is None or settings.ocr_mode == "off":
        return None
    return OcrScheduler(settings, RapidOcrReader(), text)


def build_stage(
    detector: Detector,
    embedder: Embedder,
    gallery: GalleryIndex,
    settings: Settings,
    clock: Clock,
    items: Collection[str] | None = None,
    observer: FrameObserver | None = None,
    metrics: PipelineMetrics | None = None,
    segment_group: str | None = None,
    person: PersonMasks | None = None,
) -> InferenceStage:
    """An inference stage over ``gallery`` with a fresh voter.

    The gallery answers which items a catalog holds, an item's categories and its title (from its
    images' metadata). Small galleries are searched on one thread (:func:`single_thread_search`).

    Args:
        detector, embedder: Loaded engines (``consumers.stage.model_loading.load_models``).
        gallery: The shop-image index (filled; it may change while the stage runs).
        settings: Validated settings (pipeline, voter, text, topics).
        clock: Injected clock.
        items: Fixed item ids every stream may match (replay ``--catalog``); None: the frame's catalog.
        observer: Called with each analysed frame's best hits (evaluation).
        metrics: Where the stage's decode, detect, embed, search and vote times, drops, gallery size
            and active streams go (``consumers.stage.model_calls``).
        segment_group: Consumer group whose open segments go to the ``segments`` topic (Kafka only).
        person: Person masks for the presentation prior, used when ``pipeline.person_cue`` (and
            ``pipeline.presentation_prior``) is on; None then loads ``models.person_dir``.

    Raises:
        ModelPackageError: The person-segmentation package is wrong or its runtime is missing.
    """
    single_thread_search(gallery)
    text = None
    if settings.text.enabled:
        classes = tuple(getattr(getattr(detector, "spec", None), "classes", ()))
        text = TextPriors(settings.text, classes, gallery.item_titles(), gallery.item_categories, clock,
                          items=gallery.item_ids())
    voter = StreamVoter(
        settings.voter,
        clock,
        categories=gallery.item_categories,
        detector_version=_label(detector),
        embedder_version=_label(embedder),
        text=text,
    )
    decoder = PacketDecoder(threads=settings.pipeline.decoder_threads, skip_loop_filter=settings.pipeline.skip_loop_filter)
    if not (settings.pipeline.presentation_prior and settings.pipeline.person_cue):
        person = None
    elif person is None:
        from engines.person_segmenter import PersonSegmenter

        person = PersonSegmenter(settings.models.person_dir)
    return InferenceStage(
        ModelCalls(detector, embedder, gallery, decoder, metrics, settings.pipeline.scale_in_decoder,
                   settings.pipeline.decode_workers, person), voter, settings.pipeline, settings.topics, clock,
        catalogs=gallery.catalog_items, items=items, observer=observer, ocr=make_ocr(settings.text, text),
        segment_group=segment_group,
    )  # fmt: skip


def _label(engine: Any) -> str:
    """``name@version`` of an engine's model package (empty when it has none)."""
    return str(getattr(getattr(engine, "spec", None), "label", ""))
