"""The pixel-input benchmark re-exports the shipped packages with float input and times both ways."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark_scripts import load_benchmark


def test_pixel_input_benchmark_times_both_ways(tmp_path: Path) -> None:
    module = load_benchmark("pixel_input")
    out = tmp_path / "pixels.json"
    assert module.main(["--frames", "2", "--crops", "2", "--repeats", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result) == {"detect_wall_ms", "embed_wall_ms", "detector_pre_cpu_ms", "embedder_pre_cpu_ms"}
    for by_way in result.values():
        assert set(by_way) == {"float", "pixels"} and all(v > 0 for v in by_way.values())
