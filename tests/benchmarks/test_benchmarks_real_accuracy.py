"""The real-footage benchmark on a folder in the Tianchi layout (the demo sample stands in for the real
set here): its figures are filled in and agree with one another."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark_scripts import load_benchmark

DEMO = Path(__file__).resolve().parents[2] / "samples" / "demo"


def test_real_accuracy_figures_agree_with_one_another(tmp_path: Path) -> None:
    module = load_benchmark("real_accuracy")
    out = tmp_path / "figures.json"
    assert module.main(["--data", str(DEMO), "--skip-pipeline", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    crops, boxes, geometry = figures["embedder_crops"], figures["detector_boxes"], figures["box_geometry"]
    assert crops["queries"] == boxes["sold_boxes"] > 0
    assert 0.0 <= boxes["top_sold_box_recall"] <= boxes["any_box_recall"] <= 1.0
    # a sold box is in the geometry comparison exactly when some detection matches it
    assert geometry["matched_boxes"] == round(boxes["any_box_recall"] * boxes["sold_boxes"])
    if geometry["matched_boxes"] == crops["queries"]:  # every box matched: the same annotated crops
        assert geometry["annotated"]["R@1"] == crops["R@1"]
    # the recall curve: more boxes kept, never fewer sold items found; its first point is the detector's own
    curve = list(figures["any_box_recall_by_objectness"].values())
    assert curve == sorted(curve) and curve[0] == boxes["any_box_recall"]
    for way in ("annotated", "detected"):
        assert 0.0 <= geometry[way]["R@1"] <= 1.0
        assert geometry[way]["streams"]["videos"] == 1
