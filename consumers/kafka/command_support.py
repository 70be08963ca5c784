"""Options and wiring shared by the Kafka commands (topics create, ingest, infer, gallery publish,
replay --to-kafka): settings from the environment plus command-line overrides, the bus, and a stop
event set by SIGTERM / SIGINT."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from typing import Any

from consumers.settings import Settings, SettingsError

log = logging.getLogger(__name__)


def add_kafka_arguments(parser: argparse.ArgumentParser) -> None:
    """``--bootstrap`` and ``--topic-prefix``; everything else comes from ``LIVETAG_KAFKA_*`` and
    ``LIVETAG_TOPICS_*`` environment variables (SASL/SSL included, see docs/kafka.md)."""
    group = parser.add_argument_group("kafka")
    group.add_argument("--bootstrap", default=None, metavar="HOST:PORT[,HOST:PORT]",
                       help="brokers (default: $LIVETAG_KAFKA_BOOTSTRAP_SERVERS or localhost:9092)")
    group.add_argument("--topic-prefix", default=None, metavar="PREFIX",
                       help="prefix of every topic name (default: $LIVETAG_TOPICS_PREFIX or none)")


def settings_from_args(args: argparse.Namespace, environ: Any = None) -> Settings:
    """Validated settings: defaults, then ``LIVETAG_*`` variables, then the command-line options."""
    settings = Settings.from_env(os.environ if environ is None else environ)
    overrides: dict[str, Any] = {}
    if getattr(args, "bootstrap", None):
        overrides["kafka__bootstrap_servers"] = tuple(s.strip() for s in args.bootstrap.split(",") if s.strip())
    if getattr(args, "topic_prefix", None) is not None:
        overrides["topics__prefix"] = args.topic_prefix
    try:
        return settings.with_overrides(**overrides) if overrides else settings
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"bad Kafka option: {exc}") from exc


def kafka_bus(settings: Settings) -> Any:
    """A :class:`~consumers.kafka.bus.KafkaBus` for the validated connection settings."""
    from consumers.kafka.bus import KafkaBus

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
