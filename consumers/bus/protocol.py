"""The message bus: a small, Kafka-shaped interface, and the partitioning both buses share.

Services talk to a :class:`Bus` only. ``consumers.bus.in_process.InProcessBus`` is a real
implementation for the embedded pipeline and tests; ``consumers.bus.kafka.KafkaBus`` implements
the same protocols on a broker. Both place a key on the same partition (:func:`partition_for`).

Delivery is at least once: a consumer commits what it has processed; after a rebalance the new
owner of a partition resumes from the last committed offset, so uncommitted records are seen again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

from stream.errors import LiveTagError

HeaderList = list[tuple[str, bytes]]
OffsetReset = Literal["earliest", "latest"]


class BusError(LiveTagError):
    """A bus operation failed (unknown topic, closed client, bad argument)."""


class CommitFailedError(BusError):
    """A commit named a partition this consumer no longer owns (the group rebalanced)."""


class TopicPartition(NamedTuple):
    """One partition of one topic."""

    topic: str
    partition: int


@dataclass(frozen=True)
class Record:
    """One message as stored on the bus.

    Attributes:
        topic: Topic name.
        key: Partitioning key (e.g. the stream id), or None.
        value: Payload bytes; None is a tombstone on a compacted topic.
        headers: ``(name, bytes)`` pairs in order.
        partition: Partition index.
        offset: Position in the partition (-1 before it is stored).
        timestamp_ms: Unix milliseconds when the bus stored it.
    """

    topic: str
    key: bytes | None
    value: bytes | None
    headers: HeaderList = field(default_factory=list)
    partition: int = 0
    offset: int = -1
    timestamp_ms: int = 0

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    def header(self, name: str) -> bytes | None:
        """The last header called ``name``, or None."""
        found = None
        for hname, raw in self.headers:
            if hname == name:
                found = raw
        return found


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create.

    Attributes:
        name: Full topic name (prefix already applied).
        partitions: Number of partitions (>= 1).
        replication: Replication factor (ignored in process).
        compacted: Keep only the latest record per key (``cleanup.policy=compact``).
        configs: Extra broker topic configs.
    """

    name: str
    partitions: int = 1
    replication: int = 1
    compacted: bool = False
    configs: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            raise BusError("topic name is empty; give every topic a name")
        if self.partitions < 1 or self.replication < 1:
            raise BusError(f"topic {self.name!r}: partitions and replication must be >= 1")


@dataclass(frozen=True)
class RecordMetadata:
    """Where a produced record landed."""

    topic: str
    partition: int
    offset: int


class Delivery(Protocol):
    """The outcome of ``produce``: ``get`` blocks until the record is stored and returns where."""

    def get(self, timeout: float | None = None) -> RecordMetadata: ...


class Producer(Protocol):
    def produce(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]] = ()
    ) -> Delivery | None:
        """Send one record; the key picks the partition (murmur2, as Kafka's default partitioner)."""
        ...

    def flush(self, timeout: float | None = None) -> None:
        """Block until every produced record is stored."""
        ...

    def close(self) -> None: ...


class Consumer(Protocol):
    def poll(self, timeout_s: float = 1.0, max_records: int = 500) -> list[Record]:
        """Up to ``max_records`` records from the assigned partitions, waiting up to ``timeout_s``."""
        ...

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit the positions after what was polled, or explicit next-offsets to read."""
        ...

    def assignment(self) -> set[TopicPartition]: ...

    def position(self, tp: TopicPartition) -> int:
        """The offset of the next record this consumer will return from ``tp``."""
        ...

    def committed(self, tp: TopicPartition) -> int | None:
        """The group's committed offset for ``tp`` (next offset to read), or None."""
        ...

    def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The offset the next produced record will get, per partition (lag = end - position)."""
        ...

    def close(self) -> None: ...


RebalanceCallback = Callable[[set[TopicPartition]], None]


class Bus(Protocol):
    def producer(self) -> Producer: ...

    def consumer(
        self,
        topics: Sequence[str],
        group_id: str | None,
        *,
        auto_offset_reset: OffsetReset = "earliest",
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
    ) -> Consumer:
        """A consumer of ``topics``; ``group_id`` None reads every partition and cannot commit."""
        ...

    def create_topics(self, specs: Sequence[TopicSpec]) -> None:
        """Create topics; an existing topic with the same partition count is left as it is."""
        ...


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 hash (unsigned), so keys land on the partitions Kafka would pick."""
    mask, mult = 0xFFFFFFFF, 0x5BD1E995
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    for i in range(0, length - length % 4, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * mult) & mask
        k ^= k >> 24
        k = (k * mult) & mask
        h = ((h * mult) & mask) ^ k
    tail, rest = length - length % 4, length % 4
    if rest >= 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * mult) & mask
    h ^= h >> 13
    h = (h * mult) & mask
    h ^= h >> 15
    return h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition of a non-null key among ``partitions`` (stable across runs and with Kafka)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def range_assign(members: Mapping[str, Sequence[str]], partitions: Mapping[str, int]) -> dict[str, list[TopicPartition]]:
    """Kafka's range assignment: per topic, consecutive partition ranges to members sorted by id.

    Args:
        members: member id -> subscribed topics.
        partitions: topic -> partition count (topics that do not exist yet are skipped).
    """
    out: dict[str, list[TopicPartition]] = {m: [] for m in members}
    for topic in sorted({t for ts in members.values() for t in ts}):
        count = partitions.get(topic, 0)
        subs = sorted(m for m, ts in members.items() if topic in ts)
        if not subs or not count:
            continue
        share, extra = divmod(count, len(subs))
        start = 0
        for i, member in enumerate(subs):
            n = share + (1 if i < extra else 0)
            out[member].extend(TopicPartition(topic, p) for p in range(start, start + n))
            start += n
    return out
