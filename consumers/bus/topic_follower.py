"""A reader that follows one whole topic (every partition, no group) in a background thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from consumers.bus import Bus, Record
from stream.errors import LiveTagError

log = logging.getLogger(__name__)


class TopicFollower:
    """Reads ``topic`` from its start and hands the records to :meth:`apply` (subclasses define it).

    Args:
        bus: The bus.
        topic: The topic to follow.
    """

    def __init__(self, bus: Bus, topic: str) -> None:
        self.topic = topic
        self._consumer = bus.consumer([topic], None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def apply(self, records: Iterable[Record]) -> int:
        """Apply records in order; returns how many took effect."""
        raise NotImplementedError

    def poll_once(self, timeout_s: float = 0.5) -> int:
        """Apply whatever arrived within ``timeout_s``."""
        return self.apply(self._consumer.poll(timeout_s, 1000))

    def start(self) -> None:
        """Follow the topic in a daemon thread until ``close``.

        The thread polls without waiting and sleeps between polls: kafka-python serves every client of
        the process from one network loop, and a blocking poll here would hold up the frames consumer.
        """

        def follow() -> None:
            while not self._stop.is_set():
                try:
                    if not self.poll_once(0.0):
                        self._stop.wait(0.5)
                except LiveTagError as exc:
                    log.error("following %s failed: %s; retrying", self.topic, exc)
                    self._stop.wait(1.0)

        self._thread = threading.Thread(target=follow, name=f"{self.topic}-follower", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._consumer.close()
