"""Stage latency metrics without touching the stage's code: metered wrappers of its collaborators.

:func:`instrument_stage` replaces the decoder, detector, embedder, gallery and voter of an
:class:`~consumers.inference_stage.InferenceStage` (anything with those attributes) by wrappers
that time every call into ``livetag_stage_latency_seconds{stage=...}`` and delegate everything else:

=========  =====================================  ===============================================
stage      timed call                             granularity
=========  =====================================  ===============================================
decode     ``decoder.decode(packet)``             one frame
detect     ``detector.detect(frames)``            one batch (also observes ``batch_size``)
embed      ``embedder.embed(crops)``              the crops of one batch
search     ``gallery.search(vectors, ...)``       the crops of one catalog within a batch
vote       ``voter.observe(stream_id, pts, ...)`` one frame (then sets ``active_streams``)
=========  =====================================  ===============================================

It also records the model versions (``livetag_model_info``) and the gallery size after each search.
Instrumenting twice is a no-op.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from consumers.observability.metrics import PipelineMetrics


class _Metered:
    """Delegates every attribute to ``inner``; subclasses time one method."""

    def __init__(self, inner: Any, metrics: PipelineMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __len__(self) -> int:
        return len(self._inner)

    def __bool__(self) -> bool:
        return bool(self._inner)


class MeteredDecoder(_Metered):
    """``decode(packet) -> RGB frame (H, W, 3) uint8``, timed as ``decode``."""

    def decode(self, packet: Any) -> np.ndarray:
        with self._metrics.time_stage("decode"):
            return self._inner.decode(packet)  # type: ignore[no-any-return]


class MeteredDetector(_Metered):
    """``detect(frames) -> list[Detections]``, timed as ``detect``; the batch size is observed."""

    def detect(self, frames: Sequence[np.ndarray]) -> list[Any]:
        self._metrics.observe_batch(len(frames))
        with self._metrics.time_stage("detect"):
            return list(self._inner.detect(frames))


class MeteredEmbedder(_Metered):
    """``embed(crops) -> (N, D) float32`` and ``embed_scored(crops) -> (vectors, garment)``, timed as ``embed``."""

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        with self._metrics.time_stage("embed"):
            return self._inner.embed(crops)  # type: ignore[no-any-return]

    def embed_scored(self, crops: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        scored = getattr(self._inner, "embed_scored", None)
        with self._metrics.time_stage("embed"):
            if scored is None:
                return self._inner.embed(crops), None
            return scored(crops)  # type: ignore[no-any-return]


class MeteredGallery(_Metered):
    """``search(vectors (M, D), k, catalog) -> hits per row``, timed as ``search``; size recorded."""

    def search(self, vectors: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        with self._metrics.time_stage("search"):
            hits = self._inner.search(vectors, *args, **kwargs)
        self._metrics.set_gallery_size(len(self._inner))
        return hits


class MeteredVoter(_Metered):
    """``observe(stream_id, pts, observations, wallclock) -> events``, timed as ``vote``; active streams recorded."""

    def observe(
        self, stream_id: str, pts: float, observations: Sequence[Any], wallclock: float | None = None
    ) -> list[Any]:
        with self._metrics.time_stage("vote"):
            events = self._inner.observe(stream_id, pts, observations, wallclock)
        self._metrics.set_active_streams(len(self._inner))
        return list(events)

    def evict_idle(self) -> list[Any]:
        events = self._inner.evict_idle()
        self._metrics.set_active_streams(len(self._inner))
        return list(events)


_WRAPPERS: dict[str, type[_Metered]] = {
    "decoder": MeteredDecoder,
    "detector": MeteredDetector,
    "embedder": MeteredEmbedder,
    "gallery": MeteredGallery,
    "voter": MeteredVoter,
}


def instrument_stage(stage: Any, metrics: PipelineMetrics) -> Any:
    """Wrap ``stage``'s collaborators so its work is timed into ``metrics``; returns the stage.

    Args:
        stage: An inference stage with ``decoder``, ``detector``, ``embedder``, ``gallery`` and
            ``voter`` attributes (missing or None ones are left alone).
        metrics: Where the timings, batch sizes, gallery size, active streams and model versions go.
    """
    for name, wrapper in _WRAPPERS.items():
        inner = getattr(stage, name, None)
        if inner is None or isinstance(inner, _Metered):
            continue
        setattr(stage, name, wrapper(inner, metrics))
    versions = {}
    for role in ("detector", "embedder"):
        spec = getattr(getattr(stage, role, None), "spec", None)
        label = getattr(spec, "label", None)
        if label:
            versions[role] = str(label)
    if versions:
        metrics.set_models(versions)
    if hasattr(stage, "on_drop"):
        stage.on_drop = metrics.record_drops
    gallery = getattr(stage, "gallery", None)
    if gallery is not None:
        with contextlib.suppress(TypeError):  # a gallery without a size
            metrics.set_gallery_size(len(gallery))
    return stage


class SourceMeter:
    """Turns one source reader's cumulative counters into metric increments (call ``update`` often).

    Reads ``reader.source.counters.reconnects`` (-> ``source_reconnects_total``) and
    ``reader.counters.dropped_rate`` (-> ``dropped_total{queue="source_rate", policy="max_rate"}``)
    of a :class:`stream.frames.FrameReader`; counters it does not find are ignored.
    """

    def __init__(self, metrics: PipelineMetrics) -> None:
        self.metrics = metrics
        self._reconnects = 0
        self._rate_drops = 0

    def update(self, reader: Any) -> None:
        """Record what changed since the previous call."""
        reconnects = int(getattr(getattr(getattr(reader, "source", None), "counters", None), "reconnects", 0))
        if reconnects > self._reconnects:
            self.metrics.record_reconnects(reconnects - self._reconnects)
            self._reconnects = reconnects
        rate_drops = int(getattr(getattr(reader, "counters", None), "dropped_rate", 0))
        if rate_drops > self._rate_drops:
            self.metrics.record_drops("source_rate", "max_rate", rate_drops - self._rate_drops)
            self._rate_drops = rate_drops
