"""The chain-transport benchmark runs end to end at a small size: the same number of samples both ways,
every figure filled in (the times themselves are the script's to report, not this test's)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark_scripts import load_benchmark


def test_chain_transport_compares_jpeg_and_chain(tmp_path: Path) -> None:
    module = load_benchmark("chain_transport")
    out = tmp_path / "chain.json"
    assert module.main(["--repeats", "1", "--frames", "150", "--size", "320x180", "--fps", "1",
                        "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    row = result["rates"]["fps:1"]
    assert row["jpeg"]["samples"] == row["chain"]["samples"] == row["chain_whole"]["samples"] == 6
    for way in ("jpeg", "chain", "chain_whole"):
        assert row[way]["ingest_ms_per_sample"] > 0 and row[way]["consumer_decode_ms_per_sample"] > 0
        assert row[way]["total_ms_per_sample"] >= row[way]["ingest_ms_per_sample"]
    assert row["chain"]["kib_per_sample"] > row["jpeg"]["kib_per_sample"]  # pictures of a GOP against one JPEG
