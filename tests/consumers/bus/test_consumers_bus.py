"""The in-process bus: partitioning, offsets, groups, rebalancing, retention, compaction."""

from __future__ import annotations

import threading
import time

import pytest
from kafka.partitioner.default import murmur2 as kafka_murmur2

from consumers.bus import (
    BusError,
    CommitFailedError,
    Record,
    TopicPartition,
    TopicSpec,
    murmur2,
    partition_for,
    range_assign,
)
from consumers.bus.in_process import InProcessBus
from stream.clock import FakeClock


def _bus(**kwargs: int) -> InProcessBus:
    return InProcessBus(FakeClock(), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", [b"", b"a", b"ab", b"abc", b"abcd", b"stream-000042", bytes(range(200))])
def test_murmur2_matches_the_kafka_client(key: bytes) -> None:
    assert murmur2(key) == kafka_murmur2(key) & 0xFFFFFFFF


def test_same_key_same_partition_and_offsets_increase() -> None:
    bus = _bus()
    bus.create_topics([TopicSpec("frames", partitions=4)])
    producer = bus.producer()
    metas = [producer.produce("frames", b"s1", f"v{i}".encode()).get() for i in range(5)]  # type: ignore[union-attr]
    assert {m.partition for m in metas} == {partition_for(b"s1", 4)}
    assert [m.offset for m in metas] == [0, 1, 2, 3, 4]
    consumer = bus.consumer(["frames"], "g")
    got = consumer.poll(0, 100)
    assert [r.value for r in got] == [f"v{i}".encode() for i in range(5)]
    assert got[0].timestamp_ms == 1_700_000_000_000
    assert got[0].topic_partition == TopicPartition("frames", metas[0].partition)


def test_headers_and_null_values_survive() -> None:
    bus = _bus()
    bus.producer().produce("t", None, None, [("a", b"1"), ("a", b"2"), ("b", b"")])
    (rec,) = bus.consumer(["t"], None).poll(0)
    assert rec.key is None and rec.value is None
    assert rec.headers == [("a", b"1"), ("a", b"2"), ("b", b"")]
    assert rec.header("a") == b"2" and rec.header("zz") is None


@pytest.mark.parametrize(
    ("members", "partitions", "expected"),
    [
        ({"m1": ["t"]}, {"t": 3}, {"m1": [0, 1, 2]}),
        ({"m1": ["t"], "m2": ["t"]}, {"t": 3}, {"m1": [0, 1], "m2": [2]}),
        ({"m1": ["t"], "m2": ["t"], "m3": ["t"], "m4": ["t"]}, {"t": 3}, {"m1": [0], "m2": [1], "m3": [2], "m4": []}),
        ({"m2": ["t"], "m1": ["t"]}, {"t": 4}, {"m1": [0, 1], "m2": [2, 3]}),
        ({"m1": ["missing"]}, {"t": 2}, {"m1": []}),
    ],
)
def test_range_assignment(members: dict, partitions: dict, expected: dict) -> None:
    got = range_assign(members, partitions)
    assert {m: [tp.partition for tp in tps] for m, tps in got.items()} == expected


def test_group_rebalances_when_members_join_and_leave() -> None:
    bus = _bus()
    bus.create_topics([TopicSpec("frames", partitions=4)])
    assigned: list[set[TopicPartition]] = []
    revoked: list[set[TopicPartition]] = []
    a = bus.consumer(["frames"], "g", on_assign=assigned.append, on_revoke=revoked.append)
    assert len(a.assignment()) == 4
    b = bus.consumer(["frames"], "g")
    a_parts, b_parts = a.assignment(), b.assignment()
    assert len(a_parts) == 2 and len(b_parts) == 2 and not a_parts & b_parts
    assert revoked and revoked[-1] == b_parts
    b.close()
    assert len(a.assignment()) == 4
    assert len(assigned) == 2


def test_committed_offsets_let_a_new_member_resume() -> None:
    bus = _bus()
    producer = bus.producer()
    for i in range(10):
        producer.produce("t", b"k", str(i).encode())
    first = bus.consumer(["t"], "g")
    assert len(first.poll(0, max_records=4)) == 4
    first.commit()
    first.poll(0, max_records=3)  # read but not committed: at least once means they come again
    first.close()
    second = bus.consumer(["t"], "g")
    values = [int(r.value or b"") for r in second.poll(0, 100)]
    assert values == list(range(4, 10))
    assert second.committed(TopicPartition("t", 0)) == 4
    second.commit({TopicPartition("t", 0): 7})
    assert second.committed(TopicPartition("t", 0)) == 7
    assert second.end_offsets([TopicPartition("t", 0)]) == {TopicPartition("t", 0): 10}
    assert second.position(TopicPartition("t", 0)) == 10


def test_commit_of_a_partition_lost_in_a_rebalance_fails() -> None:
    bus = _bus()
    bus.create_topics([TopicSpec("t", partitions=2)])
    a = bus.consumer(["t"], "g")
    a.poll(0)
    bus.consumer(["t"], "g")
    with pytest.raises(CommitFailedError, match="rebalanced"):
        a.commit()
    a.poll(0)
    a.commit()  # after polling it owns one partition and may commit it


def test_groups_are_independent_and_latest_reset_skips_history() -> None:
    bus = _bus()
    producer = bus.producer()
    producer.produce("t", b"k", b"old")
    early = bus.consumer(["t"], "g1")
    late = bus.consumer(["t"], "g2", auto_offset_reset="latest")
    assert late.poll(0) == []
    producer.produce("t", b"k", b"new")
    assert [r.value for r in early.poll(0)] == [b"old", b"new"]
    assert [r.value for r in late.poll(0)] == [b"new"]


def test_retention_truncates_oldest_and_moves_a_slow_consumer_forward() -> None:
    bus = _bus(max_records_per_partition=5)
    bus.create_topics([TopicSpec("t")])
    producer = bus.producer()
    consumer = bus.consumer(["t"], "g")
    assert consumer.poll(0) == []  # position 0 is taken here
    for i in range(12):
        producer.produce("t", b"k", str(i).encode())
    values = [int(r.value or b"") for r in consumer.poll(0, 100)]
    assert values == [7, 8, 9, 10, 11]
    assert bus.stats() == {"truncated:t": 7, "skipped:g": 7}


def test_compacted_topic_keeps_latest_per_key_and_tombstones() -> None:
    bus = _bus()
    bus.create_topics([TopicSpec("streams", partitions=1, compacted=True)])
    producer = bus.producer()
    producer.produce("streams", b"s1", b"url-1")
    producer.produce("streams", b"s2", b"url-2")
    producer.produce("streams", b"s1", b"url-1b")
    producer.produce("streams", b"s2", None)
    recs = bus.consumer(["streams"], None).poll(0)
    assert [(r.key, r.value, r.offset) for r in recs] == [(b"s1", b"url-1b", 2), (b"s2", None, 3)]


def test_blocking_poll_wakes_on_produce_and_times_out() -> None:
    bus = _bus()
    bus.create_topics([TopicSpec("t")])
    consumer = bus.consumer(["t"], "g")
    got: list[Record] = []
    thread = threading.Thread(target=lambda: got.extend(consumer.poll(timeout_s=30)))
    thread.start()
    time.sleep(0.05)
    bus.producer().produce("t", b"k", b"v")
    thread.join(timeout=30)
    assert not thread.is_alive() and [r.value for r in got] == [b"v"]
    assert consumer.poll(timeout_s=0.01) == []


def test_consumer_sees_a_topic_created_after_it_subscribed() -> None:
    bus = _bus()
    consumer = bus.consumer(["later"], "g")
    assert consumer.poll(0) == []
    bus.create_topics([TopicSpec("later", partitions=2)])
    bus.producer().produce("later", b"x", b"1")
    assert [r.value for r in consumer.poll(0)] == [b"1"]
    assert len(consumer.assignment()) == 2


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda b: b.create_topics([TopicSpec("t", partitions=3)]), "exists with 2 partitions"),
        (lambda b: b.consumer([], "g"), "at least one topic"),
        (lambda b: b.consumer(["t"], None).commit(), "cannot commit"),
        (lambda b: TopicSpec("x", partitions=0), "must be >= 1"),
        (lambda b: InProcessBus(auto_create_topics=False).producer().produce("nope", None, b""), "unknown topic"),
    ],
)
def test_bad_use_gives_a_clear_error(action, message: str) -> None:  # type: ignore[no-untyped-def]
    bus = _bus()
    bus.create_topics([TopicSpec("t", partitions=2)])
    with pytest.raises(BusError, match=message):
        action(bus)


def test_closed_clients_refuse_work() -> None:
    bus = _bus()
    consumer = bus.consumer(["t"], "g")
    consumer.close()
    consumer.close()
    with pytest.raises(BusError, match="closed"):
        consumer.poll(0)
    producer = bus.producer()
    producer.close()
    with pytest.raises(BusError, match="closed"):
        producer.produce("t", None, b"")


def test_threads_produce_and_a_group_consumes_each_record_once() -> None:
    bus = InProcessBus()
    bus.create_topics([TopicSpec("frames", partitions=4)])
    members = [bus.consumer(["frames"], "g") for _ in range(2)]
    assert all(len(m.assignment()) == 2 for m in members)
    total = 2 * 400
    seen: list[list[tuple[bytes | None, bytes | None]]] = [[], []]

    def produce(worker: int) -> None:
        producer = bus.producer()
        for i in range(400):
            producer.produce("frames", f"stream-{i % 13}".encode(), f"{worker}:{i}".encode())

    def consume(index: int) -> None:
        while sum(len(s) for s in seen) < total:
            for rec in members[index].poll(timeout_s=0.05, max_records=50):
                seen[index].append((rec.key, rec.value))
            members[index].commit()

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(2)]
    threads += [threading.Thread(target=consume, args=(c,)) for c in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    values = [v for s in seen for _, v in s]
    assert len(values) == total and len(set(values)) == total
    keys_a, keys_b = ({k for k, _ in s} for s in seen)
    assert not keys_a & keys_b  # a key lives on one partition, owned by one member
    for member in members:
        for tp in member.assignment():
            assert member.committed(tp) == member.end_offsets([tp])[tp]
