"""Cross-stream micro-batching: a bounded queue that releases a batch when it is full or old enough.

A batch is ready when ``max_batch`` items wait, when the oldest item has waited ``max_wait_s`` on the
injected clock, or when the batcher is closed (the rest is drained). When the queue holds ``capacity``
items a new one is handled by the named drop policy:

- ``drop_oldest`` (default): the oldest waiting item is discarded and the new one queued (live video:
  fresh frames matter more than old ones);
- ``drop_newest``: the new item is refused;
- ``block``: ``submit`` waits for room (up to its timeout), so back-pressure reaches the producer.

Every drop is counted. The batcher is thread-safe: any number of producers, any number of consumers.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

from stream.clock import Clock, SystemClock
from stream.errors import LiveTagError

T = TypeVar("T")
DROP_POLICIES = ("drop_oldest", "drop_newest", "block")


class BatcherConfigError(LiveTagError):
    """The batcher was given impossible settings."""


@dataclass(frozen=True)
class BatcherStats:
    """Counters since creation.

    Attributes:
        submitted: Calls to ``submit``.
        queued: Items that entered the queue.
        batched: Items handed out in batches.
        batches: Batches handed out.
        dropped_oldest: Queued items discarded to make room (``drop_oldest``).
        dropped_newest: Items refused because the queue was full (``drop_newest``, or ``block`` timing out).
        rejected_closed: Items refused because the batcher was closed.
        waiting: Items in the queue now.
    """

    submitted: int
    queued: int
    batched: int
    batches: int
    dropped_oldest: int
    dropped_newest: int
    rejected_closed: int
    waiting: int

    @property
    def dropped(self) -> int:
        """All items lost to the drop policy."""
        return self.dropped_oldest + self.dropped_newest


class MicroBatcher(Generic[T]):
    """A bounded queue of items (e.g. decoded frames from many streams) handed out in batches.

    Args:
        max_batch: Largest batch returned.
        max_wait_s: Longest time the oldest item waits before a partial batch is released.
        capacity: Most items queued at once (>= max_batch).
        drop_policy: ``drop_oldest``, ``drop_newest`` or ``block``.
        clock: Time source for ``max_wait_s``; tests pass ``stream.clock.FakeClock``.
    """

    def __init__(
        self,
        max_batch: int,
        max_wait_s: float,
        capacity: int | None = None,
        drop_policy: str = "drop_oldest",
        clock: Clock | None = None,
    ) -> None:
        capacity = 4 * max_batch if capacity is None else capacity
        if max_batch < 1 or max_wait_s < 0 or capacity < max_batch:
            raise BatcherConfigError(f"need max_batch >= 1, max_wait_s >= 0, capacity >= max_batch; got {max_batch}, {max_wait_s}, {capacity}")
        if drop_policy not in DROP_POLICIES:
            raise BatcherConfigError(f"drop_policy must be one of {DROP_POLICIES}, got {drop_policy!r}")
        self.max_batch = max_batch
        self.max_wait_s = float(max_wait_s)
        self.capacity = capacity
        self.drop_policy = drop_policy
        self.clock: Clock = clock or SystemClock()
        self._queue: deque[tuple[float, T]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._counts = {"submitted": 0, "queued": 0, "batched": 0, "batches": 0, "dropped_oldest": 0, "dropped_newest": 0, "rejected_closed": 0}

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

    def stats(self) -> BatcherStats:
        """A consistent snapshot of the counters."""
        with self._cond:
            return BatcherStats(waiting=len(self._queue), **self._counts)

    def submit(self, item: T, timeout_s: float | None = None) -> bool:
        """Queue ``item``; thread-safe.

        Args:
            item: Anything; the batcher does not look inside.
            timeout_s: Only for ``block``: longest wait for room (None waits until room or close).

        Returns:
            True when the item was queued, False when it was refused (full queue under
            ``drop_newest``, a ``block`` timeout, or a closed batcher).
        """
        with self._cond:
            self._counts["submitted"] += 1
            if self._closed:
                self._counts["rejected_closed"] += 1
                return False
            if len(self._queue) >= self.capacity:
                if self.drop_policy == "drop_oldest":
                    self._queue.popleft()
                    self._counts["dropped_oldest"] += 1
                elif self.drop_policy == "drop_newest":
                    self._counts["dropped_newest"] += 1
                    return False
                else:
                    room = self._cond.wait_for(lambda: self._closed or len(self._queue) < self.capacity, timeout=timeout_s)
                    if self._closed:
                        self._counts["rejected_closed"] += 1
                        return False
                    if not room:
                        self._counts["dropped_newest"] += 1
                        return False
            self._queue.append((self.clock.monotonic(), item))
            self._counts["queued"] += 1
            self._cond.notify_all()
            return True

    def _ready(self) -> bool:
        if not self._queue:
            return False
        if self._closed or len(self._queue) >= self.max_batch:
            return True
        return self.clock.monotonic() - self._queue[0][0] >= self.max_wait_s

    def _take(self) -> list[T]:
        count = min(self.max_batch, len(self._queue))
        batch = [self._queue.popleft()[1] for _ in range(count)]
        self._counts["batched"] += count
        self._counts["batches"] += 1
        self._cond.notify_all()
        return batch

    def poll(self) -> list[T] | None:
        """Take a batch if one is ready now (never blocks); None otherwise."""
        with self._cond:
            return self._take() if self._ready() else None

    def next_batch(self, timeout_s: float | None = None) -> list[T]:
        """Block until a batch is ready and return it.

        Both the oldest item's ``max_wait_s`` and ``timeout_s`` are measured on the injected clock
        (with a fake clock, time passes only when the test advances it and calls :meth:`wake`).

        Args:
            timeout_s: Longest wait; None waits until a batch is ready or the batcher is closed.

        Returns:
            Up to ``max_batch`` items, oldest first; an empty list on timeout, or when the batcher
            is closed and drained.
        """
        with self._cond:
            deadline = None if timeout_s is None else self.clock.monotonic() + timeout_s
            while True:
                if self._ready():
                    return self._take()
                if self._closed:
                    return []
                now = self.clock.monotonic()
                if deadline is not None and now >= deadline:
                    return []
                waits = [] if deadline is None else [deadline - now]
                if self._queue:
                    waits.append(self._queue[0][0] + self.max_wait_s - now)
                self._cond.wait(timeout=min(waits) if waits else None)

    def wake(self) -> None:
        """Make blocked callers re-check the clock (after a fake clock was advanced)."""
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        """Refuse new items and wake every waiter; queued items can still be taken (drained)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def drain(self) -> list[list[T]]:
        """Close and return everything still queued, split into batches of at most ``max_batch``."""
        self.close()
        with self._cond:
            batches = []
            while self._queue:
                batches.append(self._take())
            return batches
