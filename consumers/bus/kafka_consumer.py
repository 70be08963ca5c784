"""``KafkaBusConsumer``: the consumer side of :class:`consumers.bus.kafka.KafkaBus`, through kafka-python.

Consumers never auto-commit, so a runner commits only what it processed and published. After a
rebalance a commit for a lost partition raises :class:`consumers.bus.CommitFailedError`; the records
are delivered again to the new owner. Rebalance callbacks run on the polling thread; a member stuck
rebalancing rejoins afresh.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from consumers.bus import (
    BusError,
    CommitFailedError,
    OffsetReset,
    RebalanceCallback,
    Record,
    TopicPartition,
)
from consumers.bus.kafka_producer import connect

log = logging.getLogger(__name__)

#: Poll timeout of a group member without partitions (see KafkaBusConsumer._rebalancing).
_REBALANCE_POLL_MS = 3_000
#: A member still rebalancing after this many seconds rejoins afresh (see KafkaBusConsumer._unstick).
_STUCK_REBALANCE_S = 10.0


def _to_bus(tp: Any) -> TopicPartition:
    return TopicPartition(tp.topic, tp.partition)


def _to_kafka(tp: TopicPartition) -> Any:
    from kafka import TopicPartition as KafkaTopicPartition

    return KafkaTopicPartition(tp.topic, tp.partition)


class _PendingCommit:
    """An asynchronous offset commit: ``done`` is set when the broker answered (``error`` if it refused)."""

    def __init__(self, future: Any) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None
        future.add_callback(self._ok)
        future.add_errback(self._failed)

    def _ok(self, _value: Any) -> None:
        self.done.set()

    def _failed(self, error: BaseException) -> None:
        self.error = error
        self.done.set()


def _commit_error(exc: BaseException) -> BusError:
    """The bus error for a kafka-python commit failure (CommitFailedError when the group moved on)."""
    name = type(exc).__name__
    if "CommitFailed" in name or "Rebalance" in name or "IllegalGeneration" in name or "UnknownMemberId" in name:
        return CommitFailedError(f"commit refused: the group rebalanced; poll again ({exc})")
    if getattr(exc, "retriable", False):
        return CommitFailedError(f"commit refused during a rebalance: {exc}")
    return BusError(f"commit failed: {exc}")


class KafkaBusConsumer:
    """A kafka-python consumer behind the bus ``Consumer`` protocol (auto-commit off).

    With a ``group_id`` it subscribes and takes part in the group's rebalancing. kafka-python reports
    revocations and assignments on its IO thread; they are queued there and ``on_revoke`` /
    ``on_assign`` run in the caller's thread, in order, before ``poll`` returns (so the callbacks may
    call ``seek``, ``end_offsets`` and the other blocking methods). Without a ``group_id`` it is
    assigned every partition of its topics and cannot commit.
    """

    def __init__(
        self,
        topics: Sequence[str],
        group_id: str | None,
        client_config: Mapping[str, Any],
        consumer_config: Mapping[str, Any],
        auto_offset_reset: OffsetReset,
        on_assign: RebalanceCallback | None,
        on_revoke: RebalanceCallback | None,
        async_commit: bool = True,
    ) -> None:
        from kafka import ConsumerRebalanceListener, KafkaConsumer

        if not topics:
            raise BusError("a consumer needs at least one topic")
        config: dict[str, Any] = {
            "group_id": group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": auto_offset_reset,
            "session_timeout_ms": 10_000,
            "heartbeat_interval_ms": 1_000,
            "max_poll_interval_ms": 300_000,
            "metadata_max_age_ms": 10_000,
            # A fetch long-polls the broker this long for partitions at their end; while it is in
            # flight no other fetch goes to that broker, so it bounds how long a drained buffer
            # waits for records of the other partitions (kafka-python's default is 500 ms).
            "fetch_max_wait_ms": 50,
        }
        config.update(client_config)
        config.update(consumer_config)
        self._group_id = group_id
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._rebalances: deque[tuple[str, set[TopicPartition]]] = deque()
        self._async_commit = async_commit
        self._pending_commit: _PendingCommit | None = None
        self._consumer = connect(KafkaConsumer, config, "consumer")
        self._closed = False
        self._rebalancing_since: float | None = None  # when this member's current rebalance began
        # Metadata first: a group member whose client does not know a topic's partitions yet would be
        # assigned none of them until its next metadata refresh.
        parts: list[Any] = []
        for topic in topics:
            found = self._consumer.partitions_for_topic(topic)
            if not found:
                self._consumer.close()
                raise BusError(f"unknown topic {topic!r}; create it first (livetag topics create)")
            parts.extend(_to_kafka(TopicPartition(topic, p)) for p in sorted(found))
        if group_id is None:
            self._consumer.assign(parts)
            return

        events = self._rebalances

        class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            # Runs on kafka-python's IO thread, where blocking client calls are refused: only record.
            def on_partitions_revoked(self, revoked: Any) -> None:
                if revoked:
                    events.append(("revoke", {_to_bus(tp) for tp in revoked}))

            def on_partitions_assigned(self, assigned: Any) -> None:
                if assigned:
                    events.append(("assign", {_to_bus(tp) for tp in assigned}))

        self._topics = list(topics)
        self._listener = _Listener()
        self._consumer.subscribe(self._topics, listener=self._listener)

    def _check_open(self) -> None:
        if self._closed:
            raise BusError("the consumer is closed")

    def poll(self, timeout_s: float = 1.0, max_records: int = 500) -> list[Record]:
        """Up to ``max_records`` records, partition by partition in offset order."""
        from kafka.errors import KafkaError

        self._check_open()
        if max_records < 1:
            raise BusError("max_records must be >= 1")
        timeout_ms = max(0, int(timeout_s * 1000))
        if self._group_id is not None and self._rebalancing():
            timeout_ms = max(timeout_ms, _REBALANCE_POLL_MS)
            self._unstick()
        else:
            self._rebalancing_since = None  # settled: the next rebalance is timed from its own start
        try:
            batches = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        except KafkaError as exc:
            raise BusError(f"poll failed: {exc}") from exc
        self._dispatch_rebalances()
        out: list[Record] = []
        for tp, records in batches.items():
            for r in records:
                out.append(
                    Record(
                        topic=tp.topic,
                        key=r.key,
                        value=r.value,
                        headers=[(name, bytes(raw) if raw is not None else b"") for name, raw in (r.headers or [])],
                        partition=tp.partition,
                        offset=r.offset,
                        timestamp_ms=int(r.timestamp),
                    )
                )
        return out

    def _rebalancing(self) -> bool:
        """True while this group member is not a stable member with partitions.

        kafka-python 3.0 gives up awaiting a JoinGroup/SyncGroup round when the poll timeout expires,
        and a round finished after that may never be applied: a member polling with short timeouts
        can stay without partitions (no fetches, every commit refused). So while the public
        membership snapshot (``group_metadata().state``) is not stable, or the member holds no
        partitions, polls wait ``_REBALANCE_POLL_MS``: long enough for a whole round inside one call.
        ``benchmarks/kafka_rebalance.py`` measures this guard against plain short polls
        (docs/kafka.md, "Client").
        """
        from kafka.structs import MemberState

        return self._consumer.group_metadata().state != MemberState.STABLE or not self._consumer.assignment()

    def _unstick(self) -> None:
        """Leave and subscribe again (public API) when ``group_metadata().state`` has been
        REBALANCING for ``_STUCK_REBALANCE_S``: a round kafka-python never applied then starts anew
        (a merely slow round costs one more round)."""
        from kafka.structs import MemberState

        if self._consumer.group_metadata().state != MemberState.REBALANCING:
            self._rebalancing_since = None
            return
        now = time.monotonic()
        if self._rebalancing_since is None:
            self._rebalancing_since = now
        elif now - self._rebalancing_since >= _STUCK_REBALANCE_S:
            log.warning("group %s: still rebalancing after %.0f s; leaving and joining again",
                        self._group_id, now - self._rebalancing_since)
            self._rebalancing_since = None
            self._consumer.unsubscribe()
            self._consumer.subscribe(self._topics, listener=self._listener)

    def _dispatch_rebalances(self) -> None:
        while self._rebalances:
            kind, tps = self._rebalances.popleft()
            callback = self._on_revoke if kind == "revoke" else self._on_assign
            if callback is not None:
                callback(tps)

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit the positions after what was polled, or explicit next offsets (always synchronous).

        With ``async_commit`` (the default) a positions commit is sent without waiting; its outcome is
        awaited by the next ``commit``, ``committed`` or ``close``, so the broker round trip overlaps
        the next batch. A failure surfaces there (CommitFailedError after a rebalance); either way
        only processed records are ever committed.
        """
        from kafka.errors import KafkaError
        from kafka.structs import OffsetAndMetadata

        self._check_open()
        if self._group_id is None:
            raise BusError("a consumer without a group_id cannot commit")
        self._await_commit()
        try:
            if offsets is None and self._async_commit:
                self._pending_commit = _PendingCommit(self._consumer.commit_async())
            elif offsets is None:
                self._consumer.commit()
            else:
                self._consumer.commit({_to_kafka(tp): OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()})
        except KafkaError as exc:
            raise _commit_error(exc) from exc

    def _await_commit(self, timeout_s: float = 30.0) -> None:
        pending, self._pending_commit = self._pending_commit, None
        if pending is None:
            return
        if not pending.done.wait(timeout_s):
            raise BusError(f"an offset commit was not answered within {timeout_s:.0f} s")
        if pending.error is not None:
            raise _commit_error(pending.error) from pending.error

    def assignment(self) -> set[TopicPartition]:
        self._check_open()
        self._dispatch_rebalances()
        return {_to_bus(tp) for tp in self._consumer.assignment()}

    def position(self, tp: TopicPartition) -> int:
        self._check_open()
        from kafka.errors import KafkaError

        try:
            return int(self._consumer.position(_to_kafka(tp)))
        except (AssertionError, ValueError, KafkaError) as exc:
            raise BusError(f"{tp.topic}[{tp.partition}] is not assigned to this consumer") from exc

    def committed(self, tp: TopicPartition) -> int | None:
        if self._group_id is None:
            return None
        self._await_commit()
        found = self._consumer.committed(_to_kafka(tp))
        return None if found is None else int(found)

    def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        from kafka.errors import KafkaError

        wanted = list(partitions)
        try:
            ends = self._consumer.end_offsets([_to_kafka(tp) for tp in wanted])
        except (KafkaError, ValueError) as exc:
            raise BusError(f"cannot read end offsets: {exc}") from exc
        return {_to_bus(tp): int(off) for tp, off in ends.items()}

    def seek_to_beginning(self, partitions: Iterable[TopicPartition]) -> None:
        """Read ``partitions`` (assigned to this consumer) again from their log start."""
        from kafka.errors import KafkaError

        try:
            self._consumer.seek_to_beginning(*[_to_kafka(tp) for tp in partitions])
        except (KafkaError, ValueError, AssertionError) as exc:
            raise BusError(f"cannot seek: {exc}") from exc

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Move the position of an assigned partition."""
        from kafka.errors import KafkaError

        try:
            self._consumer.seek(_to_kafka(tp), offset)
        except (KafkaError, ValueError, AssertionError) as exc:
            raise BusError(f"cannot seek {tp.topic}[{tp.partition}]: {exc}") from exc

    def close(self) -> None:
        """Wait for an offset commit in flight, leave the group (a prompt rebalance for the others)
        and close connections; nothing new is committed."""
        if not self._closed:
            try:
                self._await_commit()
            except BusError as exc:
                log.warning("last offset commit failed: %s; those records will be delivered again", exc)
            self._closed = True
            self._consumer.close(autocommit=False)
