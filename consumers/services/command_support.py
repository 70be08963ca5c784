"""Wiring shared by the Kafka commands (topics create, ingest, infer, gallery publish, replay
--to-kafka): the bus, a stop event set by SIGTERM / SIGINT, and kafka-python's log level."""

from __future__ import annotations

import logging
import signal
import threading
from typing import TYPE_CHECKING, Any

from consumers.settings import Settings

if TYPE_CHECKING:  # kafka-python loads when a Kafka command runs
    from consumers.bus.kafka import KafkaBus

log = logging.getLogger(__name__)


def kafka_bus(settings: Settings) -> KafkaBus:
    """A :class:`~consumers.bus.kafka.KafkaBus` for the validated connection settings."""
    from consumers.bus.kafka import KafkaBus

    return KafkaBus.from_settings(settings.kafka)


def stop_on_signals() -> threading.Event:
    """An event set by the first SIGTERM or SIGINT (a second SIGINT interrupts as usual)."""
    stop = threading.Event()

    def handle(signum: int, _frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        log.info("signal %d: finishing the current batch, committing and leaving", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


def quiet_kafka_logs(one_shot: bool = False) -> None:
    """kafka-python logs every reconnect at ERROR. Services keep its WARNING and above (a lost
    broker is worth seeing in their logs); a one-shot command (``one_shot``) keeps none of it and
    fails with its own one-line error instead."""
    logging.getLogger("kafka").setLevel(logging.CRITICAL + 1 if one_shot else logging.WARNING)
