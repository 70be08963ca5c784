"""The ingest worker: owns streams through a consumer group on ``streams``, publishes to ``frames``.

Ownership moves only with the group's partition assignment, no other coordinator:

* on assignment the worker reads each assigned ``streams`` partition from its log start up to the
  end offset seen at assignment (the compacted topic holds the latest record per stream), keeps the
  latest value per key, then starts those streams; records after that point apply one by one;
* a value starts (or, when changed, restarts) a stream, a tombstone stops it;
* on revocation the streams of the revoked partitions stop, unless the same rebalance assigns the
  partition back (Kafka's eager protocol revokes everything first): those keep running without a gap;
* a stream whose source ended (a file) or failed (reported to ``dlq``) is remembered with its value,
  so rebuilding after a rebalance does not replay it; a changed value starts it again.

The worker never commits offsets on ``streams``: every assignment rebuilds from the log start.
Each stream runs in its own thread (``stream.frames.iter_frame_packets``: PyAV demux, reconnect with
backoff, stall detection) and publishes keyframe packets to ``frames`` with the extra header
``catalog``. Malformed records and streams that cannot be opened go to ``dlq`` with the reason while
the other streams keep flowing. Per-stream state is evicted on tombstone, revocation or source end;
at most ``max_streams`` run at once (more go to ``dlq``, policy ``reject_over_capacity``).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from consumers.bus import Bus, Consumer, Producer, Record, TopicPartition
from consumers.bus.topics import TopicNames
from consumers.messages.dead_letter import send_to_dlq
from consumers.messages.frame_record import publish_frame
from consumers.messages.stream_record import StreamSpec, parse_stream_value, stream_id_from_key
from consumers.observability.health import Readiness
from consumers.observability.instrument import SourceMeter
from consumers.observability.logging_setup import bind_stream
from consumers.observability.metrics import PipelineMetrics
from consumers.settings import IngestSettings
from consumers.text.transcripts import MAX_TEXT_CHARS, TranscriptSegment
from stream.backoff import Backoff
from stream.clock import Clock, SystemClock
from stream.errors import LiveTagError
from stream.frames import FrameReader
from stream.source import SourceOptions
from stream.url_policy import UrlPolicy

log = logging.getLogger(__name__)

CAPACITY_POLICY = "reject_over_capacity"
#: Ended streams remembered per worker (oldest forgotten first; also forgotten with their partition).
FINISHED_LIMIT = 10_000


def source_options(settings: IngestSettings) -> SourceOptions:
    """How each stream's source is opened and kept alive, from the ingest settings."""
    return SourceOptions(open_timeout_s=settings.open_timeout_s, stall_timeout_s=settings.stall_timeout_s,
                         max_retries=settings.max_retries, realtime=settings.realtime,
                         backoff=Backoff(initial_s=settings.backoff_initial_s, cap_s=settings.backoff_cap_s))


@dataclass
class IngestStats:
    """Counters (only the worker's threads write them)."""

    records: int = 0
    started: int = 0
    stopped: int = 0
    dead_letters: int = 0
    frames: int = 0
    rebuilds: int = 0


class _StreamTask:
    """One running stream: its thread, stop event and the ``streams`` record that started it."""

    def __init__(self, spec: StreamSpec, record: Record) -> None:
        self.spec = spec
        self.record = record
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.published = 0

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


@dataclass
class _Rebuild:
    end: int
    latest: dict[bytes | None, Record] = field(default_factory=dict)


class IngestWorker:
    """Streams topic in, frames topic out.

    Args:
        bus: Kafka or in-process bus.
        topics: Topic names.
        config: Worker settings.
        clock: Injected clock (frame wallclock stamps, backoff, dead-letter times).
        metrics: Frames published, active streams, reconnects, dead letters, lag on ``streams``.
        readiness: Its ``partitions_assigned`` condition follows the assignment.
    """

    def __init__(self, bus: Bus, topics: TopicNames, config: IngestSettings | None = None, clock: Clock | None = None,
                 metrics: PipelineMetrics | None = None, readiness: Readiness | None = None) -> None:
        self.metrics = metrics
        self.readiness = readiness
        self.topics = topics
        self.config = config or IngestSettings()
        self._source = source_options(self.config)
        self._urls = UrlPolicy(file_roots=self.config.allow_files, allow_loopback=self.config.allow_loopback)
        self.clock = clock or SystemClock()
        self.stats = IngestStats()
        self._lock = threading.Lock()
        self._tasks: dict[str, _StreamTask] = {}
        self._stopping: list[_StreamTask] = []
        self._rebuilding: dict[TopicPartition, _Rebuild] = {}
        self._revoked: set[TopicPartition] = set()
        # Streams whose source ended or failed (already reported), so a rebuild does not replay them.
        self._finished: OrderedDict[str, tuple[StreamSpec, TopicPartition]] = OrderedDict()
        self._producer: Producer = bus.producer()
        self._consumer: Consumer = bus.consumer(
            [topics.streams], self.config.group_id, on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        self._last_flush = self.clock.monotonic()

    # -- group callbacks (called from inside poll) ---------------------------------------------------
    def _on_assign(self, tps: set[TopicPartition]) -> None:
        self._revoked -= tps  # kept through the rebalance: their streams run on without a gap
        try:
            seek = getattr(self._consumer, "seek_to_beginning", None)
            if seek is not None:
                seek(tps)
            ends = self._consumer.end_offsets(tps)
        except LiveTagError as exc:  # the group moved on meanwhile; the next assignment rebuilds
            log.warning("cannot rebuild %s: %s", sorted(f"{t.topic}[{t.partition}]" for t in tps), exc)
            return
        for tp in tps:
            self._rebuilding[tp] = _Rebuild(ends.get(tp, 0))
        self.stats.rebuilds += 1
        log.info("assigned %s; rebuilding owned streams", sorted(f"{t.topic}[{t.partition}]" for t in tps))

    def _on_revoke(self, tps: set[TopicPartition]) -> None:
        for tp in tps:
            self._rebuilding.pop(tp, None)
        self._revoked |= tps

    def _release_revoked(self) -> None:
        """Stop the streams of partitions revoked and not assigned back in the same rebalance."""
        revoked, self._revoked = self._revoked, set()
        if not revoked:
            return
        for stream_id, task in list(self._tasks.items()):
            if task.record.topic_partition in revoked:
                self._stop(stream_id, "partition revoked")
        for stream_id, (_, tp) in list(self._finished.items()):
            if tp in revoked:
                del self._finished[stream_id]

    # -- the loop ----------------------------------------------------------------------------------
    def owned(self) -> dict[str, StreamSpec]:
        """Streams this worker runs now."""
        with self._lock:
            return {sid: t.spec for sid, t in self._tasks.items()}

    def step(self) -> int:
        """One poll of ``streams``: apply its records, reap ended streams, flush. Returns records seen."""
        records = self._consumer.poll(self.config.poll_timeout_s, 200)
        if self.metrics is not None:
            self.metrics.record_poll(0)  # liveness; frames are counted as the streams publish them
        self._release_revoked()
        self._reap()
        for record in records:
            self.stats.records += 1
            rebuild = self._rebuilding.get(record.topic_partition)
            if rebuild is not None and record.offset < rebuild.end and record.key is not None:
                rebuild.latest[record.key] = record
                continue
            self._apply(record)
        self._finish_rebuilds()
        self._reap()
        now = self.clock.monotonic()
        if now - self._last_flush >= self.config.flush_interval_s:
            self._flush()
            self._last_flush = now
        self._observe()
        return len(records)

    def _observe(self) -> None:
        """Readiness (partitions assigned), active streams and lag on ``streams``, from the poll thread."""
        if self.readiness is not None:
            owned = sorted(f"{t.topic}[{t.partition}]" for t in self._consumer.assignment())
            self.readiness.set("partitions_assigned", bool(owned), ", ".join(owned) or "no partition assigned")
        if self.metrics is not None:
            self.metrics.set_active_streams(len(self._tasks))
            self.metrics.update_lag(self._consumer)

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set, then stop every stream and leave the group."""
        try:
            while not stop.is_set():
                self.step()
        finally:
            self.close()

    def close(self) -> None:
        """Stop all streams, flush what they published, leave the group."""
        for stream_id in list(self._tasks):
            self._stop(stream_id, "worker closing")
        for task in self._stopping:
            if task.thread is not None:
                task.thread.join(timeout=self._source.stall_timeout_s + 1)
        self._stopping.clear()
        self._flush()
        self._consumer.close()
        self._producer.close()

    # -- internals ---------------------------------------------------------------------------------
    def _finish_rebuilds(self) -> None:
        for tp, rebuild in list(self._rebuilding.items()):
            if rebuild.end > 0 and self._consumer.position(tp) < rebuild.end:
                continue
            del self._rebuilding[tp]
            for record in sorted(rebuild.latest.values(), key=lambda r: r.offset):
                self._apply(record)

    def _apply(self, record: Record) -> None:
        try:
            stream_id = stream_id_from_key(record.key)
            if record.value is None:
                self._finished.pop(stream_id, None)
                self._stop(stream_id, "tombstone")
                return
            spec = parse_stream_value(stream_id, record.value)
            self._urls.check(spec.url)
        except LiveTagError as exc:
            self._dead_letter(record, exc, "streams-record")
            return
        finished = self._finished.get(stream_id)
        if finished is not None and finished[0] == spec:
            return  # this exact stream already ran to its end here; a changed value starts it again
        self._finished.pop(stream_id, None)
        running = self._tasks.get(stream_id)
        if running is not None and running.spec == spec and running.alive:
            running.record = record
            return
        if running is not None:
            self._stop(stream_id, "updated")
        if len(self._tasks) >= self.config.max_streams:
            self._dead_letter(
                record,
                LiveTagError(f"worker runs {self.config.max_streams} streams already ({CAPACITY_POLICY}); add workers"),
                "capacity",
            )
            return
        self._start(spec, record)

    def _start(self, spec: StreamSpec, record: Record) -> None:
        task = _StreamTask(spec, record)
        task.thread = threading.Thread(target=self._run_stream, args=(task,), name=f"ingest-{spec.stream_id}", daemon=True)
        with self._lock:
            self._tasks[spec.stream_id] = task
        self.stats.started += 1
        log.info("stream %s: start %s (catalog %s, %s)", spec.stream_id, spec.url, spec.catalog, spec.sampling)
        if spec.text:  # title and description are text about the products: the text cues read them
            key, value = TranscriptSegment(spec.stream_id, spec.text[:MAX_TEXT_CHARS], source="title").to_record()
            try:
                self._producer.produce(self.topics.transcripts, key, value)
            except LiveTagError as exc:  # the title is a hint: the stream starts without it
                log.warning("stream %s: title not published to %s: %s", spec.stream_id, self.topics.transcripts, exc)
        task.thread.start()

    def _stop(self, stream_id: str, why: str) -> None:
        with self._lock:
            task = self._tasks.pop(stream_id, None)
        if task is None:
            return
        task.stop.set()
        self.stats.stopped += 1
        log.info("stream %s: stop (%s) after %d frames", stream_id, why, task.published)
        if task.thread is not None:
            task.thread.join(timeout=self.config.stop_join_s)
            if task.thread.is_alive():
                self._stopping.append(task)

    def _reap(self) -> None:
        self._stopping = [t for t in self._stopping if t.alive]
        with self._lock:
            ended = [sid for sid, t in self._tasks.items() if t.thread is not None and not t.alive]
            for sid in ended:
                task = self._tasks.pop(sid)
                self._finished[sid] = (task.spec, task.record.topic_partition)
        while len(self._finished) > FINISHED_LIMIT:
            self._finished.popitem(last=False)

    def _run_stream(self, task: _StreamTask) -> None:
        with bind_stream(task.spec.stream_id):  # every log line of this stream's thread names it
            self._read_stream(task)

    def _read_stream(self, task: _StreamTask) -> None:
        spec = task.spec
        meter = SourceMeter(self.metrics) if self.metrics is not None else None
        reader = FrameReader(spec.stream_id, spec.url, spec.sampling, self._source, self.clock, stop=task.stop)
        try:
            for packet in reader:
                if task.stop.is_set():
                    break
                publish_frame(self._producer, self.topics.frames, packet, spec.catalog)
                task.published += 1
                self.stats.frames += 1
                if meter is not None:
                    meter.metrics.record_frames_out(1)
                    meter.update(reader)
        except LiveTagError as exc:
            log.warning("stream %s: %s", spec.stream_id, exc)
            self._dead_letter(task.record, exc, "ingest-source")
        except Exception as exc:  # a bug must not take the other streams down; the reason goes to dlq
            log.exception("stream %s failed", spec.stream_id)
            self._dead_letter(task.record, exc, "ingest-source")
        else:
            log.info("stream %s: source ended after %d frames", spec.stream_id, task.published)
        finally:
            if meter is not None:
                meter.update(reader)

    def _dead_letter(self, record: Record, error: BaseException, stage: str) -> None:
        self.stats.dead_letters += 1
        if self.metrics is not None:
            self.metrics.dead_letter(stage, type(error).__name__)
        log.warning("dead letter (%s) for %r: %s", stage, record.key, error)
        try:
            send_to_dlq(self._producer, record, error, stage, self.clock, topic=self.topics.dlq)
        except LiveTagError as exc:
            log.error("could not publish a dead letter for %r: %s (reason was: %s)", record.key, exc, error)

    def _flush(self) -> None:
        try:
            self._producer.flush(10.0)
        except LiveTagError as exc:
            log.error("frames not acknowledged: %s", exc)
