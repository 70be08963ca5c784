"""``livetag eval tianchi``: accuracy, R@K, latency and box-pair precision on a Tianchi-layout set."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from consumers.settings import Settings
from consumers.settings.options import add_setting_options

#: Evaluation decodes four frames a second, as fast as the machine goes.
SETTINGS_DEFAULTS = {"batch__max_batch": 8, "replay__sampling": "fps:4"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True,
                        help="split folder holding image/, image_annotation/, video/, video_annotation/")
    parser.add_argument("--out", type=Path, default=Path("report.json"),
                        help="report file (default report.json); result.json is written beside it")
    parser.add_argument("--refine", action="store_true",
                        help="when many videos claim one item, move the weaker claims to their next candidate")
    add_setting_options(parser, "models", "batch", "pipeline", "replay", defaults=SETTINGS_DEFAULTS)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.stage.builder import quiet_library_logs

    quiet_library_logs()
    from training.evaluation.runner import run_tianchi_eval

    report, result = run_tianchi_eval(args.data, settings, refine=args.refine)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    result_path = args.out.parent / "result.json"
    result_path.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    recall = report["recall_at"]
    print(
        f"eval: {report['scored_videos']} videos, top-1 {report['top1_accuracy']}, R@1/5/10 "
        f"{recall['1']}/{recall['5']}/{recall['10']}, box pairs {report['box_pair_precision']}, "
        f"first correct {report['time_to_first_correct_s']['median']} s (median) -> {args.out}, {result_path}"
    )
    unread = report["run"]["videos_without_frames"]
    if unread:
        print(f"eval: {len(unread)} video(s) could not be read and have no answer: {', '.join(unread)} "
              "(reasons in the report's run.source_errors)")
    return 0
