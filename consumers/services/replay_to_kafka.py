"""``livetag replay --to-kafka``: recorded files -> the ``frames`` topic, at real time or full speed.

Each file is read by :func:`stream.frames.iter_frame_packets` once (no reconnect) in its own thread
(at most ``max_concurrent`` at a time) and published exactly as the ingest worker publishes a live
stream: key = stream id, value = packet bytes, stream metadata in headers plus ``catalog``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from consumers.bus import Producer
from consumers.messages.frame_record import publish_frame
from consumers.settings import Settings
from stream.clock import Clock, SystemClock
from stream.errors import LiveTagError
from stream.frames import iter_frame_packets
from stream.sampling import SamplingSpec
from stream.source import SourceOptions

log = logging.getLogger(__name__)

SPEEDS = ("realtime", "max")


@dataclass(frozen=True)
class ReplayFile:
    """One recorded file to publish.

    Attributes:
        stream_id: Key of its frame records.
        path: Video file (or URL read once).
        catalog: Value of the ``catalog`` header; None sends none.
    """

    stream_id: str
    path: str
    catalog: str | None = None


@dataclass
class ReplayReport:
    """Frames published per stream, and the streams that failed with their reason."""

    frames: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.frames.values())


def replay_to_kafka(
    producer: Producer,
    frames_topic: str,
    files: Sequence[ReplayFile],
    speed: str = "max",
    sampling: SamplingSpec | None = None,
    clock: Clock | None = None,
    stop: threading.Event | None = None,
    max_concurrent: int = 8,
    progress: bool = True,
) -> ReplayReport:
    """Publish every file's frame packets to ``frames_topic`` and flush.

    Args:
        producer: Bus producer (shared by the reader threads).
        frames_topic: Full name of the frames topic.
        files: The recordings.
        speed: ``realtime`` paces each file to its own timestamps; ``max`` reads as fast as possible.
        sampling: Keyframes (default) or ``fps:N``.
        clock: Injected clock (pacing, wallclock stamps).
        stop: Set to end early.
        max_concurrent: Files read at the same time.
        progress: Show a progress bar of published frames.

    Raises:
        LiveTagError: ``speed`` is unknown, or no file could be read at all.
    """
    if speed not in SPEEDS:
        raise LiveTagError(f"speed must be 'realtime' or 'max', got {speed!r}")
    options = SourceOptions(max_retries=0, live=False, realtime=speed == "realtime")
    spec = sampling or SamplingSpec()
    the_clock = clock or SystemClock()
    halt = stop or threading.Event()
    report = ReplayReport()
    bar = tqdm(desc="frames -> kafka", unit="frame", disable=not progress)
    lock = threading.Lock()

    def publish(item: ReplayFile) -> None:
        count = 0
        try:
            for packet in iter_frame_packets(item.stream_id, item.path, spec, options, the_clock, stop=halt):
                publish_frame(producer, frames_topic, packet, item.catalog)
                count += 1
                bar.update(1)
        except LiveTagError as exc:
            log.warning("replay of %s stopped: %s", item.path, exc)
            with lock:
                report.errors[item.stream_id] = str(exc)
        with lock:
            report.frames[item.stream_id] = count

    try:
        with ThreadPoolExecutor(max(1, max_concurrent), thread_name_prefix="replay-kafka") as pool:
            list(pool.map(publish, files))
        producer.flush()
    finally:
        bar.close()
    if files and report.total == 0 and report.errors:
        raise LiveTagError(f"no file could be replayed; first error: {next(iter(report.errors.values()))}")
    return report


def add_to_kafka_arguments(parser: Any) -> None:
    """``--to-kafka`` and its options, for ``livetag replay``."""
    from consumers.settings.options import add_setting_options

    group = parser.add_argument_group("to kafka")
    group.add_argument("--to-kafka", action="store_true",
                       help="publish the files' frames to the Kafka frames topic instead of running the pipeline")
    group.add_argument("--stream-catalog", default=None, metavar="CATALOG",
                       help="with --to-kafka: catalog id sent in every frame's 'catalog' header")
    add_setting_options(parser, "kafka", "topic-prefix")


def run_to_kafka(args: Any, settings: Settings) -> int:
    """``livetag replay --to-kafka SOURCES``: stream ids are the file stems (made unique)."""
    from consumers.services.command_support import kafka_bus, quiet_kafka_logs, stop_on_signals
    from consumers.services.replay import source_specs

    quiet_kafka_logs(one_shot=True)
    files = [ReplayFile(s.stream_id, s.url, args.stream_catalog) for s in source_specs(args.sources)]
    topic = settings.topics.name("frames")
    producer = kafka_bus(settings).producer()
    try:
        report = replay_to_kafka(
            producer, topic, files, speed=settings.replay.speed, sampling=settings.replay.sampling_spec, stop=stop_on_signals()
        )
    finally:
        producer.close()
    print(f"replay -> {topic}: {report.total} frames from {len(files)} files"
          + (f"; {len(report.errors)} failed part-way" if report.errors else ""))
    return 0
