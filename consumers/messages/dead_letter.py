"""Dead letters: a record the pipeline could not handle, parked on the ``dlq`` topic with the reason.

Nothing is lost: the dead-letter record keeps the original key and value bytes, and its headers are
the dead-letter metadata (``lt-dlq-*``, always first and always the same set) followed by the
original headers in order. ``DeadLetter.from_record`` restores all of it.

Except where it cannot fit: a dead letter must itself fit the ``dlq`` topic's record limit, or
publishing it would fail and stop the consumer. Original headers of more than
``MAX_ORIGINAL_HEADER_BYTES`` are dropped (the reason says how many), and a value that does not fit
``MAX_DEAD_LETTER_BYTES`` is cut; ``lt-dlq-value-null`` then reads ``truncated:<size>:<sha256>`` of
the whole original value.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from consumers.bus import Delivery, HeaderList, Producer, Record
from consumers.settings.redact import redact_text
from stream.clock import Clock
from stream.errors import LiveTagError

DLQ_TOPIC = "dlq"
#: Longest reason kept, in characters (the reason is one line).
MAX_REASON = 1000
#: Largest dead-letter record (key + value + headers), below the ``dlq`` topic's 8 MiB limit.
MAX_DEAD_LETTER_BYTES = 7 * 1024 * 1024
#: Original headers beyond this many bytes in all are dropped from a dead letter.
MAX_ORIGINAL_HEADER_BYTES = 256 * 1024
_TRUNCATED = "truncated:"
_META = (
    "lt-dlq-topic",
    "lt-dlq-partition",
    "lt-dlq-offset",
    "lt-dlq-reason",
    "lt-dlq-error-class",
    "lt-dlq-stage",
    "lt-dlq-failed-at",
    "lt-dlq-value-null",
    "lt-dlq-original-headers",
)


class DeadLetterError(LiveTagError):
    """A record on the dead-letter topic is not a well-formed dead letter."""


def one_line(text: str, limit: int = MAX_REASON) -> str:
    """``text`` with whitespace runs collapsed to single spaces, cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


@dataclass(frozen=True)
class DeadLetter:
    """The original record plus why, where and when it failed.

    Attributes:
        topic: Topic of the original record.
        partition: Its partition.
        offset: Its offset.
        key: Its key.
        value: Its value (None for a tombstone).
        headers: Its headers, in order.
        reason: One-line description of the failure (credentials masked).
        error_class: Class name of the exception.
        stage: Pipeline stage that failed (e.g. ``decode``, ``detect``, ``publish``).
        failed_at: Unix seconds of the failure.
        value_size: Size of the original value when ``value`` holds only its beginning, else None.
        value_sha256: SHA-256 (hex) of the whole original value when it was cut, else None.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: HeaderList = field(default_factory=list)
    reason: str = ""
    error_class: str = ""
    stage: str = ""
    failed_at: float = 0.0
    value_size: int | None = None
    value_sha256: str | None = None

    @classmethod
    def from_exception(cls, record: Record, error: BaseException, stage: str, failed_at: float) -> DeadLetter:
        """A dead letter for ``record`` that failed in ``stage`` with ``error``."""
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=list(record.headers),
            reason=redact_text(one_line(str(error))) or type(error).__name__,
            error_class=type(error).__name__,
            stage=stage,
            failed_at=float(failed_at),
        )

    def to_record(self) -> tuple[bytes | None, bytes, HeaderList]:
        """``(key, value, headers)`` for the dead-letter topic, cut to fit (see the module docstring)."""
        originals = list(self.headers)
        reason = self.reason
        original_bytes = sum(len(name) + len(raw or b"") for name, raw in originals)
        if original_bytes > MAX_ORIGINAL_HEADER_BYTES:
            reason = f"{reason} ({len(originals)} original headers of {original_bytes} bytes dropped)"
            originals = []
        value = b"" if self.value is None else self.value
        null = "1" if self.value is None else "0"
        room = MAX_DEAD_LETTER_BYTES - len(self.key or b"") - sum(len(n) + len(r or b"") for n, r in originals) - 4096
        if len(value) > room:
            null = f"{_TRUNCATED}{len(value)}:{hashlib.sha256(value).hexdigest()}"
            value = value[: max(0, room)]
        meta = [
            self.topic,
            str(self.partition),
            str(self.offset),
            one_line(reason),
            self.error_class[:200],
            self.stage,
            repr(float(self.failed_at)),
            null,
            str(len(originals)),
        ]
        headers: HeaderList = [(name, text.encode()) for name, text in zip(_META, meta, strict=True)]
        headers.extend(originals)
        return self.key, value, headers

    @classmethod
    def from_record(cls, record: Record) -> DeadLetter:
        """Decode a record of the dead-letter topic; raises DeadLetterError when it is not one."""
        head = dict(record.headers[: len(_META)])
        missing = [name for name in _META if name not in head]
        if missing:
            raise DeadLetterError(f"dead-letter record at offset {record.offset} lacks headers: {', '.join(missing)}")
        try:
            text = {name: head[name].decode() for name in _META}
            count = int(text["lt-dlq-original-headers"])
            originals = list(record.headers[len(_META) :])
            if count != len(originals):
                raise ValueError(f"{count} original headers announced, {len(originals)} present")
            null = text["lt-dlq-value-null"]
            size, digest = None, None
            if null.startswith(_TRUNCATED):
                raw_size, digest = null[len(_TRUNCATED) :].split(":")
                size = int(raw_size)
            return cls(
                topic=text["lt-dlq-topic"],
                partition=int(text["lt-dlq-partition"]),
                offset=int(text["lt-dlq-offset"]),
                key=record.key,
                value=None if null == "1" else (record.value or b""),
                value_size=size,
                value_sha256=digest,
                headers=originals,
                reason=text["lt-dlq-reason"],
                error_class=text["lt-dlq-error-class"],
                stage=text["lt-dlq-stage"],
                failed_at=float(text["lt-dlq-failed-at"]),
            )
        except (ValueError, UnicodeDecodeError) as exc:
            raise DeadLetterError(f"dead-letter record at offset {record.offset} is malformed: {exc}") from exc

    def original(self) -> Record:
        """The original record as it was consumed."""
        return Record(self.topic, self.key, self.value, list(self.headers), self.partition, self.offset)


def send_to_dlq(
    producer: Producer,
    record: Record,
    error: BaseException,
    stage: str,
    clock: Clock,
    topic: str = DLQ_TOPIC,
) -> Delivery | None:
    """Publish ``record`` with the failure to the dead-letter ``topic``; returns the delivery."""
    letter = DeadLetter.from_exception(record, error, stage, clock.now())
    key, value, headers = letter.to_record()
    return producer.produce(topic, key, value, headers)
