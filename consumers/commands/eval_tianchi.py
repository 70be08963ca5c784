"""``livetag eval tianchi``: accuracy, R@K, latency and box-pair precision on a Tianchi-layout set."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from consumers.embedded import add_pipeline_arguments
from consumers.model_loading import add_model_arguments


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True,
                        help="split folder holding image/, image_annotation/, video/, video_annotation/")
    parser.add_argument("--out", type=Path, default=Path("report.json"),
                        help="report file (default report.json); result.json is written beside it")
    parser.add_argument("--refine", action="store_true",
                        help="when many videos claim one item, move the weaker claims to their next candidate")
    parser.add_argument("--sampling", default="fps:4",
                        help="'fps:N' (default fps:4: decode and take N frames a second) or 'keyframes' (demux only)")
    add_model_arguments(parser)
    add_pipeline_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from consumers.embedded import quiet_library_logs

    quiet_library_logs()
    from consumers.embedded import settings_from_args
    from consumers.eval_runner import run_tianchi_eval
    from consumers.model_loading import model_choice

    settings = settings_from_args(args)
    from stream.sampling import SamplingSpec

    sampling = SamplingSpec.parse(args.sampling)
    report, result = run_tianchi_eval(args.data, model_choice(args), settings, refine=args.refine, sampling=sampling)
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
    return 0
