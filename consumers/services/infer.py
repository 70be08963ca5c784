"""The inference consumer: a consumer group on ``frames``, match events to ``matches``.

It is the single-machine inference stage (:class:`consumers.stage.inference_stage.InferenceStage`) run by
the same loop as the embedded pipeline (:func:`consumers.stage.loops.run_consumer_loop`: poll a
micro-batch across all assigned partitions and decode it while the previous batch is in the models,
produce, flush, then commit that batch's offsets) on a :class:`~consumers.bus.kafka.KafkaBus`:

* at-least-once: offsets are committed only after the produced events and dead letters were
  acknowledged by the broker; a crash re-delivers the uncommitted batch and the deterministic
  ``event_id`` lets subscribers drop the duplicates;
* a commit refused because the group rebalanced meanwhile is logged and the loop goes on (the new
  owner re-processes from the last committed offset: duplicates, never a loss); a batch still in the
  models when its partition is revoked is likewise published and then committed or refused;
* the gallery comes from the ``gallery`` topic: read to its end before the first frame, then
  followed in a background thread (images added or removed without a restart); item titles in its
  metadata feed the text cues;
* the ``transcripts`` topic (speech, titles, on-screen text per stream) is followed likewise into the
  stage's text cues, when ``text.enabled``;
* stop (SIGTERM in ``livetag infer``): the batches in hand are finished, published and committed, no
  further batch is taken, and the consumer leaves the group so its partitions move at once;
* open match segments move with their partitions through the ``segments`` topic
  (:mod:`consumers.messages.segment_state`): written with the events, handed over on revoke, adopted on
  assignment, so a rebalance or a ``kill -9`` neither repeats ``match.started`` nor leaves a segment
  without its ``match.ended``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from consumers.bus import Bus, BusError, CommitFailedError, Consumer, Producer, Record, TopicPartition
from consumers.observability.health import Readiness
from consumers.observability.metrics import PipelineMetrics
from consumers.services.gallery_follower import GalleryFollower
from consumers.services.segment_topic import read_open_segments, topic_exists
from consumers.services.transcript_follower import TranscriptFollower
from consumers.settings import Settings
from consumers.settings.services import INFERENCE_GROUP
from consumers.stage.builder import build_stage
from consumers.stage.inference_stage import InferenceStage
from consumers.stage.loops import LoopCounters, RecordStage, run_consumer_loop
from engines.base import Detector, Embedder
from engines.gallery import GalleryIndex
from stream.clock import Clock, SystemClock

log = logging.getLogger(__name__)


@dataclass
class CommitStats:
    """What the consumer adapter saw."""

    commits: int = 0
    refused: int = 0
    revoked: int = 0
    assigned: int = 0


class StoppableConsumer:
    """Wraps a bus consumer for the stage loop: stops taking records once ``stop`` is set, and
    treats a commit refused by a rebalance as a re-delivery instead of a failure.

    Args:
        consumer: The group consumer of ``frames``.
        stop: When set, ``poll`` returns nothing, so the loop ends after the batch in hand.
    """

    def __init__(self, consumer: Consumer, stop: threading.Event) -> None:
        self._consumer = consumer
        self._stop = stop
        self.stats = CommitStats()

    def poll(self, timeout_s: float = 1.0, max_records: int = 500) -> list[Record]:
        if self._stop.is_set():
            return []
        return self._consumer.poll(timeout_s, max_records)

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        try:
            self._consumer.commit(offsets)
            self.stats.commits += 1
        except CommitFailedError as exc:
            self.stats.refused += 1
            log.warning("%s; the batch will be delivered again to the partition's new owner", exc)

    def assignment(self) -> set[TopicPartition]:
        return self._consumer.assignment()

    def position(self, tp: TopicPartition) -> int:
        return self._consumer.position(tp)

    def committed(self, tp: TopicPartition) -> int | None:
        return self._consumer.committed(tp)

    def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return self._consumer.end_offsets(partitions)

    def close(self) -> None:
        self._consumer.close()


class InferenceConsumer:
    """One member of the inference group.

    Args:
        bus: The bus (Kafka in production).
        stage: The inference stage (its gallery is the follower's index), or any record stage.
        settings: Validated settings (topics, batch).
        follower: Keeps the stage's gallery equal to the gallery topic; started by ``run``.
        group_id: Consumer group on ``frames``.
        metrics: Loop metrics (frames, latency, lag; revoked partitions' lag series are removed).
        readiness: Its ``partitions_assigned`` condition follows the assignment.
    """

    def __init__(
        self,
        bus: Bus,
        stage: RecordStage,
        settings: Settings,
        follower: GalleryFollower | None = None,
        group_id: str = INFERENCE_GROUP,
        metrics: PipelineMetrics | None = None,
        readiness: Readiness | None = None,
    ) -> None:
        self.metrics = metrics
        self.readiness = readiness
        self._owned: set[TopicPartition] = set()
        self.bus = bus
        self.stage = stage
        self.settings = settings
        self.follower = follower
        self.group_id = group_id
        if isinstance(stage, InferenceStage) and stage.segment_group is not None:
            stage.segment_group = group_id  # the segments it writes and adopts are its group's
        self.counters: LoopCounters | None = None
        self.commit_stats = CommitStats()
        self._producer: Producer | None = None

    def run(self, stop: threading.Event) -> LoopCounters:
        """Consume until ``stop`` is set; then finish the batch in hand, commit and leave the group."""
        topics = self.settings.topics
        if self.follower is not None:
            self.follower.start()
        texts = self._text_follower()

        def revoked(tps: set[TopicPartition]) -> None:
            self.commit_stats.revoked += len(tps)
            log.info("partitions revoked: %s", sorted(f"{t.topic}[{t.partition}]" for t in tps))
            self._release_segments(tps)
            self._owned -= set(tps)
            if self.metrics is not None:
                self.metrics.forget_partitions(tps)
            self._report_assignment()

        def assigned(tps: set[TopicPartition]) -> None:
            self.commit_stats.assigned += len(tps)
            log.info("partitions assigned: %s", sorted(f"{t.topic}[{t.partition}]" for t in tps))
            if isinstance(self.stage, InferenceStage):
                self.stage.assign({(t.topic, t.partition) for t in tps})
            self._adopt_segments(tps)
            self._owned |= set(tps)
            self._report_assignment()

        consumer = StoppableConsumer(
            self.bus.consumer([topics.name("frames")], self.group_id, on_assign=assigned, on_revoke=revoked), stop
        )
        consumer.stats = self.commit_stats
        producer = self._producer = self.bus.producer()
        try:
            self.counters = run_consumer_loop(consumer, producer, self.stage, stop, self.settings.batch,
                                              metrics=self.metrics)
            return self.counters
        finally:
            consumer.close()
            producer.close()
            if self.follower is not None:
                self.follower.close()
            if texts is not None:
                texts.close()
            close_stage = getattr(self.stage, "close", None)
            if close_stage is not None:
                close_stage()

    def _release_segments(self, tps: set[TopicPartition]) -> None:
        """Before revoked partitions move, publish what the stage gives for their open segments: their
        state on ``segments`` for the new owner to carry on, or (without that topic) ``match.ended``
        (best effort: a failure is logged)."""
        revoke = getattr(self.stage, "revoke", None)
        if revoke is None or self._producer is None:
            return
        try:
            released = revoke({(t.topic, t.partition) for t in tps})
            for out in released:
                self._producer.produce(out.topic, out.key, out.value, out.headers)
            self._producer.flush()
            log.info("released %d open segments of revoked partitions", len(released))
        except Exception as exc:  # noqa: BLE001 - a rebalance must go on; the new owner ends them by timeout
            log.warning("could not end the segments of revoked partitions: %s", exc)

    def _adopt_segments(self, tps: set[TopicPartition]) -> None:
        """Carry on the segments the partitions' previous owners left open (consumers.messages.segment_state)."""
        if not isinstance(self.stage, InferenceStage) or self.stage.segments_topic is None:
            return
        try:
            found = read_open_segments(self.bus, self.stage.segments_topic, {t.partition for t in tps},
                                       self.group_id)
            frames = self.settings.topics.name("frames")
            taken = self.stage.adopt({s: state for s, (state, _) in found.items()},
                                     {s: (frames, p) for s, (_, p) in found.items()})
            log.info("adopted %d of %d open segments of the assigned partitions", taken, len(found))
        except Exception as exc:  # noqa: BLE001 - a rebalance must go on; idle eviction or new frames settle it
            log.warning("could not read the open segments of the assigned partitions: %s", exc)

    def _text_follower(self) -> TranscriptFollower | None:
        """Follow ``transcripts`` into the stage's text cues (None when text cues are off)."""
        add_text = getattr(self.stage, "add_text", None)
        if add_text is None or not self.settings.text.enabled:
            return None
        topic = self.settings.topics.name("transcripts")
        try:
            follower = TranscriptFollower(self.bus, topic, add_text)
        except BusError as exc:  # a cluster set up before the topic existed: run without text cues
            log.warning("no text cues from %s (%s); 'livetag topics create' adds the topic", topic, exc)
            return None
        follower.start()
        return follower

    def _report_assignment(self) -> None:
        if self.readiness is not None:
            owned = sorted(f"{t.topic}[{t.partition}]" for t in self._owned)
            self.readiness.set("partitions_assigned", bool(owned), ", ".join(owned) or "no partition assigned")


def stage_from_gallery_topic(
    bus: Bus,
    settings: Settings,
    detector: Detector,
    embedder: Embedder,
    clock: Clock | None = None,
    metrics: PipelineMetrics | None = None,
) -> tuple[InferenceStage, GalleryFollower]:
    """The inference stage (:func:`consumers.stage.builder.build_stage`) over the gallery topic, read
    to its end now (within ``infer.gallery_timeout_s``).

    Returns:
        ``(stage, follower)``; pass the follower to :class:`InferenceConsumer` to keep following.
    """
    the_clock = clock or SystemClock()
    dim = int(getattr(embedder, "dim", 0) or embedder.spec.embedding_dim)
    gallery = GalleryIndex(dim)
    follower = GalleryFollower(bus, settings.topics.name("gallery"), gallery)
    images = follower.load(settings.infer.gallery_timeout_s)
    log.info("gallery loaded from %s: %d images", follower.topic, images)
    hand_over = topic_exists(bus, settings.topics.name("segments"))
    if not hand_over:
        log.warning("no %s topic: open segments end on revoke and are lost on a crash; "
                    "'livetag topics create' adds it", settings.topics.name("segments"))
    stage = build_stage(detector, embedder, gallery, settings, the_clock, metrics=metrics,
                        segment_group=settings.infer.group_id if hand_over else None)
    text = stage.voter.text
    if text is not None:  # titles published later reach the text cues
        follower.on_titles = lambda titles: text.set_titles(titles, gallery.item_ids())
    return stage, follower
