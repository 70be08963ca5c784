"""The bus: the ``Bus`` / ``Producer`` / ``Consumer`` protocol (:mod:`consumers.bus.protocol`,
re-exported here) and its two implementations, in-process (:mod:`consumers.bus.in_process`) and Kafka
(:mod:`consumers.bus.kafka`, :mod:`consumers.bus.kafka_producer`); topic creation and names
(:mod:`consumers.bus.topics`), a whole-topic follower, and a local KRaft broker for development."""

from consumers.bus.protocol import (
    Bus,
    BusError,
    CommitFailedError,
    Consumer,
    Delivery,
    HeaderList,
    OffsetReset,
    Producer,
    RebalanceCallback,
    Record,
    RecordMetadata,
    TopicPartition,
    TopicSpec,
    murmur2,
    partition_for,
    range_assign,
)

__all__ = [
    "Bus",
    "BusError",
    "CommitFailedError",
    "Consumer",
    "Delivery",
    "HeaderList",
    "OffsetReset",
    "Producer",
    "RebalanceCallback",
    "Record",
    "RecordMetadata",
    "TopicPartition",
    "TopicSpec",
    "murmur2",
    "partition_for",
    "range_assign",
]
