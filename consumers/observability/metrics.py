"""The LiveTag metric set on a prometheus-client registry, behind one small facade.

:class:`PipelineMetrics` owns every metric and is passed to the stages that record them (there is
no module-level registry and no no-op variant: a service makes one on its own
``CollectorRegistry`` and serves it with :class:`~consumers.observability.health.HealthServer`).

Metric names (all prefixed ``livetag_``), labels and what a sample means:

============================================  =====================  ==========================================
name                                          labels                 meaning
============================================  =====================  ==========================================
stage_latency_seconds (histogram)             stage                  decode detect embed search vote person
end_to_end_latency_seconds (histogram)        -                      frame wallclock header -> its batch's
                                                                     outputs (matches) published; one per frame
batch_size (histogram)                        -                      frames per model call
frames_in_total / frames_out_total            -                      frame records consumed / fully processed
matches_published_total                       event                  match.started / updated / ended
queue_depth (gauge)                           queue                  items waiting in a bounded queue
dropped_total                                 queue, policy          items lost to a queue's drop policy
dropped_frames_total                          reason                 frames not analysed: stale (older than
                                                                     pipeline.max_frame_age_s), superseded
                                                                     (newest_frame_wins), max_rate
dead_letters_total                            stage, reason          dead letters; reason = error class name
active_streams (gauge)                        -                      streams with voter state / running (ingest)
source_reconnects_total                       -                      live source reconnects
consumer_lag (gauge)                          topic, partition       end offset - position, per assigned partition
consumer_group_lag (gauge)                    topic, partition       end offset - committed offset (KEDA's lag;
                                                                     the position while nothing is committed)
gallery_vectors (gauge)                       -                      vectors in the gallery index
model (info)                                  detector, embedder     model name@version of each role
last_poll_timestamp_seconds (gauge)           -                      unix time of the record loop's last poll
============================================  =====================  ==========================================

Label values are bounded (no stream ids, no URLs) and pass through the redactor, so no credential can
reach ``/metrics``. Per-partition lag series are removed when a partition is revoked (eviction rule).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from consumers.bus import Consumer, Record, TopicPartition
from consumers.messages.match_event import SCHEMA_NAME, SCHEMA_NAME_V2
from consumers.observability.health import Liveness
from consumers.settings.redact import Redactor
from stream.clock import Clock, SystemClock

log = logging.getLogger(__name__)

NAMESPACE = "livetag"
STAGES = ("decode", "detect", "embed", "search", "vote", "person")
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
END_TO_END_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
DLQ_CLASS_HEADER = "lt-dlq-error-class"
DLQ_STAGE_HEADER = "lt-dlq-stage"
SCHEMA_HEADER = "lt-schema"
MATCH_SCHEMAS = (SCHEMA_NAME.encode(), SCHEMA_NAME_V2.encode())
#: Queues whose items are frames: their drops also count in ``dropped_frames_total{reason=policy}``.
FRAME_QUEUES = ("frames", "source_rate")


class PipelineMetrics:
    """Every LiveTag metric, registered on ``registry``.

    Args:
        registry: Where the metrics live (one per service; tests make their own).
        clock: Injected time: ``monotonic`` times stages, ``now`` is compared with frame wallclocks.
        redactor: Masks label values (defaults to URL/secret-key masking without literal secrets).
        liveness: Beaten on every poll of the record loop (``/healthz`` fails when polls stop).
        lag_interval_s: Least seconds between two consumer-lag readings (0: at every commit, right for
            the in-process bus; services on Kafka use a few seconds).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        clock: Clock | None = None,
        redactor: Redactor | None = None,
        liveness: Liveness | None = None,
        lag_interval_s: float = 0.0,
    ) -> None:
        if lag_interval_s < 0:
            raise ValueError(f"lag_interval_s must be >= 0, got {lag_interval_s}")
        self.registry = registry
        self.clock = clock or SystemClock()
        self.redactor = redactor or Redactor()
        self.liveness = liveness
        self.lag_interval_s = lag_interval_s
        self._lag_pending: Consumer | None = None
        self._lock = threading.Lock()
        self._lag_series: set[tuple[str, str]] = set()
        self._lag_read_at: float | None = None
        ns = NAMESPACE
        self.stage_latency = Histogram(
            "stage_latency_seconds", "Seconds one pipeline stage took for one batch.", ["stage"],
            namespace=ns, registry=registry, buckets=STAGE_BUCKETS,
        )
        self.end_to_end_latency = Histogram(
            "end_to_end_latency_seconds",
            "Seconds from a frame's wallclock header to the publish of its batch's match events.",
            namespace=ns, registry=registry, buckets=END_TO_END_BUCKETS,
        )
        self.batch_size = Histogram(
            "batch_size", "Frames per model call.", namespace=ns, registry=registry, buckets=BATCH_BUCKETS
        )
        self.frames_in = Counter("frames_in", "Frame records consumed.", namespace=ns, registry=registry)
        self.frames_out = Counter(
            "frames_out", "Frame records processed and committed.", namespace=ns, registry=registry
        )
        self.matches_published = Counter(
            "matches_published", "Match events published, by event type.", ["event"], namespace=ns, registry=registry
        )
        self.queue_depth = Gauge("queue_depth", "Items waiting in a bounded queue.", ["queue"], namespace=ns, registry=registry)
        self.dropped = Counter(
            "dropped", "Items lost to a queue's drop policy.", ["queue", "policy"], namespace=ns, registry=registry
        )
        self.dropped_frames = Counter(
            "dropped_frames", "Frames not analysed, by reason (stale: older than the max frame age).",
            ["reason"], namespace=ns, registry=registry,
        )
        self.dead_letters = Counter(
            "dead_letters", "Records sent to the dead-letter topic, by stage and error class.",
            ["stage", "reason"], namespace=ns, registry=registry,
        )
        self.active_streams = Gauge("active_streams", "Streams with live voter state.", namespace=ns, registry=registry)
        self.reconnects = Counter("source_reconnects", "Live source reconnects.", namespace=ns, registry=registry)
        self.consumer_lag = Gauge(
            "consumer_lag", "Records between a partition's end and the consumer position.",
            ["topic", "partition"], namespace=ns, registry=registry,
        )
        self.consumer_group_lag = Gauge(
            "consumer_group_lag", "Records between a partition's end and the group's committed offset.",
            ["topic", "partition"], namespace=ns, registry=registry,
        )
        self.gallery_vectors = Gauge("gallery_vectors", "Vectors in the gallery index.", namespace=ns, registry=registry)
        self.model = Info("model", "Model versions in use (name@version per role).", namespace=ns, registry=registry)
        self.last_poll = Gauge(
            "last_poll_timestamp_seconds", "Unix time of the record loop's latest poll.", namespace=ns, registry=registry
        )

    def _label(self, value: object) -> str:
        return self.redactor(str(value))

    # --- stages -------------------------------------------------------------------------------------
    def observe_stage(self, stage: str, seconds: float) -> None:
        """Record that ``stage`` (one of :data:`STAGES`) took ``seconds`` for a batch."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
        self.stage_latency.labels(stage).observe(max(0.0, seconds))

    @contextlib.contextmanager
    def time_stage(self, stage: str) -> Iterator[None]:
        """``with metrics.time_stage("detect"): ...`` records the block's duration (also when it raises)."""
        start = self.clock.monotonic()
        try:
            yield
        finally:
            self.observe_stage(stage, self.clock.monotonic() - start)

    def observe_batch(self, size: int) -> None:
        """One model call on ``size`` frames."""
        self.batch_size.observe(size)

    # --- records in and out -------------------------------------------------------------------------
    def record_poll(self, count: int) -> None:
        """The record loop polled and got ``count`` frame records (0 for an empty poll)."""
        self.last_poll.set(self.clock.now())
        if count:
            self.frames_in.inc(count)
        if self.liveness is not None:
            self.liveness.beat()
        pending = self._lag_pending
        if pending is not None and self.clock.monotonic() - (self._lag_read_at or 0.0) >= self.lag_interval_s:
            self.update_lag(pending)

    def record_consumed(self, count: int) -> None:
        """``count`` frame records were consumed (outside a polling loop)."""
        self.frames_in.inc(count)

    def record_frames_out(self, count: int = 1) -> None:
        """``count`` frame records were published downstream (ingest: packets sent to ``frames``)."""
        self.frames_out.inc(count)

    def record_published(self, inputs: Sequence[Record], outputs: Sequence[Record], now: float | None = None,
                         analysed: Sequence[Record] | None = None) -> None:
        """Account a batch whose outputs were just published (flushed).

        Args:
            inputs: The frame records of the batch.
            outputs: What was published: match events (``lt-schema`` header) and dead letters.
            now: Unix seconds at publish (default: the clock's ``now``).
            analysed: The records that reached the models (default: ``inputs``); their ``wallclock``
                header gives the end-to-end latency (a frame shed as stale has none to report).
        """
        now = self.clock.now() if now is None else now
        self.frames_out.inc(len(inputs))
        for record in inputs if analysed is None else analysed:
            raw = record.header("wallclock")
            if raw is None:
                continue
            try:
                latency = now - float(raw)
            except ValueError:
                continue
            if math.isfinite(latency):  # a -inf wallclock (a dead letter) would make the sum +Inf forever
                self.end_to_end_latency.observe(max(0.0, latency))
        for out in outputs:
            error_class = out.header(DLQ_CLASS_HEADER)
            if error_class is not None:
                stage = out.header(DLQ_STAGE_HEADER) or b"unknown"
                self.dead_letter(stage.decode(errors="replace"), error_class.decode(errors="replace"))
            elif out.header(SCHEMA_HEADER) in MATCH_SCHEMAS:
                event = out.header("event")
                self.matches_published.labels(self._label(event.decode() if event else "match")).inc()

    def dead_letter(self, stage: str, reason: str) -> None:
        """One record dead-lettered by ``stage``; ``reason`` must be low-cardinality (an error class)."""
        self.dead_letters.labels(self._label(stage), self._label(reason)).inc()

    # --- queues -------------------------------------------------------------------------------------
    def set_queue_depth(self, queue: str, depth: int) -> None:
        """Items waiting in ``queue`` now."""
        self.queue_depth.labels(self._label(queue)).set(depth)

    def record_drops(self, queue: str, policy: str, count: int) -> None:
        """``count`` items of ``queue`` were lost to ``policy`` (drop_oldest, drop_newest, ...)."""
        if count > 0:
            self.dropped.labels(self._label(queue), self._label(policy)).inc(count)
            if queue in FRAME_QUEUES:
                self.dropped_frames.labels(self._label(policy)).inc(count)

    # --- streams, sources, gallery, models ----------------------------------------------------------
    def set_active_streams(self, count: int) -> None:
        """Streams currently holding voter state."""
        self.active_streams.set(count)

    def record_reconnects(self, count: int = 1) -> None:
        """A live source reconnected ``count`` times."""
        if count > 0:
            self.reconnects.inc(count)

    def set_gallery_size(self, vectors: int) -> None:
        """Vectors in the gallery index now."""
        self.gallery_vectors.set(vectors)

    def set_models(self, versions: Mapping[str, str]) -> None:
        """Model versions by role, e.g. ``{"detector": "livetag-detector@2026.01.01-1", ...}``."""
        self.model.info({self._label(k): self._label(v) for k, v in versions.items()})

    # --- consumer lag -------------------------------------------------------------------------------
    def set_lag(self, lags: Mapping[TopicPartition, int], group_lags: Mapping[TopicPartition, int] | None = None) -> None:
        """Lag per assigned partition; series of partitions no longer listed are removed.

        Args:
            lags: End offset minus the consumer's position.
            group_lags: End offset minus the group's committed offset (default: ``lags``).
        """
        group_lags = lags if group_lags is None else group_lags
        current = {(self._label(tp.topic), str(tp.partition)): lag for tp, lag in lags.items()}
        committed = {(self._label(tp.topic), str(tp.partition)): lag for tp, lag in group_lags.items()}
        with self._lock:
            for key in self._lag_series - set(current):
                self._remove_lag(key)
            for key, lag in current.items():
                self.consumer_lag.labels(*key).set(max(0, lag))
                self.consumer_group_lag.labels(*key).set(max(0, committed.get(key, lag)))
            self._lag_series = set(current)

    def _remove_lag(self, key: tuple[str, str]) -> None:
        for gauge in (self.consumer_lag, self.consumer_group_lag):
            with contextlib.suppress(KeyError):
                gauge.remove(*key)

    def forget_partitions(self, partitions: Iterable[TopicPartition]) -> None:
        """Drop the lag series of revoked partitions."""
        with self._lock:
            for tp in partitions:
                key = (self._label(tp.topic), str(tp.partition))
                if key in self._lag_series:
                    self._lag_series.discard(key)
                    self._remove_lag(key)

    def update_lag(self, consumer: Consumer, min_interval_s: float | None = None) -> dict[TopicPartition, int] | None:
        """Read end, position and committed offsets of ``consumer``'s assignment and record both lags.

        Call it from the thread that owns ``consumer`` (the record loop does, after each commit). A
        reading skipped by the interval is remembered and done by the next :meth:`record_poll` once
        the interval has passed, so the gauge settles even when commits stop. A failing reading is
        logged and skipped: metrics never stop the pipeline.

        Args:
            consumer: The group consumer (its ``assignment``, ``end_offsets``, ``position``, ``committed``).
            min_interval_s: Least seconds between two readings (end offsets cost a broker round
                trip); default ``lag_interval_s`` of the constructor.

        Returns:
            ``{partition: end offset - position}`` for every assigned partition, None when skipped.
        """
        interval = self.lag_interval_s if min_interval_s is None else min_interval_s
        now = self.clock.monotonic()
        if self._lag_read_at is not None and now - self._lag_read_at < interval:
            self._lag_pending = consumer
            return None
        self._lag_pending = None
        self._lag_read_at = now
        try:
            assigned = sorted(consumer.assignment())
            ends = consumer.end_offsets(assigned) if assigned else {}
            positions = {tp: consumer.position(tp) for tp in assigned}
            committed = {tp: consumer.committed(tp) for tp in assigned}
        except Exception as exc:  # noqa: BLE001 - a metric must not take the loop down
            log.warning("consumer lag not read: %s", exc)
            return None
        lags = {tp: max(0, ends.get(tp, 0) - positions[tp]) for tp in assigned}
        group_lags = {tp: max(0, ends.get(tp, 0) - (positions[tp] if c is None else c)) for tp, c in committed.items()}
        self.set_lag(lags, group_lags)
        return lags

