"""``livetag demo``: the embedded pipeline on the shipped sample stream, matches printed live."""

from __future__ import annotations

import argparse
from pathlib import Path

from consumers.embedded import add_pipeline_arguments
from consumers.model_loading import add_model_arguments


def configure(parser: argparse.ArgumentParser) -> None:
    from consumers.demo import DEFAULT_SAMPLE

    parser.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE,
                        help="sample folder: image/<item_id>/<n>.jpg and video/*.mp4 (default: the shipped one)")
    parser.add_argument("--speed", choices=("realtime", "max"), default="realtime",
                        help="replay at the stream's own pace (default) or as fast as possible")
    parser.add_argument("--sampling", default="fps:4",
                        help="'fps:N' (default fps:4: decode and take N frames a second) or 'keyframes' (demux only)")
    parser.add_argument("--out", type=Path, default=None, help="also write the events to this JSONL file")
    add_model_arguments(parser)
    add_pipeline_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from consumers.embedded import quiet_library_logs

    quiet_library_logs()
    if args.log_level == "INFO":  # the match lines are the demo's output; source chatter only on request
        import logging

        logging.getLogger("stream").setLevel(logging.WARNING)
    from typing import Any

    from consumers.demo import find_sample, run_demo
    from consumers.embedded import settings_from_args
    from consumers.match_printer import printer
    from consumers.model_loading import model_choice
    from consumers.pipeline import write_jsonl
    from consumers.replay import ReplayOptions
    from stream.sampling import SamplingSpec

    settings = settings_from_args(args)
    sampling = SamplingSpec.parse(args.sampling)
    sample = find_sample(args.sample)
    show = printer()
    write, close = write_jsonl(args.out) if args.out is not None else (None, None)

    def on_event(event: dict[str, Any], frame_pts: float | None) -> None:
        show(event, frame_pts)
        if write is not None:
            write(event)

    print(f"demo: {len(sample.videos)} stream(s) from {args.sample}, speed {args.speed}", flush=True)
    try:
        report, images = run_demo(sample, model_choice(args), settings, ReplayOptions(args.speed, sampling), on_event,
                                  announce=lambda text: print(f"demo: {text}; matches:", flush=True))
    finally:
        if close is not None:
            close()
    print(f"demo: {report.frames_consumed} frames, {report.events} events, gallery of {images} shop images")
    return 0
