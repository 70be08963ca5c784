"""The pixel-input benchmark re-exports the shipped packages with float input and times both ways."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_pixel_input_benchmark_times_both_ways(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("pixel_input_bench", REPO / "benchmarks" / "pixel_input.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["pixel_input_bench"] = module
    spec.loader.exec_module(module)
    out = tmp_path / "pixels.json"
    assert module.main(["--frames", "2", "--crops", "2", "--repeats", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result) == {"detect_wall_ms", "embed_wall_ms", "detector_pre_cpu_ms", "embedder_pre_cpu_ms"}
    for by_way in result.values():
        assert set(by_way) == {"float", "pixels"} and all(v > 0 for v in by_way.values())
