"""``livetag replay``: recorded videos through the embedded pipeline; match events to a JSONL file."""

from __future__ import annotations

import argparse
from pathlib import Path

from consumers.settings import Settings
from consumers.settings.options import add_setting_options

SETTINGS_DEFAULTS = {"batch__max_batch": 8}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="video files or stream URLs")
    parser.add_argument("--gallery", type=Path, default=None,
                        help="gallery folder from 'livetag gallery build' (required unless --to-kafka)")
    parser.add_argument("--catalog", default=None, metavar="IDS",
                        help="comma-separated item ids the streams may match (default: the whole gallery)")
    parser.add_argument("--out", type=Path, default=None, help="JSONL file of match events (required unless --to-kafka)")
    parser.add_argument("--transcripts", type=Path, default=None, metavar="DIR",
                        help="speech transcripts: DIR/<stream>.txt (whole stream) or .jsonl ({text, start, end} a line)")
    add_setting_options(parser, "models", "batch", "pipeline", "replay", defaults=SETTINGS_DEFAULTS)
    from consumers.services.replay_to_kafka import add_to_kafka_arguments

    add_to_kafka_arguments(parser)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.stage.builder import quiet_library_logs

    quiet_library_logs()
    from consumers.services.embedded import write_jsonl
    from consumers.services.replay import ReplayInputError, replay, source_specs
    from consumers.stage.builder import build_stage
    from consumers.stage.gallery_builder import load_gallery
    from consumers.stage.model_loading import load_models
    from stream.clock import SystemClock

    if args.to_kafka:
        from consumers.services.replay_to_kafka import run_to_kafka

        return run_to_kafka(args, settings)
    if args.gallery is None or args.out is None:
        raise ReplayInputError("replay needs --gallery and --out (or --to-kafka to publish the frames to Kafka)")
    specs = source_specs(args.sources)
    items = None
    if args.catalog is not None:
        items = frozenset(i.strip() for i in args.catalog.split(",") if i.strip())
        if not items:
            raise ReplayInputError("--catalog is empty; give comma-separated item ids, e.g. --catalog i001,i002")
    gallery = load_gallery(args.gallery)
    if items is not None and not items & gallery.item_ids():
        raise ReplayInputError(f"none of the --catalog items is in the gallery {args.gallery}; check the item ids")
    detector, embedder = load_models(settings.models, settings.pipeline.detection_threshold, settings.pipeline.nms_iou)
    clock = SystemClock()
    stage = build_stage(detector, embedder, gallery, settings, clock, items=items)
    if args.transcripts is not None:
        from consumers.text.transcripts import read_transcripts

        known = {spec.stream_id for spec in specs}
        for stream_id, segments in read_transcripts(args.transcripts).items():
            for segment in segments if stream_id in known else ():
                stage.add_text(segment)
    write, close = write_jsonl(args.out)
    try:
        report = replay(stage, specs, settings, lambda event, _pts: write(event), clock=clock)
    finally:
        close()
        stage.close()
    print(f"replay: {report.frames_consumed} frames, {report.events} events -> {args.out}"
          + (f", {report.dead_letters} dead letters" if report.dead_letters else ""))
    if report.source_errors:
        stream_id, reason = next(iter(report.source_errors.items()))
        raise ReplayInputError(
            f"{len(report.source_errors)} of {len(specs)} sources failed part-way (events so far are in {args.out}); "
            f"{stream_id}: {reason}"
        )
    return 0
