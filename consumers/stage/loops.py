"""Runner loops around a record stage: poll, process, publish, flush, THEN commit.

``run_stage_loop`` does it all on one thread. ``run_decoupled_loop`` decodes on the consumer's
thread and runs the models on a second one, so decoding of batch n+1 overlaps inference of batch n;
it still commits a batch's offsets only after that batch's outputs were flushed. Both drain: after
``stop`` is set they return at the first empty poll. The Kafka inference consumer and the embedded
pipeline use the same loops.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from consumers.bus import Consumer, Producer, Record, TopicPartition
from consumers.settings import BatchSettings
from stream.errors import LiveTagError

if TYPE_CHECKING:
    from consumers.observability.metrics import PipelineMetrics


#: Policy of the queue between the decode and the model thread: a full queue holds the poller back.
DECODED_QUEUE_POLICY = "block"


class RecordStage(Protocol):
    """A stage turning consumed records into records to publish."""

    def process(self, records: Sequence[Record]) -> list[Record]: ...


#: With no records, the stage is still called this often (seconds) with an empty batch, so idle
#: streams are evicted and their open segments end (``match.ended``) although no frame arrives.
IDLE_TICK_S = 1.0


class PipelineError(LiveTagError):
    """A pipeline thread failed; the message names the stage and the reason."""


@dataclass
class LoopCounters:
    """Counters of one runner loop."""

    polls: int = 0
    consumed: int = 0
    published: int = 0
    commits: int = 0


def _poll(consumer: Consumer, batch: BatchSettings, counters: LoopCounters, metrics: PipelineMetrics | None) -> list[Record]:
    """One poll of up to ``max_batch`` records, waiting at most ``max_wait_ms``; counted."""
    records = consumer.poll(timeout_s=max(batch.max_wait_ms / 1000.0, 0.001), max_records=batch.max_batch)
    counters.polls += 1
    if metrics is not None:
        metrics.record_poll(len(records))
    return records


def run_stage_loop(
    consumer: Consumer,
    producer: Producer,
    stage: RecordStage,
    stop: threading.Event,
    batch: BatchSettings,
    on_committed: Callable[[list[Record]], None] | None = None,
    metrics: PipelineMetrics | None = None,
) -> LoopCounters:
    """Poll, process, publish, flush, commit, until ``stop`` is set and a poll comes back empty.

    Args:
        consumer: Bus consumer of the input topic(s), in a consumer group.
        producer: Bus producer for the outputs.
        stage: Turns a batch of records into output records (topic, key, value, headers).
        stop: Set to finish; the loop drains what is already on the bus first.
        batch: ``max_batch`` records per poll, ``max_wait_ms`` poll timeout.
        on_committed: Called with the records of each batch after their offsets were committed.
        metrics: Optional ``consumers.observability.metrics.PipelineMetrics``: polls, published
            batches (end-to-end latency, events, dead letters) and consumer lag after each commit.

    Returns:
        The loop's counters. A publish failure propagates without committing, so the batch is
        consumed again by the next owner of the partitions.
    """
    counters = LoopCounters()
    ticked = time.monotonic()
    while True:
        records = _poll(consumer, batch, counters, metrics)
        if not records:
            if stop.is_set():
                return counters
            if time.monotonic() - ticked >= IDLE_TICK_S:  # streams that stopped still end their segments
                ticked = time.monotonic()
                outputs = stage.process([])
                for out in outputs:
                    producer.produce(out.topic, out.key, out.value, out.headers)
                producer.flush()
                counters.published += len(outputs)
            continue
        counters.consumed += len(records)
        outputs = stage.process(records)
        for out in outputs:
            producer.produce(out.topic, out.key, out.value, out.headers)
        producer.flush()
        if metrics is not None:
            metrics.record_published(records, outputs)
        counters.published += len(outputs)
        consumer.commit()
        counters.commits += 1
        if metrics is not None:
            metrics.update_lag(consumer)
        if on_committed is not None:
            on_committed(records)


@runtime_checkable
class SplitStage(Protocol):
    """A stage whose decoding can run on another thread than its inference (a decoded frame keeps
    its input as ``.record``; ``.shed`` is set when inference skipped it as too old)."""

    def decode_records(self, records: Sequence[Record]) -> tuple[list[Any], list[Record]]: ...

    def infer_frames(self, frames: Sequence[Any]) -> list[Record]: ...


@dataclass
class _Decoded:
    records: list[Record]
    frames: list[Any]
    letters: list[Record]
    prepared: Future[Any] | None = None  # the models' run on ``frames`` (``batch.model_workers`` > 1)


def _next_offsets(records: Sequence[Record]) -> dict[TopicPartition, int]:
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
    return offsets


def run_decoupled_loop(
    consumer: Consumer,
    producer: Producer,
    stage: SplitStage,
    stop: threading.Event,
    batch: BatchSettings,
    on_committed: Callable[[list[Record]], None] | None = None,
    metrics: PipelineMetrics | None = None,
) -> LoopCounters:
    """:func:`run_stage_loop` with decoding and inference on two threads.

    The calling thread owns the consumer: it polls, decodes, and hands decoded batches to an
    inference thread through a queue of ``batch.decoded_queue_batches`` (drop policy ``block``: a full queue
    holds the poller back, nothing is dropped). The inference thread publishes and flushes; the
    calling thread then commits exactly the offsets of the published batch, in order. So decoding
    of batch n+1 overlaps inference of batch n, and offsets are still committed only after publish.

    With ``batch.model_workers`` N > 1 and a stage that has ``prepare_frames``, each decoded batch
    is also handed to a pool of N threads that run its models as soon as it is queued (the queue
    then holds at least N batches). The inference thread still takes the batches in order, waits for
    each one's models, and votes, publishes and commits as before; a batch whose models failed is
    run again by ``infer_frames``, which dead-letters the failing frames.

    ``metrics`` as in :func:`run_stage_loop`; the decoded-batch queue's depth is reported as
    ``queue_depth{queue="decoded_batches"}``.

    Returns:
        The loop's counters. An inference or publish failure is raised here, with nothing of the
        failed batch committed.
    """
    counters = LoopCounters()
    prepare = getattr(stage, "prepare_frames", None) if batch.model_workers > 1 else None
    pool = ThreadPoolExecutor(batch.model_workers, thread_name_prefix="livetag-models") if prepare else None
    work: queue.Queue[_Decoded | None] = queue.Queue(maxsize=max(batch.decoded_queue_batches,
                                                                 batch.model_workers if pool else 1))
    done: queue.Queue[tuple[list[Record], dict[TopicPartition, int]] | BaseException] = queue.Queue()

    def infer() -> None:
        while True:
            item = work.get()
            if item is None:
                return
            try:
                if item.prepared is not None:
                    with contextlib.suppress(Exception):  # met again, and dead-lettered, by infer_frames
                        item.prepared.result()
                outputs = item.letters + stage.infer_frames(item.frames)
                for out in outputs:
                    producer.produce(out.topic, out.key, out.value, out.headers)
                producer.flush()
                if metrics is not None:
                    # frames shed as stale have no latency to report: only analysed frames count
                    metrics.record_published(item.records, outputs, analysed=[f.record for f in item.frames if not f.shed])
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
                done.put(exc)
                return
            counters.published += len(outputs)
            done.put((item.records, _next_offsets(item.records)))

    def commit_ready(block: bool = False) -> None:
        while True:
            try:
                result = done.get(block=block, timeout=0.05 if block else None)
            except queue.Empty:
                return
            if isinstance(result, BaseException):
                raise result
            records, offsets = result
            if not offsets:  # an idle tick: nothing consumed, nothing to commit
                continue
            consumer.commit(offsets)
            counters.commits += 1
            if metrics is not None:
                metrics.update_lag(consumer)
                metrics.set_queue_depth("decoded_batches", work.qsize())
            if on_committed is not None:
                on_committed(records)

    worker = threading.Thread(target=infer, name="livetag-infer-models", daemon=True)
    worker.start()
    ticked = time.monotonic()
    try:
        while True:
            commit_ready()
            records = _poll(consumer, batch, counters, metrics)
            if not records:
                if stop.is_set():
                    break
                if time.monotonic() - ticked >= IDLE_TICK_S:  # idle eviction runs on the inference thread
                    ticked = time.monotonic()
                    with contextlib.suppress(queue.Full):
                        work.put_nowait(_Decoded([], [], []))
                continue
            counters.consumed += len(records)
            frames, letters = stage.decode_records(records)
            item = _Decoded(list(records), frames, letters,
                            pool.submit(prepare, frames) if pool is not None and prepare is not None and frames else None)
            while True:
                try:
                    work.put(item, timeout=0.05)
                    break
                except queue.Full:
                    commit_ready()
                    if not worker.is_alive():
                        commit_ready(block=True)
                        raise PipelineError("the inference thread stopped") from None
    finally:
        while worker.is_alive():
            try:
                work.put(None, timeout=0.05)
                break
            except queue.Full:
                if not worker.is_alive():
                    break
        worker.join()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    while not done.empty():
        commit_ready()
    return counters


def run_consumer_loop(
    consumer: Consumer,
    producer: Producer,
    stage: RecordStage,
    stop: threading.Event,
    batch: BatchSettings,
    on_committed: Callable[[list[Record]], None] | None = None,
    metrics: PipelineMetrics | None = None,
    decoupled: bool = True,
) -> LoopCounters:
    """The one consumer loop of every service and command: :func:`run_decoupled_loop` for a stage
    that splits decoding from inference (a :class:`SplitStage`, unless ``decoupled`` is False),
    :func:`run_stage_loop` otherwise. Arguments as for those two."""
    if decoupled and isinstance(stage, SplitStage):
        return run_decoupled_loop(consumer, producer, stage, stop, batch, on_committed, metrics=metrics)
    return run_stage_loop(consumer, producer, stage, stop, batch, on_committed, metrics=metrics)
