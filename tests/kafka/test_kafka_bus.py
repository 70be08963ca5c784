"""KafkaBus against the real broker: the same behaviour the in-process bus promises."""

from __future__ import annotations

import time

import pytest
from local_ports import free_port

from consumers.bus import BusError, Record, TopicPartition, TopicSpec, partition_for
from consumers.bus.kafka import KafkaBus, KafkaBusConsumer
from consumers.bus.topics import TopicNames

pytestmark = pytest.mark.kafka


def _drain(consumer: KafkaBusConsumer, want: int, limit_s: float = 20.0) -> list[Record]:
    out: list[Record] = []
    deadline = time.monotonic() + limit_s
    while len(out) < want and time.monotonic() < deadline:
        out.extend(consumer.poll(0.5, 100))
    return out


def test_round_trip_keeps_key_value_headers_and_kafka_partitioning(kafka_bus: KafkaBus, kafka_topics: TopicNames) -> None:
    producer = kafka_bus.producer()
    keys = [f"stream-{i}".encode() for i in range(12)]
    for i, key in enumerate(keys):
        producer.produce(kafka_topics.frames, key, f"v{i}".encode(), [("codec", b"h264"), ("sequence", str(i).encode())])
    producer.flush(10)
    producer.close()
    consumer = kafka_bus.consumer([kafka_topics.frames], "g-round-trip")
    got = _drain(consumer, len(keys))
    consumer.close()
    assert sorted(r.key for r in got if r.key) == sorted(keys)
    for r in got:
        assert r.key is not None
        assert r.partition == partition_for(r.key, 4), "murmur2 partitioning matches the in-process bus"
        i = int(r.key.decode().split("-")[1])
        assert r.value == f"v{i}".encode()
        assert r.header("codec") == b"h264" and r.header("sequence") == str(i).encode()
        assert r.topic == kafka_topics.frames and r.offset >= 0 and r.timestamp_ms > 0


def test_commit_then_new_member_resumes_after_committed_offset(kafka_bus: KafkaBus, kafka_topics: TopicNames) -> None:
    producer = kafka_bus.producer()
    for i in range(6):
        producer.produce(kafka_topics.dlq, b"k", str(i).encode())
    producer.flush(10)
    first = kafka_bus.consumer([kafka_topics.dlq], "g-resume")
    got = _drain(first, 6)
    assert [r.value for r in got] == [str(i).encode() for i in range(6)]
    tp = TopicPartition(kafka_topics.dlq, 0)
    first.commit({tp: 4})
    assert first.committed(tp) == 4
    first.close()
    second = kafka_bus.consumer([kafka_topics.dlq], "g-resume")
    rest = _drain(second, 2)
    assert [r.value for r in rest] == [b"4", b"5"]
    second.commit()
    assert second.committed(tp) == 6
    assert second.end_offsets([tp]) == {tp: 6}
    second.close()


def test_group_members_split_partitions_and_hear_rebalances(kafka_bus: KafkaBus, kafka_topics: TopicNames) -> None:
    events: dict[str, list[tuple[str, set[TopicPartition]]]] = {"a": [], "b": []}

    def listeners(name: str) -> dict:
        return {
            "on_assign": lambda tps: events[name].append(("assign", tps)),
            "on_revoke": lambda tps: events[name].append(("revoke", tps)),
        }

    a = kafka_bus.consumer([kafka_topics.frames], "g-split", **listeners("a"))
    deadline = time.monotonic() + 20
    while len(a.assignment()) < 4 and time.monotonic() < deadline:
        a.poll(0.2)
    assert len(a.assignment()) == 4
    b = kafka_bus.consumer([kafka_topics.frames], "g-split", **listeners("b"))
    while time.monotonic() < deadline and not (len(a.assignment()) == 2 and len(b.assignment()) == 2):
        a.poll(0.2)
        b.poll(0.2)
    assert a.assignment().isdisjoint(b.assignment())
    assert a.assignment() | b.assignment() == {TopicPartition(kafka_topics.frames, p) for p in range(4)}
    assert ("revoke", {TopicPartition(kafka_topics.frames, p) for p in range(4)}) in events["a"]
    assert events["b"] and events["b"][-1][0] == "assign"
    b.close()
    while len(a.assignment()) < 4 and time.monotonic() < deadline + 10:
        a.poll(0.2)
    assert len(a.assignment()) == 4, "the partitions of a member that left move to the other"
    a.close()


def test_groupless_consumer_reads_every_partition_and_cannot_commit(kafka_bus: KafkaBus, kafka_topics: TopicNames) -> None:
    producer = kafka_bus.producer()
    for i in range(8):
        producer.produce(kafka_topics.matches, f"s{i}".encode(), b"x")
    producer.flush(10)
    reader = kafka_bus.consumer([kafka_topics.matches], None)
    assert reader.assignment() == {TopicPartition(kafka_topics.matches, p) for p in range(4)}
    assert len(_drain(reader, 8)) == 8
    with pytest.raises(BusError, match="cannot commit"):
        reader.commit()
    reader.close()


def test_create_topics_is_idempotent_and_rejects_another_partition_count(kafka_bus: KafkaBus, topic_prefix: str) -> None:
    spec = TopicSpec(f"{topic_prefix}idem", partitions=3)
    kafka_bus.create_topics([spec])
    kafka_bus.create_topics([spec])
    with pytest.raises(BusError, match="exists with 3 partitions, not 5"):
        kafka_bus.create_topics([TopicSpec(f"{topic_prefix}idem", partitions=5)])


def test_unknown_topic_is_a_clear_error(kafka_bootstrap: str, topic_prefix: str) -> None:
    bus = KafkaBus(kafka_bootstrap, producer_config={"max_block_ms": 1500, "allow_auto_create_topics": False})
    producer = bus.producer()
    with pytest.raises(BusError, match="cannot send to topic"):
        producer.produce(f"{topic_prefix}missing", b"k", b"v")
    producer.close()
    with pytest.raises(BusError, match="unknown topic"):
        bus.consumer([f"{topic_prefix}missing"], None)
    with pytest.raises(BusError, match="bootstrap"):
        KafkaBus("")


def test_unreachable_broker_is_a_one_line_bus_error() -> None:
    from kafka import KafkaProducer

    from consumers.bus.kafka_producer import connect

    port = free_port()
    with pytest.raises(BusError, match=rf"cannot connect the Kafka producer to 127\.0\.0\.1:{port}: .*is the broker running"):
        connect(KafkaProducer, {"bootstrap_servers": [f"127.0.0.1:{port}"], "max_block_ms": 1500, "bootstrap_timeout_ms": 1500}, "producer")
