"""The pipeline-vs-raw ratio: the median of each round's own ratio, and the row the script appends."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmark_scripts import load_benchmark


def test_paired_ratio_divides_out_a_slow_round() -> None:
    bench = load_benchmark("pipeline_vs_engine")
    # The machine was busy from the middle of round 2 on: the medians of each side pair a fast raw run
    # with a slow pipeline run (18 / 40 = 0.45); four of the five rounds' own ratios are 0.9.
    raw = [40.0, 40.0, 20.0, 40.0, 20.0]
    pipe = [36.0, 18.0, 18.0, 36.0, 18.0]
    assert sorted(pipe)[2] / sorted(raw)[2] == pytest.approx(0.45)
    assert bench.paired_ratio(raw, pipe) == pytest.approx(0.9)
    assert bench.paired_ratio([10.0, 30.0, 20.0], [5.0, 30.0, 30.0]) == pytest.approx(1.0)


def test_paired_ratio_needs_one_run_of_each_side_per_round() -> None:
    bench = load_benchmark("pipeline_vs_engine")
    with pytest.raises(ValueError, match="one raw and one pipeline run per round"):
        bench.paired_ratio([30.0, 31.0], [29.0])
    with pytest.raises(ValueError):
        bench.paired_ratio([], [])


def test_row_lands_at_the_end_of_its_table_with_both_ratios(tmp_path: Path) -> None:
    bench = load_benchmark("pipeline_vs_engine")
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n" + bench.SECTION + "\n\nintro\n\n" + "\n".join(bench.TABLE_HEAD)
                   + "\n| old | row |\n\nafter the table\n\n## Next section\n", encoding="utf-8")
    row = {"date": "2026-12-06 17:00", "machine": "2-core CPU", "models": "d + e", "frames": 144, "batch": 8,
           "raw_fps": 32.0, "pipeline_fps": 28.0, "ratio": 0.875, "paired_ratio": 0.91}
    bench.append_markdown(doc, row, "python benchmarks/pipeline_vs_engine.py --streams 8")
    lines = doc.read_text(encoding="utf-8").splitlines()
    new = lines.index("| old | row |") + 1
    assert lines[new].startswith("| 2026-12-06 17:00 | 2-core CPU | d + e | 144 | 8 | 32.0 | 28.0 | 0.88 (paired 0.91) |")
    assert lines[new + 1] == "" and lines[new + 2] == "after the table"
    assert lines[-1] == "## Next section"
