"""``livetag ingest``: an ingest worker (streams topic -> frames topic) until SIGTERM."""

from __future__ import annotations

import argparse

from consumers.settings import Settings
from consumers.settings.options import add_setting_options


def configure(parser: argparse.ArgumentParser) -> None:
    add_setting_options(parser, "kafka", "topic-prefix", "ingest")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.bus.topics import TopicNames
    from consumers.observability.health import INGEST_CONDITIONS
    from consumers.observability.service import ServiceObservability
    from consumers.services.command_support import kafka_bus, quiet_kafka_logs, stop_on_signals
    from consumers.services.ingest import IngestWorker

    quiet_kafka_logs()
    obs = ServiceObservability.start(settings, INGEST_CONDITIONS)
    try:
        worker = IngestWorker(kafka_bus(settings), TopicNames.from_settings(settings.topics), settings.ingest,
                              metrics=obs.metrics, readiness=obs.readiness)
        stop = stop_on_signals()
        print(f"ingest worker in group {settings.ingest.group_id} on {settings.topics.name('streams')} -> "
              f"{settings.topics.name('frames')}", flush=True)
        worker.run(stop)
    finally:
        obs.close()
    stats = worker.stats
    print(f"ingest stopped: {stats.started} streams started, {stats.frames} frames, {stats.dead_letters} dead letters")
    return 0
