"""Replaying recorded videos through the embedded pipeline (``livetag replay``, ``eval``, ``demo``).

Readers use :func:`stream.iter_frame_packets` (keyframes by default), paced to real time or as fast
as inference takes them; files are opened once (no reconnect). Missing local files are refused
before anything starts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from consumers.services.embedded import EmbeddedPipeline, EventSink, PipelineReport, PipelineStage, SourceSpec
from consumers.settings import ReplaySettings, Settings
from stream.clock import Clock, SystemClock
from stream.errors import LiveTagError, SourceOpenError
from stream.packet import FramePacket

if TYPE_CHECKING:
    from consumers.observability.metrics import PipelineMetrics



class ReplayInputError(LiveTagError):
    """A replay source is missing or no source could be read."""


def is_url(text: str) -> bool:
    """True for ``scheme://...`` sources (not checked on disk)."""
    head, sep, _ = text.partition("://")
    return bool(sep) and head.isalnum()


def source_specs(urls: Sequence[str], catalog: str | None = None) -> list[SourceSpec]:
    """One :class:`SourceSpec` per source, stream id = file stem (made unique); missing files raise.

    Raises:
        ReplayInputError: A local source does not exist or is not a file.
    """
    specs: list[SourceSpec] = []
    seen: dict[str, int] = {}
    for url in urls:
        if not is_url(url):
            path = Path(url)
            if not path.exists():
                raise ReplayInputError(f"source {url} does not exist; pass a video file or a stream URL")
            if not path.is_file():
                raise ReplayInputError(f"source {url} is not a file; pass a video file or a stream URL")
            base = path.stem
        else:
            base = url.rstrip("/").rsplit("/", 1)[-1] or "stream"
        count = seen.get(base, 0)
        seen[base] = count + 1
        specs.append(SourceSpec(base if count == 0 else f"{base}-{count}", url, catalog))
    return specs


def file_frame_source(
    options: ReplaySettings, clock: Clock | None = None
) -> Callable[[SourceSpec, threading.Event], Iterator[FramePacket]]:
    """A frame source for :class:`EmbeddedPipeline` reading files (and URLs) once, without reconnects."""
    from stream.frames import iter_frame_packets
    from stream.source import SourceOptions

    source_options = SourceOptions(max_retries=0, live=False, realtime=options.speed == "realtime")
    the_clock = clock or SystemClock()

    def frames(spec: SourceSpec, stop: threading.Event) -> Iterator[FramePacket]:
        yield from iter_frame_packets(spec.stream_id, spec.url, options.sampling_spec, source_options, the_clock, stop=stop)

    return frames


def replay(
    stage: PipelineStage,
    specs: Sequence[SourceSpec],
    settings: Settings,
    on_event: EventSink,
    clock: Clock | None = None,
    progress: bool = True,
    frame_source: Callable[[SourceSpec, threading.Event], Iterator[FramePacket]] | None = None,
    metrics: PipelineMetrics | None = None,
) -> PipelineReport:
    """Run ``specs`` through ``stage`` in an embedded pipeline; events go to ``on_event`` as published.

    How the sources are read comes from ``settings.replay``, the micro-batches from
    ``settings.batch``, the topic names from ``settings.topics``.

    ``metrics`` (a ``consumers.observability.metrics.PipelineMetrics``) is fed by the pipeline.

    Returns:
        The pipeline report; sources that failed part-way are listed in ``source_errors``.

    Raises:
        ReplayInputError: Every source failed (nothing was read).
    """
    options = settings.replay
    pipeline = EmbeddedPipeline(
        stage,
        frame_source or file_frame_source(options, clock),
        batch=settings.batch,
        topics=settings.topics,
        clock=clock,
        max_in_flight=options.max_in_flight,
        max_concurrent_sources=options.max_concurrent_sources,
        decoupled=options.decoupled,
        metrics=metrics,
    )
    # on a terminal only: a redirected stderr keeps just the messages that matter
    bar = tqdm(desc="frames", unit="frame", disable=None if progress else True)
    try:
        report = pipeline.run(specs, on_event, on_frames=bar.update)
    except KeyboardInterrupt:
        pipeline.stop.set()
        raise
    finally:
        bar.close()
    if specs and len(report.source_errors) == len(specs) and report.frames_published == 0:
        first = next(iter(report.source_errors.values())) + "; check that it is a playable video or a live URL"
        raise SourceOpenError(first if len(specs) == 1 else f"no source could be read; first: {first}")
    return report
