"""MicroBatcher: table-driven scenarios on a fake clock, plus real threads for blocking behaviour."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from engines.batcher import BatcherConfigError, MicroBatcher
from stream.clock import FakeClock

# Each scenario: batcher settings, then steps. A step is ("submit", item, accepted), ("advance", seconds)
# or ("poll", expected batch or None). Then the expected counters.
SCENARIOS: list[dict[str, Any]] = [
    {
        "id": "full batch is released at once",
        "cfg": {"max_batch": 3, "max_wait_s": 1.0, "capacity": 6},
        "steps": [("submit", "a", True), ("submit", "b", True), ("poll", None), ("submit", "c", True), ("poll", ["a", "b", "c"]), ("poll", None)],
        "stats": {"submitted": 3, "queued": 3, "batched": 3, "batches": 1, "dropped_oldest": 0, "dropped_newest": 0, "waiting": 0},
    },
    {
        "id": "partial batch waits max_wait_s of the oldest item",
        "cfg": {"max_batch": 4, "max_wait_s": 0.5},
        "steps": [("submit", 1, True), ("advance", 0.25), ("submit", 2, True), ("poll", None), ("advance", 0.125), ("poll", None), ("advance", 0.125), ("poll", [1, 2])],
        "stats": {"submitted": 2, "queued": 2, "batched": 2, "batches": 1, "dropped_oldest": 0, "dropped_newest": 0, "waiting": 0},
    },
    {
        "id": "drop_oldest keeps the newest items",
        "cfg": {"max_batch": 2, "max_wait_s": 10.0, "capacity": 3, "drop_policy": "drop_oldest"},
        "steps": [("submit", i, True) for i in range(5)] + [("poll", [2, 3]), ("poll", None), ("advance", 10.0), ("poll", [4])],
        "stats": {"submitted": 5, "queued": 5, "batched": 3, "batches": 2, "dropped_oldest": 2, "dropped_newest": 0, "waiting": 0},
    },
    {
        "id": "drop_newest refuses items when full",
        "cfg": {"max_batch": 2, "max_wait_s": 10.0, "capacity": 3, "drop_policy": "drop_newest"},
        "steps": [("submit", 0, True), ("submit", 1, True), ("submit", 2, True), ("submit", 3, False), ("submit", 4, False), ("poll", [0, 1]), ("submit", 5, True), ("poll", [2, 5])],
        "stats": {"submitted": 6, "queued": 4, "batched": 4, "batches": 2, "dropped_oldest": 0, "dropped_newest": 2, "waiting": 0},
    },
    {
        "id": "block policy with zero timeout refuses and counts",
        "cfg": {"max_batch": 1, "max_wait_s": 0.0, "capacity": 1, "drop_policy": "block"},
        "steps": [("submit", "x", True), ("submit_timeout", "y", 0.0, False), ("poll", ["x"]), ("submit", "z", True)],
        "stats": {"submitted": 3, "queued": 2, "batched": 1, "batches": 1, "dropped_oldest": 0, "dropped_newest": 1, "waiting": 1},
    },
    {
        "id": "zero max_wait releases single items",
        "cfg": {"max_batch": 8, "max_wait_s": 0.0},
        "steps": [("poll", None), ("submit", "s1", True), ("poll", ["s1"]), ("poll", None)],
        "stats": {"submitted": 1, "queued": 1, "batched": 1, "batches": 1, "dropped_oldest": 0, "dropped_newest": 0, "waiting": 0},
    },
    {
        "id": "closing drains the rest and refuses new items",
        "cfg": {"max_batch": 2, "max_wait_s": 100.0},
        "steps": [("submit", "a", True), ("close",), ("submit", "b", False), ("poll", ["a"]), ("poll", None)],
        "stats": {"submitted": 2, "queued": 1, "batched": 1, "batches": 1, "rejected_closed": 1, "waiting": 0},
    },
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["id"] for s in SCENARIOS])
def test_batcher_scenarios(scenario: dict[str, Any]) -> None:
    clock = FakeClock()
    batcher: MicroBatcher[Any] = MicroBatcher(clock=clock, **scenario["cfg"])
    for step in scenario["steps"]:
        if step[0] == "submit":
            assert batcher.submit(step[1]) is step[2], step
        elif step[0] == "submit_timeout":
            assert batcher.submit(step[1], timeout_s=step[2]) is step[3], step
        elif step[0] == "advance":
            clock.advance(step[1])
        elif step[0] == "close":
            batcher.close()
        else:
            assert batcher.poll() == step[1], step
    stats = batcher.stats()
    for name, value in scenario["stats"].items():
        assert getattr(stats, name) == value, name


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(BatcherConfigError, match="drop_policy must be one of"):
        MicroBatcher(max_batch=2, max_wait_s=0.1, drop_policy="drop_random")
    with pytest.raises(BatcherConfigError, match="capacity >= max_batch"):
        MicroBatcher(max_batch=8, max_wait_s=0.1, capacity=4)
    with pytest.raises(BatcherConfigError):
        MicroBatcher(max_batch=0, max_wait_s=0.1)


def test_drain_splits_into_batches_and_closes() -> None:
    batcher: MicroBatcher[int] = MicroBatcher(max_batch=3, max_wait_s=5.0, capacity=10, clock=FakeClock())
    for i in range(7):
        batcher.submit(i)
    assert batcher.drain() == [[0, 1, 2], [3, 4, 5], [6]]
    assert batcher.closed and not batcher.submit(99) and batcher.next_batch() == []


def test_next_batch_returns_full_batches_and_times_out_on_fake_clock() -> None:
    clock = FakeClock()
    batcher: MicroBatcher[int] = MicroBatcher(max_batch=2, max_wait_s=1.0, clock=clock)
    batcher.submit(1)
    batcher.submit(2)
    assert batcher.next_batch() == [1, 2]
    assert batcher.next_batch(timeout_s=0.0) == []
    batcher.submit(3)
    clock.advance(1.0)
    assert batcher.next_batch() == [3]


def test_many_producers_one_consumer_lose_nothing_under_block() -> None:
    batcher: MicroBatcher[tuple[int, int]] = MicroBatcher(max_batch=8, max_wait_s=0.001, capacity=16, drop_policy="block")
    producers = 4
    per_producer = 300

    def produce(stream: int) -> None:
        for seq in range(per_producer):
            assert batcher.submit((stream, seq), timeout_s=30.0)

    threads = [threading.Thread(target=produce, args=(s,)) for s in range(producers)]
    for t in threads:
        t.start()
    received: list[tuple[int, int]] = []
    while len(received) < producers * per_producer:
        batch = batcher.next_batch(timeout_s=30.0)
        assert batch, "a batch must arrive while producers run"
        assert len(batch) <= 8
        received.extend(batch)
    for t in threads:
        t.join()
    stats = batcher.stats()
    assert stats.dropped == 0 and stats.batched == producers * per_producer
    for stream in range(producers):
        assert [seq for s, seq in received if s == stream] == list(range(per_producer)), "per-stream order is kept"


def test_close_wakes_a_blocked_consumer_and_producer() -> None:
    batcher: MicroBatcher[int] = MicroBatcher(max_batch=1, max_wait_s=0.0, capacity=1, drop_policy="block")
    batcher.submit(0)
    results: dict[str, Any] = {}
    producer = threading.Thread(target=lambda: results.setdefault("submit", batcher.submit(1)))
    producer.start()
    batcher.close()
    producer.join(timeout=30)
    assert results["submit"] is False and batcher.stats().rejected_closed == 1
    assert batcher.next_batch() == [0] and batcher.next_batch() == []
