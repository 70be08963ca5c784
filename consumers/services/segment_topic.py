"""Reading the ``segments`` topic (consumers.messages.segment_state) when ``frames`` partitions are assigned."""

from __future__ import annotations

import logging
from collections.abc import Collection

from consumers.bus import Bus, BusError, Record, TopicPartition
from consumers.messages.segment_state import SegmentState, latest_states

log = logging.getLogger(__name__)


def topic_exists(bus: Bus, topic: str) -> bool:
    """Whether ``topic`` exists (a cluster set up by an older ``livetag topics create`` lacks new ones)."""
    try:
        bus.consumer([topic], None).close()
    except BusError:
        return False
    return True


def read_open_segments(
    bus: Bus, topic: str, partitions: Collection[int], group: str, max_polls: int = 100
) -> dict[str, tuple[SegmentState, int]]:
    """The open segments stored on the given partitions of ``topic``, read to their end now.

    Args:
        bus: The bus.
        topic: The ``segments`` topic.
        partitions: Partition numbers (those of the ``frames`` partitions just assigned).
        group: The reader's consumer group: only the segments its own members wrote are read.
        max_polls: Polls of up to 0.2 s before giving up on reaching the end (what was read is used).

    Returns:
        ``{stream_id: (state, partition)}``. Bad records are logged and skipped.
    """
    wanted = {TopicPartition(topic, p) for p in partitions}
    if not wanted:
        return {}
    consumer = bus.consumer([topic], None)
    records: list[Record] = []
    try:
        ends = consumer.end_offsets(wanted)
        for _ in range(max_polls):
            if all(consumer.position(tp) >= ends.get(tp, 0) for tp in wanted):
                break
            records += [r for r in consumer.poll(0.2, 1000) if r.partition in partitions]
        else:
            log.warning("%s: the end was not reached; %d records read", topic, len(records))
    finally:
        consumer.close()
    states, problems = latest_states(records, group)
    for problem in problems:
        log.warning("segment state skipped: %s", problem)
    partition_of = {(r.key or b"").decode("utf-8", "replace"): r.partition for r in records}
    return {stream: (state, partition_of[stream]) for stream, state in states.items()}
