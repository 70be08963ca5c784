"""``livetag demo``: the embedded pipeline on the shipped sample stream, matches printed live."""

from __future__ import annotations

import argparse
from pathlib import Path

from consumers.settings import Settings
from consumers.settings.options import add_setting_options

#: The demo replays its sample like a live stream, decoding four frames a second.
SETTINGS_DEFAULTS = {"batch__max_batch": 8, "replay__speed": "realtime", "replay__sampling": "fps:4"}


def configure(parser: argparse.ArgumentParser) -> None:
    from consumers.services.demo import DEFAULT_SAMPLE

    parser.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE,
                        help="sample folder: image/<item_id>/<n>.jpg and video/*.mp4 (default: the shipped one)")
    parser.add_argument("--out", type=Path, default=None, help="also write the events to this JSONL file")
    add_setting_options(parser, "models", "batch", "pipeline", "replay", defaults=SETTINGS_DEFAULTS)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.stage.builder import quiet_library_logs

    quiet_library_logs()
    if settings.observability.log_level == "INFO":  # the match lines are the demo's output; source chatter only on request
        import logging

        logging.getLogger("stream").setLevel(logging.WARNING)
    from typing import Any

    from consumers.services.demo import find_sample, run_demo
    from consumers.services.embedded import write_jsonl
    from consumers.services.match_printer import printer

    sample = find_sample(args.sample)
    show = printer()
    write, close = write_jsonl(args.out) if args.out is not None else (None, None)

    def on_event(event: dict[str, Any], frame_pts: float | None) -> None:
        show(event, frame_pts)
        if write is not None:
            write(event)

    print(f"demo: {len(sample.videos)} stream(s) from {args.sample}, speed {settings.replay.speed}", flush=True)
    try:
        report, images = run_demo(sample, settings, on_event,
                                  announce=lambda text: print(f"demo: {text}; matches:", flush=True))
    finally:
        if close is not None:
            close()
    print(f"demo: {report.frames_consumed} frames, {report.events} events, gallery of {images} shop images")
    return 0
