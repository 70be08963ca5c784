"""``livetag topics create``: create the five LiveTag topics (partitions and configs from settings)."""

from __future__ import annotations

import argparse

from consumers.kafka.command_support import add_kafka_arguments


def configure(parser: argparse.ArgumentParser) -> None:
    add_kafka_arguments(parser)
    parser.add_argument("--partitions", type=int, default=None, help="partitions of every topic (default: settings)")
    parser.add_argument("--replication", type=int, default=None, help="replication factor (default: settings)")


def run(args: argparse.Namespace) -> int:
    from consumers.kafka.command_support import kafka_bus, quiet_kafka_logs, settings_from_args
    from consumers.kafka.topics import ensure_topics, topic_specs

    quiet_kafka_logs(one_shot=True)
    settings = settings_from_args(args)
    overrides = {f"topics__{name}": getattr(args, name) for name in ("partitions", "replication") if getattr(args, name) is not None}
    if overrides:
        settings = settings.with_overrides(**overrides)
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
