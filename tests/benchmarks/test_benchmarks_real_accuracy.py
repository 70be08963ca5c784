"""The real-footage benchmark on a folder in the Tianchi layout (the demo sample stands in for the real
set here): its figures are filled in and agree with one another."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
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


def test_end_to_end_figures_carry_every_answer_and_an_interval() -> None:
    from consumers.settings import Settings

    module = load_benchmark("real_accuracy")
    row = module.pipeline_figures(DEMO, Settings(), ["--no-text"])
    assert set(row["answers"]) == {"v000000"} and row["videos"] == 1
    answer = row["answers"]["v000000"]
    assert answer["correct"] == (answer["predicted"] == answer["truth"]) and row["correct"] == int(answer["correct"])
    low, high = row["top1_interval_95"]
    assert low <= row["top1"] <= high


@pytest.mark.parametrize(("successes", "trials", "expected"), [
    (10, 25, (0.234, 0.593)),  # the dev set's figure: anywhere from 0.23 to 0.59
    (0, 25, (0.0, 0.133)),
    (25, 25, (0.867, 1.0)),
    (1, 1, (0.207, 1.0)),
    (0, 0, (0.0, 1.0)),  # nothing scored: nothing known
])
def test_wilson_interval_known_values(successes: int, trials: int, expected: tuple[float, float]) -> None:
    assert load_benchmark("real_accuracy").wilson_interval(successes, trials) == pytest.approx(expected, abs=1e-3)
