"""The real-footage benchmark on a folder in the Tianchi layout (the demo sample stands in for the real
set here): its figures are filled in and agree with one another."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from benchmark_scripts import load_benchmark

DEMO = Path(__file__).resolve().parents[2] / "samples" / "demo"


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The whole benchmark's --json on the demo sample, end-to-end rows included (one run, ~30 s)."""
    out = tmp_path_factory.mktemp("real_accuracy") / "figures.json"
    assert load_benchmark("real_accuracy").main(["--data", str(DEMO), "--json", str(out)]) == 0
    return dict(json.loads(out.read_text()))


def test_real_accuracy_figures_agree_with_one_another(figures: dict[str, Any]) -> None:
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


@pytest.mark.parametrize(("successes", "trials", "expected"), [
    (10, 25, (0.234, 0.593)),  # the dev set's figure: anywhere from 0.23 to 0.59
    (0, 25, (0.0, 0.133)),
    (25, 25, (0.867, 1.0)),
    (1, 1, (0.207, 1.0)),
    (0, 0, (0.0, 1.0)),  # nothing scored: nothing known
])
def test_wilson_interval_known_values(successes: int, trials: int, expected: tuple[float, float]) -> None:
    assert load_benchmark("real_accuracy").wilson_interval(successes, trials) == pytest.approx(expected, abs=1e-3)


def test_the_full_run_pairs_the_text_rows(figures: dict[str, Any]) -> None:
    text, before, after = figures["text_effect"], figures["pipeline_no_text"], figures["pipeline"]
    assert text["videos"] == before["videos"] == after["videos"] == 1
    assert text["before"] == before["correct"] and text["after"] == after["correct"]
    assert len(text["gained"]) - len(text["lost"]) == after["correct"] - before["correct"]
    for row in (before, after):  # every answer kept, and the interval holds the figure
        assert set(row["answers"]) == {"v000000"}
        answer = row["answers"]["v000000"]
        assert answer["correct"] == (answer["predicted"] == answer["truth"]) and row["correct"] == int(answer["correct"])
        low, high = row["top1_interval_95"]
        assert low <= row["top1"] <= high
