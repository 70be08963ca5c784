"""Two runs of ``real_accuracy.py`` compared stream by stream: which videos a change got right or lost,
and whether that is more than the noise of a 25-stream set.

Both runs answer the same videos, so the fair test is a paired one: only the videos whose answer
changed from wrong to right (``gained``) or right to wrong (``lost``) say anything. Under "the change
makes no difference" each of those is a coin toss, so the exact two-sided sign test (McNemar's exact
test) gives the chance of a split at least as lopsided as the one seen. With 25 streams, 2 gained and 0
lost has p = 0.5; it takes 6 gained and none lost to reach p < 0.05.

The same test on the true item's rank in each video's ranking (``rank``; beyond the ranking counts
as last) is more sensitive: a change that lifts the sold item from sixth to second in many streams
shows there before it shows in top-1.

    python benchmarks/real_accuracy.py --data DIR --json before.json
    python benchmarks/real_accuracy.py --data DIR --detector NEW --json after.json
    python benchmarks/compare_real.py before.json after.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

#: The end-to-end rows of ``real_accuracy.py`` (JSON key, label).
ROWS = (("pipeline_no_text", "no text"), ("pipeline", "with text"))


def sign_test_p(gained: int, lost: int) -> float:
    """Exact two-sided sign test: the chance, under a fair coin, of a split of ``gained + lost`` changed
    answers at least as uneven as this one (1.0 when nothing changed)."""
    if gained < 0 or lost < 0:
        raise ValueError(f"counts must be >= 0, got {gained} and {lost}")
    n = gained + lost
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(gained, lost) + 1)) / 2**n
    return min(1.0, 2.0 * tail)


def paired_change(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Per-video answers of one end-to-end row in two runs, compared.

    Args:
        before: The row (``pipeline`` or ``pipeline_no_text``) of the first run, with ``answers``.
        after: The same row of the second run.

    Returns:
        ``before`` and ``after`` (correct counts), ``videos`` (answered in both), ``gained`` and
        ``lost`` (sorted video ids) and ``p`` (the sign test); ``rank_up`` and ``rank_down`` (videos
        whose true item ranks higher / lower) and ``rank_p`` (the sign test on them).

    Raises:
        ValueError: A run has no per-video answers (written before they were recorded).
    """
    if "answers" not in before or "answers" not in after:
        raise ValueError("a run has no per-video answers: rerun it with this version of real_accuracy.py")
    first, second = before["answers"], after["answers"]
    videos = sorted(set(first) & set(second))
    gained = [v for v in videos if second[v]["correct"] and not first[v]["correct"]]
    lost = [v for v in videos if first[v]["correct"] and not second[v]["correct"]]
    up = [v for v in videos if _rank(second[v]) < _rank(first[v])]
    down = [v for v in videos if _rank(second[v]) > _rank(first[v])]
    return {"videos": len(videos), "before": sum(bool(first[v]["correct"]) for v in videos),
            "after": sum(bool(second[v]["correct"]) for v in videos), "gained": gained, "lost": lost,
            "p": sign_test_p(len(gained), len(lost)),
            "rank_up": up, "rank_down": down, "rank_p": sign_test_p(len(up), len(down))}


def _rank(answer: dict[str, Any]) -> float:
    """The true item's place in the video's ranking; not ranked (or not recorded): last."""
    rank = answer.get("rank")
    return float(rank) if isinstance(rank, int) and rank > 0 else math.inf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="real_accuracy.py --json of the first run")
    parser.add_argument("after", type=Path, help="real_accuracy.py --json of the second run")
    args = parser.parse_args(argv)
    runs = [json.loads(path.read_text(encoding="utf-8")) for path in (args.before, args.after)]
    shown = 0
    for key, label in ROWS:
        if key not in runs[0] or key not in runs[1]:
            continue
        try:
            change = paired_change(runs[0][key], runs[1][key])
        except ValueError as exc:
            print(f"{label}: {exc}", file=sys.stderr)
            return 2
        verdict = "unlikely from noise alone" if change["p"] < 0.05 else "within the noise of this set"
        print(f"{label}: {change['before']}/{change['videos']} -> {change['after']}/{change['videos']}; "
              f"gained {len(change['gained'])} {change['gained']}, lost {len(change['lost'])} {change['lost']}; "
              f"sign test p = {change['p']:.3f} ({verdict}); true item ranked higher in "
              f"{len(change['rank_up'])}, lower in {len(change['rank_down'])}, sign test p = {change['rank_p']:.3f}")
        shown += 1
    if not shown:
        print("neither file has an end-to-end row (both runs used --skip-pipeline?)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
