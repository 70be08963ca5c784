"""The process-layout benchmark runs each layout's processes side by side and counts every frame."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmark_scripts import load_benchmark


def test_layouts_are_parsed_or_refused() -> None:
    module = load_benchmark("process_layout")
    assert module.parse_layout("2x1") == (2, 1, 1) and module.parse_layout("1X4") == (1, 4, 1)
    assert module.parse_layout("1x1/2") == (1, 1, 2) and module.layout_name((1, 1, 2)) == "1x1/2"
    for bad in ("2", "0x1", "2x", "ax1", "2x1x1", "1x1/0", "1x1/"):
        with pytest.raises(ValueError, match="PROCESSESxTHREADS"):
            module.parse_layout(bad)


def test_each_layout_analyses_every_frame_of_its_streams(tmp_path: Path) -> None:
    module = load_benchmark("process_layout")
    out = tmp_path / "layout.json"
    assert module.main(["--layouts", "1x1,2x1,1x1/2", "--streams", "2", "--repeats", "1", "--runs", "1",
                        "--start-delay-s", "0", "--json", str(out)]) == 0
    rows = {row["layout"]: row for row in json.loads(out.read_text())}
    assert set(rows) == {"1x1", "2x1", "1x1/2"}
    for row in rows.values():
        assert row["frames"] == [36]  # 2 streams x 18 keyframes, whether one process has both or two have one
        assert row["frames_per_s"][0] > 0
