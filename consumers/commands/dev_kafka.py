"""``livetag dev kafka``: a local single-node KRaft broker for development (Ctrl-C stops it)."""

from __future__ import annotations

import argparse
from pathlib import Path

from consumers.settings import Settings
from consumers.settings.options import add_setting_options


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="folder for config, data and broker.log (default: a fresh temporary folder)")
    parser.add_argument("--heap-mb", type=int, default=512, help="JVM heap in MiB (default 512)")
    parser.add_argument("--create-topics", action="store_true", help="also create the LiveTag topics")
    parser.add_argument("--keep", action="store_true",
                        help="restart on the data already in --work-dir (default: start empty)")
    parser.add_argument("--fetch-only", action="store_true", help="fetch and verify the jars, then exit")
    add_setting_options(parser, "topic-prefix", "topic-layout")


def run(args: argparse.Namespace, settings: Settings) -> int:
    import tempfile

    from consumers.bus.kafka_broker import KafkaBroker, ensure_jars, kafka_home
    from consumers.services.command_support import quiet_kafka_logs, stop_on_signals

    quiet_kafka_logs()
    libs = ensure_jars(kafka_home())
    if args.fetch_only:
        print(f"Kafka jars ready in {libs}")
        return 0
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="livetag-kafka-"))
    broker = KafkaBroker(work, libs, heap_mb=args.heap_mb, keep=args.keep)
    stop = stop_on_signals()
    broker.start()
    try:
        if args.create_topics:
            from consumers.bus.kafka import KafkaBus
            from consumers.bus.topics import topic_specs

            KafkaBus(broker.bootstrap).create_topics(topic_specs(settings.topics))
        print(f"Kafka broker ready: bootstrap {broker.bootstrap}  (log: {broker.log_file}; Ctrl-C stops it)")
        print(f"export LIVETAG_KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap}", flush=True)
        stop.wait()
    finally:
        broker.stop()
    print("Kafka broker stopped")
    return 0
