"""The embedded single-process pipeline.

``EmbeddedPipeline`` wires the same stages over an :class:`~consumers.bus.in_process.InProcessBus`::

    sources (one reader thread per video) -> topic frames -> inference stage -> topic matches -> sink

Readers block when ``max_in_flight`` frames are published but not yet committed (drop policy
``block``: recorded video loses nothing and memory stays bounded when inference is slower than
reading).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from consumers.bus import Record
from consumers.bus.in_process import InProcessBus
from consumers.bus.topics import topic_specs
from consumers.messages.dead_letter import DeadLetter
from consumers.messages.frame_record import publish_frame
from consumers.messages.match_event import FRAME_PTS_HEADER
from consumers.observability.logging_setup import bind_stream
from consumers.settings import BatchSettings, TopicSettings
from consumers.settings.services import INFERENCE_GROUP
from consumers.stage.loops import PipelineError, RecordStage, run_consumer_loop
from stream.clock import Clock, SystemClock
from stream.errors import LiveTagError

if TYPE_CHECKING:
    from consumers.observability.metrics import PipelineMetrics


__all__ = [
    "EmbeddedPipeline", "EventSink", "InFlightWindow", "PipelineReport", "SourceSpec", "write_jsonl",
]

log = logging.getLogger(__name__)

IN_FLIGHT_POLICY = "block"
SINK_GROUP = "livetag-sink"
#: Dead-letter reasons kept in a run's report (all are counted; the records stay on the dlq topic).
MAX_DLQ_REASONS = 100


class PipelineStage(RecordStage, Protocol):
    """A record stage that can also end its streams' open matches when their sources end."""

    def end_streams(self, stream_ids: Sequence[str], end_pts: Mapping[str, float] | None = None) -> list[Record]: ...


class InFlightWindow:
    """At most ``capacity`` frames published and not yet committed (policy ``block``).

    ``acquire`` waits for room, polling ``failed`` so a dead consumer never hangs a reader.
    """

    policy = IN_FLIGHT_POLICY

    def __init__(self, capacity: int, failed: threading.Event) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._failed = failed
        self._cond = threading.Condition()
        self._in_flight = 0
        self.waits = 0

    def acquire(self) -> bool:
        """Take one slot; False when the pipeline failed meanwhile."""
        with self._cond:
            if self._in_flight >= self.capacity:
                self.waits += 1
            while self._in_flight >= self.capacity:
                if self._failed.is_set():
                    return False
                self._cond.wait(0.1)
            self._in_flight += 1
            return True

    def release(self, count: int) -> None:
        """Give back ``count`` slots."""
        with self._cond:
            self._in_flight = max(0, self._in_flight - count)
            self._cond.notify_all()


@dataclass(frozen=True)
class SourceSpec:
    """One stream to replay.

    Attributes:
        stream_id: Id stamped on its frame records.
        url: File path or URL.
        catalog: Catalog id sent in the ``catalog`` header (None: no header).
    """

    stream_id: str
    url: str
    catalog: str | None = None


@dataclass
class PipelineReport:
    """What one embedded run did.

    Attributes:
        frames_published: Frame records the readers put on the bus.
        frames_consumed: Frame records processed and committed.
        events: Match events delivered to the sink.
        dead_letters: Dead letters delivered to the sink.
        source_errors: stream id -> why its reader stopped early.
        dlq_reasons: The first ``MAX_DLQ_REASONS`` dead-letter reasons.
        stream_ends: stream id -> last published pts (seconds).
        skipped: Records lost to bus retention per group (expected empty).
    """

    frames_published: int = 0
    frames_consumed: int = 0
    events: int = 0
    dead_letters: int = 0
    source_errors: dict[str, str] = field(default_factory=dict)
    dlq_reasons: list[str] = field(default_factory=list)
    stream_ends: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)


FrameSource = Callable[[SourceSpec, threading.Event], Any]
#: Receives each match event (dict, v1 format), and, when it takes a second argument, the stream time
#: of the frame that emitted it (the ``lt-frame-pts`` header; None for an idle eviction).
EventSink = Callable[[dict[str, Any], float | None], None] | Callable[[dict[str, Any]], None]


def timed_sink(on_event: EventSink) -> Callable[[dict[str, Any], float | None], None]:
    """``on_event`` as a two-argument sink (a one-argument callable is called without the time)."""
    try:
        params = list(inspect.signature(on_event).parameters.values())
    except (TypeError, ValueError):
        params = []
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params):
        return on_event  # type: ignore[return-value]
    one_arg: Callable[[dict[str, Any]], None] = on_event  # type: ignore[assignment]
    return lambda event, _pts: one_arg(event)


class EmbeddedPipeline:
    """Sources -> frames -> inference stage -> matches -> sink, in one process over an InProcessBus.

    Args:
        stage: The inference stage (also asked to end every stream's open matches at the end).
        frame_source: ``(spec, stop) -> iterable of FramePacket`` for one source.
        batch: Micro-batch settings of the inference loop.
        topics: Topic names.
        clock: Injected clock for the bus.
        max_in_flight: Frames published but not committed before readers block.
        max_concurrent_sources: Sources read at the same time.
        decoupled: Decode on the consumer thread and run the models on another
            (``consumers.stage.loops.run_decoupled_loop``) when the stage supports it.
        metrics: Optional ``PipelineMetrics`` fed by the inference loop (polls, published batches,
            lag) and with the end-of-stream events.

    One instance serves one :meth:`run` (its bus keeps the consumed positions).
    """

    def __init__(
        self,
        stage: PipelineStage,
        frame_source: FrameSource,
        batch: BatchSettings | None = None,
        topics: TopicSettings | None = None,
        clock: Clock | None = None,
        max_in_flight: int = 64,
        max_concurrent_sources: int = 8,
        decoupled: bool = True,
        metrics: PipelineMetrics | None = None,
    ) -> None:
        self.stage = stage
        self.metrics = metrics
        self.decoupled = decoupled
        self.frame_source = frame_source
        self.batch = batch or BatchSettings()
        # one consumer reads every topic of the in-process bus: one partition each
        self.topics = dataclasses.replace(topics or TopicSettings(), partitions=1)
        self.clock = clock or SystemClock()
        self.max_in_flight = max_in_flight
        self.max_concurrent_sources = max(1, max_concurrent_sources)
        # Retention bounds memory on long replays: readers are at most max_in_flight frames ahead of
        # inference, so a log of 16x that loses nothing; losses would show in bus.stats() "skipped".
        self.bus = InProcessBus(self.clock, max_records_per_partition=max(4096, 16 * max_in_flight))
        self.bus.create_topics(topic_specs(self.topics))
        self.stop = threading.Event()

    def run(
        self,
        sources: Sequence[SourceSpec],
        on_event: EventSink,
        on_frames: Callable[[int], None] | None = None,
    ) -> PipelineReport:
        """Replay ``sources`` to the end (or until ``self.stop`` is set) and return the report.

        Args:
            sources: The streams.
            on_event: Called in order with every match event as it is published, and with its frame
                time when it takes two arguments (see :func:`timed_sink`).
            on_frames: Called with the number of frames whenever a batch was committed.
        """
        sink_event = timed_sink(on_event)
        report = PipelineReport()
        report_lock = threading.Lock()
        failed = threading.Event()
        errors: list[BaseException] = []
        window = InFlightWindow(self.max_in_flight, failed)
        frames_topic, matches_topic, dlq_topic = (self.topics.name(n) for n in ("frames", "matches", "dlq"))
        infer_stop, sink_stop = threading.Event(), threading.Event()

        def committed(records: list[Record]) -> None:
            window.release(len(records))
            report.frames_consumed += len(records)
            if on_frames is not None:
                on_frames(len(records))

        def infer() -> None:
            consumer = self.bus.consumer([frames_topic], INFERENCE_GROUP)
            producer = self.bus.producer()
            try:
                run_consumer_loop(consumer, producer, self.stage, infer_stop, self.batch, committed,
                                  metrics=self.metrics, decoupled=self.decoupled)
            except BaseException as exc:  # noqa: BLE001 - reported to the caller's thread
                errors.append(exc)
                failed.set()
            finally:
                consumer.close()

        def sink() -> None:
            consumer = self.bus.consumer([matches_topic, dlq_topic], SINK_GROUP)
            try:
                while True:
                    records = consumer.poll(timeout_s=0.05, max_records=256)
                    if not records and sink_stop.is_set():
                        return
                    for record in records:
                        self._deliver(record, matches_topic, report, sink_event)
                    if records:
                        consumer.commit()
            except BaseException as exc:  # noqa: BLE001 - reported to the caller's thread
                errors.append(exc)
                failed.set()
            finally:
                consumer.close()

        def read(spec: SourceSpec) -> None:
            with bind_stream(spec.stream_id):  # every log line of this reader names its stream
                read_stream(spec)

        def read_stream(spec: SourceSpec) -> None:
            producer = self.bus.producer()
            try:
                for packet in self.frame_source(spec, self.stop):
                    if self.stop.is_set() or not window.acquire():
                        return
                    publish_frame(producer, frames_topic, packet, spec.catalog)
                    with report_lock:
                        report.frames_published += 1
                        report.stream_ends[spec.stream_id] = max(
                            report.stream_ends.get(spec.stream_id, 0.0), packet.pts_seconds
                        )
            except Exception as exc:  # noqa: BLE001 - one bad source must not stop the others
                reason = str(exc) if isinstance(exc, LiveTagError) else f"{type(exc).__name__}: {exc}"
                log.warning("source %s stopped: %s", spec.stream_id, reason)
                with report_lock:
                    report.source_errors[spec.stream_id] = reason
            finally:
                producer.flush()

        infer_thread = threading.Thread(target=infer, name="livetag-infer", daemon=True)
        sink_thread = threading.Thread(target=sink, name="livetag-sink", daemon=True)
        infer_thread.start()
        sink_thread.start()
        with ThreadPoolExecutor(self.max_concurrent_sources, thread_name_prefix="livetag-source") as pool:
            try:
                list(pool.map(read, sources))
            except KeyboardInterrupt:
                self.stop.set()  # readers end at their next packet; inference drains what was read
                raise
        infer_stop.set()
        infer_thread.join()
        if not failed.is_set():
            producer = self.bus.producer()
            ended = self.stage.end_streams([s.stream_id for s in sources], report.stream_ends)
            for out in ended:
                producer.produce(out.topic, out.key, out.value, out.headers)
            producer.flush()
            if self.metrics is not None:
                self.metrics.record_published([], ended)
        sink_stop.set()
        sink_thread.join()
        report.skipped = {k: v for k, v in self.bus.stats().items() if k.startswith("skipped:") and v}
        if report.skipped:
            log.warning("records lost to bus retention: %s", report.skipped)
        if errors:
            raise PipelineError(f"the pipeline stopped: {type(errors[0]).__name__}: {errors[0]}") from errors[0]
        return report

    @staticmethod
    def _deliver(
        record: Record,
        matches_topic: str,
        report: PipelineReport,
        on_event: Callable[[dict[str, Any], float | None], None],
    ) -> None:
        if record.topic == matches_topic:
            report.events += 1
            raw_pts = record.header(FRAME_PTS_HEADER)
            on_event(json.loads(record.value or b"{}"), float(raw_pts) if raw_pts else None)
            return
        letter = DeadLetter.from_record(record)
        report.dead_letters += 1
        if len(report.dlq_reasons) < MAX_DLQ_REASONS:
            report.dlq_reasons.append(f"{letter.stage}: {letter.reason}")
        log.warning("dead letter from %s[%d]@%d: %s", letter.topic, letter.partition, letter.offset, letter.reason)


def write_jsonl(path: Path) -> tuple[Callable[[dict[str, Any]], None], Callable[[], None]]:
    """``(write, close)`` appending one JSON document per line to ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("w", encoding="utf-8")

    def write(doc: dict[str, Any]) -> None:
        handle.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")
        handle.flush()

    return write, handle.close
