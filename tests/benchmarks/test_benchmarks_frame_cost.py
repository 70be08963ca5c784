"""The per-frame CPU cost benchmark runs end to end at a small size and reports every step and way."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark_scripts import load_benchmark


def test_frame_cost_reports_every_step_of_every_way(tmp_path: Path) -> None:
    module = load_benchmark("frame_cost")
    out = tmp_path / "cost.json"
    assert module.main(["--repeats", "1", "--frames", "10", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["keyframes"] == 2 and result["bytes_per_keyframe"] > 10_000  # real 1080p texture
    for label in ("loop_filter", "skip_loop_filter"):
        ways = result[label]
        assert set(ways) == {"before", "float", "pixels", "pixels+swscale", "planes", "planes+swscale"}
        for way, steps in ways.items():
            assert all(steps[name] > 0 for name in ("decode", "detector input", "crops"))
            assert (steps["rgb"] == 0) == way.startswith("planes")  # the planes ways make no whole RGB frame
            assert abs(steps["total"] - sum(v for k, v in steps.items() if k != "total")) < 0.05
        assert ways["before"]["decode"] == ways["pixels"]["decode"]  # the same decode, timed once
