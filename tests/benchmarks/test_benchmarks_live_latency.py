"""The live latency benchmark runs end to end on two real-time streams and times every frame."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark_scripts import load_benchmark


def test_live_latency_times_every_analysed_frame(tmp_path: Path) -> None:
    module = load_benchmark("live_latency")
    out = tmp_path / "latency.json"
    assert module.main(["--streams", "2", "--max-ages", "30", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())
    assert row["way"] == "max age 30 s" and row["streams"] == 2
    assert row["analysed"] == row["frames_published"] == 36  # 2 x 18 keyframes, none too old
    assert 0 < row["p50_s"] <= row["p99_s"] < 30
    assert row["seconds"] >= 17  # paced at the stream's own speed


def test_live_latency_at_fps_sampling_sends_more_frames_and_sheds_the_old_ones(tmp_path: Path) -> None:
    """At fps:4 each stream sends four frames a second; with a tiny age most of them are shed."""
    module = load_benchmark("live_latency")
    out = tmp_path / "latency.json"
    assert module.main(["--streams", "2", "--max-ages", "0.01", "--sampling", "fps:4", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())
    assert row["sampling"] == "fps:4" and row["frames_published"] > 36  # more than the keyframes
    assert row["analysed"] < row["frames_published"] and sum(row["dropped"].values()) > 0
