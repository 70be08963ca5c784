"""The Kafka producer behind the bus ``Producer`` protocol (kafka-python).

Producers use ``acks=all`` with idempotence (kafka-python's default). ``flush`` raises when a record
sent since the previous flush was not acknowledged, so a runner that flushes before committing never
commits past a lost record.

Back-pressure: at most ``max_pending`` records may wait for their acknowledgement; ``produce`` then
blocks on the oldest one and raises :class:`BusError` if it is not acknowledged within
``max_block_ms`` (named policy ``block_then_fail``); nothing is dropped.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from consumers.bus import BusError, RecordMetadata

log = logging.getLogger(__name__)

PRODUCER_BACKPRESSURE_POLICY = "block_then_fail"
#: Largest record the producer sends (frames topic allows the same, see consumers.bus.topics).
MAX_RECORD_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_PENDING = 10_000


def connect(factory: Any, config: Mapping[str, Any], role: str) -> Any:
    """Build a kafka-python client; an unreachable or refusing broker becomes a one-line BusError.

    Args:
        factory: ``KafkaProducer``, ``KafkaConsumer`` or ``KafkaAdminClient``.
        config: Its keyword arguments (``bootstrap_servers`` names the broker in the message).
        role: What the client is for, e.g. ``"producer"``.
    """
    from kafka.errors import KafkaError

    failures = _ConnectionFailures()
    try:
        with failures.listening():
            return factory(**config)
    except KafkaError as exc:
        servers = config.get("bootstrap_servers", "?")
        servers = ",".join(servers) if isinstance(servers, list | tuple) else servers
        raise BusError(
            f"cannot connect the Kafka {role} to {servers}: {type(exc).__name__}: {exc} ({failures.hint(config)})"
        ) from exc


class _ConnectionFailures(logging.Handler):
    """Listens to kafka-python's connection log lines while a client connects, to tell a refused login
    or a failed TLS handshake from a broker that does not answer (kafka-python reports all three as
    a bootstrap timeout)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        # Flags, not a log: a client that retries for its whole bootstrap timeout says "socket
        # disconnected" dozens of times, and the one line that names the cause can come late.
        self.auth_failed = False
        self.tls_failed = False
        # The broker took the connection and then hung up. During a SASL login that is a refused
        # login: the broker sends the reason and closes at once, and kafka-python reads the close
        # before the reason on about half the attempts (a broker that is down refuses instead).
        self.closed_by_broker = False

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        self.auth_failed |= "SaslAuthenticationFailed" in line or "Authentication failed" in line
        self.tls_failed |= ("CERTIFICATE_VERIFY_FAILED" in line or "SSLError" in line
                            or ("SSL" in line and "handshake" in line.lower()))
        self.closed_by_broker |= "socket disconnected" in line

    @contextlib.contextmanager
    def listening(self) -> Iterator[None]:
        """Hear kafka-python's warnings meanwhile, without passing them on (the caller prints one line)."""
        logger = logging.getLogger("kafka")
        level, propagate = logger.level, logger.propagate
        logger.addHandler(self)
        logger.setLevel(logging.WARNING)
        logger.propagate = False
        try:
            yield
        finally:
            logger.removeHandler(self)
            logger.setLevel(level)
            logger.propagate = propagate

    def hint(self, config: Mapping[str, Any]) -> str:
        """What to check, from what was heard."""
        if self.auth_failed:
            return (f"authentication failed for user {config.get('sasl_plain_username')!r} with "
                    f"{config.get('sasl_mechanism')}: check LIVETAG_KAFKA_SASL_USERNAME / LIVETAG_KAFKA_SASL_PASSWORD")
        if self.tls_failed:
            return ("TLS handshake failed: the broker's certificate is not signed by LIVETAG_KAFKA_SSL_CAFILE "
                    f"({config.get('ssl_cafile')}) or does not name the host")
        if self.closed_by_broker and str(config.get("security_protocol", "")).startswith("SASL"):
            return (f"authentication failed, most likely: the broker closed the connection during the "
                    f"{config.get('sasl_mechanism')} login of user {config.get('sasl_plain_username')!r} "
                    "without its reason reaching the client; check LIVETAG_KAFKA_SASL_USERNAME / "
                    "LIVETAG_KAFKA_SASL_PASSWORD and the mechanisms the listener enables")
        return "is the broker running? check --bootstrap / LIVETAG_KAFKA_BOOTSTRAP_SERVERS"


class KafkaDelivery:
    """The broker's acknowledgement of one produced record."""

    def __init__(self, future: Any) -> None:
        self._future = future

    def get(self, timeout: float | None = None) -> RecordMetadata:
        """Block until acknowledged; raises BusError when the send failed."""
        from kafka.errors import KafkaError

        try:
            meta = self._future.get(timeout=timeout)
        except KafkaError as exc:
            raise BusError(f"record not delivered: {exc}") from exc
        return RecordMetadata(meta.topic, meta.partition, meta.offset)


class KafkaBusProducer:
    """A kafka-python producer behind the bus ``Producer`` protocol; safe to share between threads.

    ``flush`` raises :class:`BusError` when any record sent since the previous flush was not
    acknowledged, so a caller that flushes before committing never commits past a lost record.
    """

    def __init__(
        self,
        client_config: Mapping[str, Any],
        producer_config: Mapping[str, Any],
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        from kafka import KafkaProducer

        if max_pending < 1:
            raise BusError("max_pending must be >= 1")
        config: dict[str, Any] = {
            "acks": "all",
            "linger_ms": 5,
            "max_request_size": MAX_RECORD_BYTES,
            "max_block_ms": 30_000,
        }
        config.update(client_config)
        config.update(producer_config)
        self._producer = connect(KafkaProducer, config, "producer")
        self._max_pending = max_pending
        self._block_s = float(config["max_block_ms"]) / 1000.0
        self._pending: deque[Any] = deque()
        self._lock = threading.Lock()
        self._closed = False

    def _make_room(self) -> None:
        """Drop acknowledged futures; block on the oldest unacknowledged one while over the bound."""
        from kafka.errors import KafkaError

        kept: deque[Any] = deque(f for f in self._pending if not (f.is_done and f.succeeded()))
        self._pending = kept
        while len(self._pending) >= self._max_pending:
            oldest = self._pending[0]
            try:
                oldest.get(timeout=self._block_s)
            except KafkaError as exc:
                raise BusError(f"a record was not acknowledged within {self._block_s:.0f} s: {exc}") from exc
            self._pending.popleft()

    def produce(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]] = ()
    ) -> KafkaDelivery:
        """Send one record (the key picks the partition with murmur2, like the in-process bus)."""
        from kafka.errors import KafkaError

        if self._closed:
            raise BusError("produce on a closed producer")
        with self._lock:
            if len(self._pending) >= self._max_pending:
                self._make_room()
            try:
                future = self._producer.send(topic, key=key, value=value, headers=list(headers))
            except KafkaError as exc:
                raise BusError(f"cannot send to topic {topic!r}: {exc}") from exc
            self._pending.append(future)
        return KafkaDelivery(future)

    def flush(self, timeout: float | None = None) -> None:
        """Wait for every sent record's acknowledgement; raise BusError naming the first failure."""
        from kafka.errors import KafkaError

        with self._lock:  # records sent after this snapshot are checked by the next flush
            pending, self._pending = self._pending, deque()
        if not pending:
            return
        try:
            self._producer.flush(timeout=timeout)
        except KafkaError as exc:
            raise BusError(f"flush did not complete: {exc}") from exc
        failed = [f for f in pending if not f.is_done or f.failed()]
        if failed:
            first = failed[0]
            reason = first.exception if first.is_done else "not acknowledged in time"
            raise BusError(f"{len(failed)} record(s) not acknowledged by the broker: {reason}")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._producer.close(timeout=10)
