"""``livetag gallery publish``: a gallery folder (from 'livetag gallery build') -> the gallery topic."""

from __future__ import annotations

import argparse
from pathlib import Path

from consumers.settings import Settings
from consumers.settings.options import add_setting_options


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("gallery", type=Path, metavar="GALLERY_DIR", help="folder written by 'livetag gallery build'")
    parser.add_argument("--catalog", default=None,
                        help="catalog id for entries whose metadata names none (default: leave them without)")
    parser.add_argument("--prune", action="store_true",
                        help="also remove (tombstone) images on the topic that the folder no longer has")
    add_setting_options(parser, "kafka", "topic-prefix")


def run(args: argparse.Namespace, settings: Settings) -> int:
    import dataclasses

    from consumers.services.command_support import kafka_bus, quiet_kafka_logs
    from consumers.services.gallery_follower import GalleryFollower, publish_gallery, read_gallery_folder

    quiet_kafka_logs(one_shot=True)
    entries = read_gallery_folder(args.gallery)
    if args.catalog:
        entries = [e if e.catalog else dataclasses.replace(e, catalog=args.catalog) for e in entries]
    bus = kafka_bus(settings)
    topic = settings.topics.name("gallery")
    remove: list[str] = []
    if args.prune:
        current = GalleryFollower(bus, topic)
        current.load()
        keep = {e.image_id for e in entries}
        remove = [i for i in (current.gallery.image_ids() if current.gallery is not None else []) if i not in keep]
        current.close()
    producer = bus.producer()
    try:
        added, removed = publish_gallery(producer, topic, entries, remove)
    finally:
        producer.close()
    print(f"gallery {args.gallery} -> {topic}: {added} images published, {removed} removed")
    return 0
