"""The ``transcripts`` topic: a stream's speech (and title, and on-screen text read elsewhere) as text.

Key = stream id; value = JSON ``{"text", "start", "end", "source"}`` (see
:mod:`consumers.text.transcripts`). Every inference consumer follows the whole topic (it is small:
text), so the text of a stream reaches whichever member owns the stream's frames; text of streams a
member does not own stays in its bounded, evicted text state and costs little. A malformed record is
logged with its reason and skipped; it never stops the follower.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from consumers.bus import Bus, Producer, Record
from consumers.bus.topic_follower import TopicFollower
from consumers.text.transcripts import TranscriptError, TranscriptSegment, parse_record

log = logging.getLogger(__name__)


class TranscriptFollower(TopicFollower):
    """Follows ``transcripts`` and hands every valid segment to ``sink``.

    Args:
        bus: The bus.
        topic: The transcripts topic name.
        sink: Receives each segment (``InferenceStage.add_text``).
    """

    def __init__(self, bus: Bus, topic: str, sink: Callable[[TranscriptSegment], None]) -> None:
        super().__init__(bus, topic)
        self._sink = sink
        self.applied = 0
        self.malformed = 0

    def apply(self, records: Iterable[Record]) -> int:
        done = 0
        for record in records:
            try:
                segment = parse_record(record.key, record.value)
            except TranscriptError as exc:
                self.malformed += 1
                log.warning("transcript record %s[%d]@%d skipped: %s", record.topic, record.partition, record.offset, exc)
                continue
            self._sink(segment)
            done += 1
        self.applied += done
        return done


def publish_segments(producer: Producer, topic: str, segments: Iterable[TranscriptSegment]) -> int:
    """Send segments to ``topic`` (key = stream id) and flush; returns how many."""
    count = 0
    for segment in segments:
        key, value = segment.to_record()
        producer.produce(topic, key, value)
        count += 1
    producer.flush()
    return count
