"""The in-process bus: a real :class:`consumers.bus.Bus` in memory, shared by one process's threads.

Partitions, offsets, consumer groups with range assignment and rebalancing, committed offsets,
bounded retention and compacted topics, as on Kafka, for the embedded pipeline and tests.
"""

from __future__ import annotations

import itertools
import threading
import time
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from consumers.bus import (
    BusError,
    CommitFailedError,
    Delivery,
    OffsetReset,
    RebalanceCallback,
    Record,
    RecordMetadata,
    TopicPartition,
    TopicSpec,
    partition_for,
    range_assign,
)
from stream.clock import Clock, SystemClock

#: Retention of the in-process log: past ``max_records_per_partition`` the oldest records are
#: deleted; a consumer positioned before the new log start moves forward and the gap is counted.
RETENTION_POLICY = "truncate_oldest"


class _Completed:
    def __init__(self, meta: RecordMetadata) -> None:
        self._meta = meta

    def get(self, timeout: float | None = None) -> RecordMetadata:
        return self._meta


class _Partition:
    """One partition log: records ordered by offset (gaps where compaction removed records)."""

    def __init__(self) -> None:
        self.offsets: list[int] = []
        self.records: list[Record] = []
        self.next_offset = 0
        self.log_start = 0
        self.truncated = 0
        self.latest_by_key: dict[bytes, int] = {}

    def read(self, position: int, limit: int) -> list[Record]:
        i = bisect_left(self.offsets, position)
        return self.records[i : i + limit]


@dataclass
class _Group:
    members: dict[str, tuple[str, ...]] = field(default_factory=dict)
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    assignment: dict[str, list[TopicPartition]] = field(default_factory=dict)
    generation: int = 0
    skipped: int = 0


class InProcessBus:
    """A real bus in memory, shared by the threads of one process.

    Args:
        clock: Source of record timestamps.
        max_records_per_partition: Retention bound per partition (policy ``truncate_oldest``).
        default_partitions: Partitions of a topic created implicitly by its first produce.
        auto_create_topics: Create unknown topics on produce (as Kafka does by default).

    Blocking ``poll`` waits on a condition variable in real time; with ``timeout_s=0`` it never blocks.
    """

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        max_records_per_partition: int = 100_000,
        default_partitions: int = 1,
        auto_create_topics: bool = True,
    ) -> None:
        if max_records_per_partition < 1:
            raise BusError("max_records_per_partition must be >= 1")
        self._clock = clock or SystemClock()
        self._max_records = max_records_per_partition
        self._default_partitions = default_partitions
        self._auto_create = auto_create_topics
        self._cond = threading.Condition(threading.RLock())
        self._topics: dict[str, list[_Partition]] = {}
        self._compacted: set[str] = set()
        self._groups: dict[str, _Group] = {}
        self._member_ids = itertools.count()

    # -- administration ------------------------------------------------------------------------
    def create_topics(self, specs: Sequence[TopicSpec]) -> None:
        with self._cond:
            for spec in specs:
                existing = self._topics.get(spec.name)
                if existing is not None:
                    if len(existing) != spec.partitions:
                        raise BusError(
                            f"topic {spec.name!r} exists with {len(existing)} partitions, not {spec.partitions}"
                        )
                    continue
                self._topics[spec.name] = [_Partition() for _ in range(spec.partitions)]
                if spec.compacted:
                    self._compacted.add(spec.name)
                self._rebalance_groups_of(spec.name)
            self._cond.notify_all()

    def topics(self) -> dict[str, int]:
        """Topic name -> partition count."""
        with self._cond:
            return {name: len(parts) for name, parts in self._topics.items()}

    def stats(self) -> dict[str, int]:
        """Counters: ``truncated:<topic>`` records deleted by retention, ``skipped:<group>`` records
        a group lost because it was behind the log start."""
        with self._cond:
            out = {f"truncated:{t}": sum(p.truncated for p in parts) for t, parts in self._topics.items()}
            out.update({f"skipped:{g}": grp.skipped for g, grp in self._groups.items()})
            return out

    def producer(self) -> InProcessProducer:
        return InProcessProducer(self)

    def consumer(
        self,
        topics: Sequence[str],
        group_id: str | None,
        *,
        auto_offset_reset: OffsetReset = "earliest",
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
    ) -> InProcessConsumer:
        if not topics:
            raise BusError("a consumer needs at least one topic")
        if auto_offset_reset not in ("earliest", "latest"):
            raise BusError(f"auto_offset_reset must be 'earliest' or 'latest', not {auto_offset_reset!r}")
        member = f"member-{next(self._member_ids):06d}"
        consumer = InProcessConsumer(self, tuple(topics), group_id, member, auto_offset_reset, on_assign, on_revoke)
        if group_id is not None:
            with self._cond:
                group = self._groups.setdefault(group_id, _Group())
                group.members[member] = tuple(topics)
                self._rebalance(group)
                self._cond.notify_all()
        return consumer

    # -- internals used by the clients (callers hold no lock) ---------------------------------
    def _rebalance(self, group: _Group) -> None:
        group.generation += 1
        counts = {t: len(p) for t, p in self._topics.items()}
        group.assignment = range_assign(group.members, counts)

    def _rebalance_groups_of(self, topic: str) -> None:
        for group in self._groups.values():
            if any(topic in ts for ts in group.members.values()):
                self._rebalance(group)

    def _leave(self, group_id: str, member: str) -> None:
        with self._cond:
            group = self._groups[group_id]
            group.members.pop(member, None)
            self._rebalance(group)
            self._cond.notify_all()

    def _append(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> RecordMetadata:
        with self._cond:
            parts = self._topics.get(topic)
            if parts is None:
                if not self._auto_create:
                    raise BusError(f"unknown topic {topic!r}; create it first (livetag topics create)")
                self.create_topics([TopicSpec(topic, self._default_partitions)])
                parts = self._topics[topic]
            if key is None:
                index = min(range(len(parts)), key=lambda i: parts[i].next_offset)
            else:
                index = partition_for(key, len(parts))
            part = parts[index]
            offset = part.next_offset
            part.next_offset += 1
            record = Record(topic, key, value, list(headers), index, offset, int(self._clock.now() * 1000))
            if topic in self._compacted and key is not None:
                previous = part.latest_by_key.get(key)
                if previous is not None:
                    i = bisect_left(part.offsets, previous)
                    if i < len(part.offsets) and part.offsets[i] == previous:
                        del part.offsets[i]
                        del part.records[i]
                part.latest_by_key[key] = offset
            part.offsets.append(offset)
            part.records.append(record)
            excess = len(part.records) - self._max_records
            if excess > 0:
                for old in part.records[:excess]:
                    if old.key is not None and part.latest_by_key.get(old.key) == old.offset:
                        del part.latest_by_key[old.key]
                del part.offsets[:excess]
                del part.records[:excess]
                part.truncated += excess
                part.log_start = part.offsets[0]
            self._cond.notify_all()
            return RecordMetadata(topic, index, offset)


class InProcessProducer:
    """Producer of an :class:`InProcessBus`; records are stored when ``produce`` returns."""

    def __init__(self, bus: InProcessBus) -> None:
        self._bus = bus
        self._closed = False

    def produce(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]] = ()
    ) -> Delivery:
        if self._closed:
            raise BusError("produce on a closed producer")
        return _Completed(self._bus._append(topic, key, value, headers))

    def flush(self, timeout: float | None = None) -> None:
        return None

    def close(self) -> None:
        self._closed = True


class InProcessConsumer:
    """Consumer of an :class:`InProcessBus`; notices rebalances on ``poll``."""

    def __init__(
        self,
        bus: InProcessBus,
        topics: tuple[str, ...],
        group_id: str | None,
        member: str,
        reset: OffsetReset,
        on_assign: RebalanceCallback | None,
        on_revoke: RebalanceCallback | None,
    ) -> None:
        self._bus = bus
        self._topics = topics
        self._group_id = group_id
        self._member = member
        self._reset = reset
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._generation = -1
        self._positions: dict[TopicPartition, int] = {}
        self._rotation = 0
        self._closed = False

    def _sync(self) -> tuple[set[TopicPartition], set[TopicPartition]]:
        """Adopt the group's current assignment; returns (revoked, assigned). Caller holds the lock."""
        bus = self._bus
        if self._group_id is None:
            wanted = {TopicPartition(t, p) for t in self._topics for p in range(len(bus._topics.get(t, [])))}
            committed: dict[TopicPartition, int] = {}
        else:
            group = bus._groups[self._group_id]
            if group.generation == self._generation:
                return set(), set()
            self._generation = group.generation
            wanted = set(group.assignment.get(self._member, []))
            committed = group.committed
        current = set(self._positions)
        revoked, added = current - wanted, wanted - current
        for tp in revoked:
            del self._positions[tp]
        for tp in added:
            part = bus._topics[tp.topic][tp.partition]
            start = part.log_start if self._reset == "earliest" else part.next_offset
            self._positions[tp] = committed.get(tp, start)
        return revoked, added

    def _check_open(self) -> None:
        if self._closed:
            raise BusError("the consumer is closed")

    def poll(self, timeout_s: float = 1.0, max_records: int = 500) -> list[Record]:
        self._check_open()
        if max_records < 1:
            raise BusError("max_records must be >= 1")
        deadline = None
        out: list[Record] = []
        with self._bus._cond:
            while True:
                revoked, added = self._sync()
                if revoked or added:
                    self._notify(revoked, added)
                out = self._take(max_records)
                if out or timeout_s <= 0:
                    return out
                now = time.monotonic()  # waits are real time, even under a fake clock
                deadline = now + timeout_s if deadline is None else deadline
                if now >= deadline:
                    return out
                self._bus._cond.wait(deadline - now)

    def _notify(self, revoked: set[TopicPartition], added: set[TopicPartition]) -> None:
        if revoked and self._on_revoke is not None:
            self._on_revoke(revoked)
        if added and self._on_assign is not None:
            self._on_assign(added)

    def _take(self, max_records: int) -> list[Record]:
        out: list[Record] = []
        tps = sorted(self._positions)
        if not tps:
            return out
        self._rotation = (self._rotation + 1) % len(tps)
        for tp in tps[self._rotation :] + tps[: self._rotation]:
            part = self._bus._topics[tp.topic][tp.partition]
            position = self._positions[tp]
            if position < part.log_start:
                if self._group_id is not None:
                    self._bus._groups[self._group_id].skipped += part.log_start - position
                position = part.log_start
            batch = part.read(position, max_records - len(out))
            if batch:
                position = batch[-1].offset + 1
                out.extend(batch)
            self._positions[tp] = position
            if len(out) >= max_records:
                break
        return out

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        self._check_open()
        if self._group_id is None:
            raise BusError("a consumer without a group_id cannot commit")
        with self._bus._cond:
            group = self._bus._groups[self._group_id]
            owned = set(group.assignment.get(self._member, []))
            todo = dict(self._positions if offsets is None else offsets)
            lost = sorted(tp for tp in todo if tp not in owned)
            if lost:
                raise CommitFailedError(
                    f"commit of {lost[0].topic}[{lost[0].partition}] refused: the group rebalanced; poll again"
                )
            group.committed.update(todo)

    def assignment(self) -> set[TopicPartition]:
        self._check_open()
        with self._bus._cond:
            revoked, added = self._sync()
            if revoked or added:
                self._notify(revoked, added)
            return set(self._positions)

    def position(self, tp: TopicPartition) -> int:
        with self._bus._cond:
            if tp not in self._positions:
                raise BusError(f"{tp.topic}[{tp.partition}] is not assigned to this consumer")
            return max(self._positions[tp], self._bus._topics[tp.topic][tp.partition].log_start)

    def committed(self, tp: TopicPartition) -> int | None:
        if self._group_id is None:
            return None
        with self._bus._cond:
            return self._bus._groups[self._group_id].committed.get(tp)

    def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        with self._bus._cond:
            try:
                return {tp: self._bus._topics[tp.topic][tp.partition].next_offset for tp in partitions}
            except (KeyError, IndexError) as exc:
                raise BusError(f"unknown topic partition: {exc}") from exc

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._group_id is not None:
            self._bus._leave(self._group_id, self._member)
