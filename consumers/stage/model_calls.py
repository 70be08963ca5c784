"""The inference stage's calls into its decoder, models and gallery, each timed when metrics are on.

=========  =====================================  ===============================================
stage      timed call                             granularity
=========  =====================================  ===============================================
decode     ``decoder.decode_picture(packet)``     one frame (its picture, and the detector's input), on
                                                  ``decode_workers`` threads when a batch has several
detect     ``detector.detect(frames)``            one batch (also observes ``batch_size``)
embed      ``embedder.embed(crops)``              the crops of one batch
search     ``gallery.search(vectors, ...)``       the crops of one catalog within a batch
person     ``person.coverage(frame, boxes)``      one frame (with ``pipeline.person_cue``)
vote       ``voter.observe(...)`` (by the stage)  one frame (then sets ``active_streams``)
=========  =====================================  ===============================================

Timings go to ``livetag_stage_latency_seconds{stage=...}`` of a
:class:`~consumers.observability.metrics.PipelineMetrics`; without one nothing is measured.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import av
import numpy as np

from engines.base import Detector, Embedder
from engines.gallery import EmptyGalleryError, GalleryHit
from engines.picture import Picture, crops, picture_of
from engines.types import Detections
from stream.decode import scaled_rgb
from stream.packet import FramePacket


class Gallery(Protocol):
    """What the stage needs of the shop-image index (``engines.gallery.GalleryIndex``)."""

    def __len__(self) -> int: ...

    def search(self, queries: np.ndarray, k: int = 5, catalog: Collection[str] | None = None) -> list[list[GalleryHit]]: ...

    def catalog_items(self, catalog: str) -> frozenset[str] | None: ...


class PersonMasks(Protocol):
    """What the stage needs of a person segmenter (``engines.person_segmenter.PersonSegmenter``)."""

    def coverage(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray: ...


class FrameDecoder(Protocol):
    """What the stage needs of the decoder (``stream.decode.PacketDecoder``)."""

    def decode_picture(self, packet: FramePacket) -> av.VideoFrame: ...

    def drop(self, stream_id: str) -> None: ...


class StageMetrics(Protocol):
    """The metrics hook the stage calls itself (``consumers.observability.metrics.PipelineMetrics``)."""

    def time_stage(self, stage: str) -> contextlib.AbstractContextManager[None]: ...

    def observe_batch(self, size: int) -> None: ...

    def set_gallery_size(self, vectors: int) -> None: ...

    def set_models(self, versions: Mapping[str, str]) -> None: ...

    def set_active_streams(self, count: int) -> None: ...

    def record_drops(self, queue: str, policy: str, count: int) -> None: ...


class ModelCalls:
    """Decoder, detector, embedder and gallery of one stage, behind timed calls.

    Args:
        detector: Frames (H, W, 3) RGB uint8 -> detections per frame.
        embedder: Crops -> (N, D) unit vectors (and, optionally, (N,) garment probabilities).
        gallery: The shop-image index searched within a catalog's items.
        decoder: Frame packets -> RGB frames (one decoder state per stream).
        metrics: Where timings, batch sizes, gallery size and model versions go (None: nowhere).
        scale_in_decoder: Have the decoder scale each frame to the detector's input while it converts
            it (``pipeline.scale_in_decoder``), when the detector takes pre-scaled frames.
        decode_workers: Threads that decode the packets of one batch (``pipeline.decode_workers``);
            1 decodes on the calling thread.
        person: Person masks for the presentation prior (``pipeline.person_cue``); None: no mask.
    """

    def __init__(
        self,
        detector: Detector,
        embedder: Embedder,
        gallery: Gallery,
        decoder: FrameDecoder,
        metrics: StageMetrics | None = None,
        scale_in_decoder: bool = False,
        decode_workers: int = 1,
        person: PersonMasks | None = None,
    ) -> None:
        self.detector = detector
        self.person = person
        self.scale_in_decoder = scale_in_decoder
        self.embedder = embedder
        self.gallery = gallery
        self.decoder = decoder
        self.metrics = metrics
        self._decode_pool = (ThreadPoolExecutor(decode_workers, thread_name_prefix="decode")
                             if decode_workers > 1 else None)
        if metrics is not None:
            metrics.set_models({role: engine.spec.label for role, engine in (("detector", detector), ("embedder", embedder))
                                if getattr(getattr(engine, "spec", None), "label", "")})
            metrics.set_gallery_size(len(gallery))

    @contextlib.contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Time the block as ``stage`` (nothing without metrics)."""
        if self.metrics is None:
            yield
            return
        with self.metrics.time_stage(stage):
            yield

    def decode(self, packet: FramePacket) -> tuple[Picture, np.ndarray | None]:
        """The picture of one packet (:func:`engines.picture.picture_of`: YUV planes where it can)
        and, when the detector takes pre-scaled frames, the frame already scaled to its input as
        (h, w, 3) RGB uint8 (None otherwise).

        The scaled copy is made here, on the decoding thread, so the model thread only pads it: by
        the decoder's swscale in one step with ``scale_in_decoder``, else by the picture, which
        shrinks its planes with the engines' own resize and converts only the result."""
        size_of = getattr(self.detector, "scaled_size", None)
        with self.timed("decode"):
            frame = self.decoder.decode_picture(packet)
            picture = picture_of(frame)
            if size_of is None or picture.width == 0 or picture.height == 0:  # an empty frame: the engine says so
                return picture, None
            width, height = size_of(picture.width, picture.height)
            if self.scale_in_decoder:
                return picture, scaled_rgb(frame, width, height)
            return picture, picture.region((0, 0, picture.width, picture.height), width, height)

    def decode_all(self, packets: Sequence[FramePacket]) -> list[tuple[Picture, np.ndarray | None] | Exception]:
        """:meth:`decode` of every packet, on the decode threads; a packet that fails gives its
        exception in its place (the others still decode)."""

        def one(packet: FramePacket) -> tuple[Picture, np.ndarray | None] | Exception:
            try:
                return self.decode(packet)
            except Exception as exc:  # noqa: BLE001 - the caller dead-letters it
                return exc

        if self._decode_pool is None or len(packets) < 2:
            return [one(p) for p in packets]
        return list(self._decode_pool.map(one, packets))

    def close(self) -> None:
        """Stop the decode threads."""
        if self._decode_pool is not None:
            self._decode_pool.shutdown(wait=True)

    def detect(self, frames: Sequence[Picture], scaled: Sequence[np.ndarray | None] | None = None) -> list[Detections]:
        """Detections of every frame, in one batch (from the ``scaled`` copies when all frames have
        one, else from the whole RGB frames)."""
        if self.metrics is not None:
            self.metrics.observe_batch(len(frames))
        detect_scaled = getattr(self.detector, "detect_scaled", None)
        with self.timed("detect"):
            if scaled is not None and detect_scaled is not None and all(s is not None for s in scaled):
                return list(detect_scaled(scaled, [(f.width, f.height) for f in frames]))
            return list(self.detector.detect([f.rgb() for f in frames]))

    def crops(self, frame: Picture, boxes: np.ndarray, ratio: float) -> list[np.ndarray]:
        """The embedder's (h, w, 3) RGB uint8 crops of a frame's (N, 4) ``boxes`` expanded by ``ratio``,
        at the size the embedder scales them to when it says (:func:`engines.picture.crops`)."""
        return crops(frame, boxes, ratio, getattr(self.embedder, "scaled_size", None))

    def embed(self, crops: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """(M, D) vectors of the crops and, when the embedder gives one, their (M,) garment probability."""
        if not crops:
            return np.zeros((0, 0), np.float32), None
        scored = getattr(self.embedder, "embed_scored", None)  # the optional garment output
        with self.timed("embed"):
            if scored is None:
                return self.embedder.embed(crops), None
            vectors, garment = scored(crops)
        return vectors, garment

    def person_coverage(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray | None:
        """(N,) share of each of the frame's (N, 4) boxes on a person; None without person masks."""
        if self.person is None:
            return None
        with self.timed("person"):
            return self.person.coverage(image, boxes)

    def search(self, vectors: np.ndarray, k: int, allowed: Collection[str] | None) -> list[list[GalleryHit]]:
        """Gallery hits per row of (M, D) ``vectors`` among the ``allowed`` items (None: all); an empty
        gallery (all images removed) gives none."""
        with self.timed("search"):
            try:
                hits = self.gallery.search(vectors, k=k, catalog=allowed)
            except EmptyGalleryError:
                hits = [[] for _ in range(vectors.shape[0])]
        if self.metrics is not None:
            self.metrics.set_gallery_size(len(self.gallery))
        return hits
