"""``livetag ingest``: an ingest worker (streams topic -> frames topic) until SIGTERM."""

from __future__ import annotations

import argparse

from consumers.kafka.command_support import add_kafka_arguments


def configure(parser: argparse.ArgumentParser) -> None:
    add_kafka_arguments(parser)
    parser.add_argument("--group", default="livetag-ingest", help="consumer group on the streams topic")
    parser.add_argument("--max-streams", type=int, default=64, help="streams this worker runs at once (default 64)")
    parser.add_argument("--open-timeout", type=float, default=10.0, help="seconds to open a source (default 10)")
    parser.add_argument("--stall-timeout", type=float, default=10.0,
                        help="seconds without a packet before a live source is reopened (default 10)")
    parser.add_argument("--max-retries", type=int, default=5, help="failed opens in a row before a stream goes to dlq")
    parser.add_argument("--allow-files", action="append", default=[], metavar="DIR",
                        help="let streams records name local files under DIR (repeatable; default: no local files)")
    parser.add_argument("--allow-loopback", action="store_true",
                        help="let streams records name loopback / link-local hosts (a local ingest point, tests)")


def run(args: argparse.Namespace) -> int:
    from consumers.kafka.command_support import (
        kafka_bus,
        quiet_kafka_logs,
        settings_from_args,
        stop_on_signals,
    )
    from consumers.kafka.ingest import IngestConfig, IngestWorker
    from consumers.kafka.topics import TopicNames
    from consumers.observability.health import INGEST_CONDITIONS
    from consumers.observability.service import ServiceObservability
    from consumers.settings import SettingsError
    from stream.source import SourceOptions
    from stream.url_policy import UrlPolicy

    quiet_kafka_logs()
    settings = settings_from_args(args)
    try:
        source = SourceOptions(open_timeout_s=args.open_timeout, stall_timeout_s=args.stall_timeout, max_retries=args.max_retries)
        urls = UrlPolicy(file_roots=tuple(args.allow_files), allow_loopback=args.allow_loopback)
        config = IngestConfig(group_id=args.group, max_streams=args.max_streams, source=source, urls=urls)
    except ValueError as exc:
        raise SettingsError(f"bad ingest option: {exc}") from exc
    obs = ServiceObservability.start(settings, INGEST_CONDITIONS)
    try:
        worker = IngestWorker(kafka_bus(settings), TopicNames.from_settings(settings.topics), config,
                              metrics=obs.metrics, readiness=obs.readiness)
        stop = stop_on_signals()
        print(f"ingest worker in group {args.group} on {settings.topics.name('streams')} -> {settings.topics.name('frames')}",
              flush=True)
        worker.run(stop)
    finally:
        obs.close()
    stats = worker.stats
    print(f"ingest stopped: {stats.started} streams started, {stats.frames} frames, {stats.dead_letters} dead letters")
    return 0
