"""The ingest cost benchmark runs end to end at a small size; the GOP tail is skipped at fps:1."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark_scripts import load_benchmark


def test_sampling_cost_compares_before_and_now(tmp_path: Path) -> None:
    module = load_benchmark("sampling_cost")
    out = tmp_path / "cost.json"
    assert module.main(["--repeats", "1", "--frames", "150", "--size", "320x180", "--samplings", "keyframes,fps:1",
                        "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["video_s"] == 6.0
    rows = result["samplings"]
    assert rows["keyframes"]["before"]["frames"] == rows["keyframes"]["now"]["frames"] == 3
    # the same six samples both ways; the frames never needed are simply not decoded now
    assert rows["fps:1"]["before"]["frames"] == rows["fps:1"]["now"]["frames"] == 6
    assert all(row[way]["cpu_s_per_video_s"] > 0 for row in rows.values() for way in ("before", "now"))
