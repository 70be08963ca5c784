"""``livetag topics create``: create the LiveTag topics (partitions and configs from settings)."""

from __future__ import annotations

import argparse

from consumers.settings import Settings
from consumers.settings.options import add_setting_options


def configure(parser: argparse.ArgumentParser) -> None:
    add_setting_options(parser, "kafka", "topic-prefix", "topic-layout")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.bus.topics import ensure_topics, topic_specs
    from consumers.services.command_support import kafka_bus, quiet_kafka_logs

    quiet_kafka_logs(one_shot=True)
    specs = topic_specs(settings.topics)
    admin = kafka_bus(settings).admin()
    try:
        created = ensure_topics(admin, specs)
    finally:
        admin.close()
    for spec in specs:
        state = "created" if spec.name in created else "exists"
        policy = "compact" if spec.compacted else "delete"
        print(f"{spec.name:<32} {state:<8} partitions={spec.partitions} replication={spec.replication} cleanup={policy}")
    return 0
