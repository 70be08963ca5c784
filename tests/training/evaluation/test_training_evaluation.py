"""Evaluation logic: refinement (table-driven), match summaries, report fields and result.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from engines.preprocess import box_iou as iou
from training.evaluation.match_summary import Hit, MatchSummary
from training.evaluation.refinement import Candidate, refine_assignments
from training.evaluation.tianchi_eval import GalleryImageRef, ReplayedVideo, evaluate
from training.evaluation.tianchi_truth import (
    DatasetLayoutError,
    check_layout,
    read_truth,
)
from training.tianchi import TianchiFormatError


def C(item: str, strength: float) -> Candidate:
    return Candidate(item, strength)


REFINE_CASES = [
    pytest.param({"v1": [C("a", 5)], "v2": [C("b", 4)]}, 1, {"v1": "a", "v2": "b"}, id="no-conflict"),
    pytest.param(
        {"v1": [C("a", 5), C("b", 1)], "v2": [C("a", 3), C("c", 2)]},
        1,
        {"v1": "a", "v2": "c"},
        id="weaker-claim-moves-to-next",
    ),
    pytest.param(
        {"v1": [C("a", 2), C("c", 1)], "v2": [C("a", 9), C("b", 1)]},
        1,
        {"v1": "c", "v2": "a"},
        id="stronger-later-video-wins",
    ),
    pytest.param(
        {"v1": [C("a", 5)], "v2": [C("a", 3)]},
        1,
        {"v1": "a", "v2": "a"},
        id="no-candidate-left-keeps-first",
    ),
    pytest.param(
        {"v1": [C("a", 5), C("b", 4)], "v2": [C("a", 6), C("b", 1)], "v3": [C("b", 2), C("c", 1)]},
        1,
        {"v1": "b", "v2": "a", "v3": "c"},
        id="chain-of-moves",
    ),
    pytest.param({"v1": [C("a", 5)], "v2": [C("a", 3)]}, 2, {"v1": "a", "v2": "a"}, id="capacity-two"),
    pytest.param({"v1": [], "v2": [C("a", 1)]}, 1, {"v1": None, "v2": "a"}, id="no-candidates"),
    pytest.param({"v2": [C("a", 3)], "v1": [C("a", 3), C("b", 1)]}, 1, {"v1": "a", "v2": "a"}, id="tie-by-video-id"),
]


@pytest.mark.parametrize(("candidates", "capacity", "expected"), REFINE_CASES)
def test_refine_assignments(candidates: dict, capacity: int, expected: dict) -> None:
    assert refine_assignments(candidates, capacity) == expected


def test_refine_rejects_zero_capacity() -> None:
    with pytest.raises(ValueError, match="capacity"):
        refine_assignments({"v": [C("a", 1)]}, 0)


def _event(kind: str, item: str, start: float, end: float | None, pts: float, score: float = 0.8) -> dict:
    return {
        "schema": "livetag.match/v1",
        "event": kind,
        "stream_id": "s",
        "item_id": item,
        "score": score,
        "segment": {"start": start, "end": end},
        "evidence": [
            {"pts": pts, "frame_box": [10, 10, 50, 90], "gallery_image_id": f"{item}/0", "item_box": [0, 0, 40, 80],
             "similarity": score}
        ],
    }


def test_summary_segments_prediction_and_ranking() -> None:
    s = MatchSummary("s")
    s.add_frame(0.5, [Hit("x", 0.9, "x/0", (0, 0, 1, 1)), Hit("y", 0.2, "y/0", (0, 0, 1, 1))])
    s.add_event(_event("match.started", "a", 1.0, None, 2.0))
    s.add_event(_event("match.ended", "a", 1.0, 3.0, 3.0))
    s.add_event(_event("match.started", "b", 4.0, None, 4.5, score=0.9))
    s.add_frame(9.0, [])
    s.close()
    assert s.items["a"].matched_s == pytest.approx(2.0)
    assert s.items["b"].matched_s == pytest.approx(5.0)  # closed at the last seen time
    assert s.items["a"].first_match_s == pytest.approx(2.0)
    assert s.prediction() == "b"
    assert s.ranked_items() == ["b", "a", "x", "y"]
    assert s.item_at(1.0, 3.0) == "a"
    assert s.item_at(6.0, 8.0) == "b"


def test_summary_without_events_predicts_nothing() -> None:
    s = MatchSummary("s")
    s.add_frame(1.0, [Hit("x", 0.9, "x/0", (0, 0, 1, 1))])
    assert s.prediction() is None
    assert s.ranked_items() == ["x"]


def test_hits_below_the_floor_answer_only_a_video_where_nothing_counted() -> None:
    """Uncounted hits (below the voter's min_similarity) rank nothing; they give the one answer of a
    video whose hits never counted, with their best evidence."""
    from training.evaluation.tianchi_eval import answer

    weak = MatchSummary("weak")
    weak.add_frame(0.5, [Hit("x", 0.31, "x/0", (0, 0, 1, 1), counted=False),
                         Hit("y", 0.35, "y/2", (4, 4, 9, 9), (1.0, 1.0, 5.0, 5.0), counted=False)])
    weak.add_frame(1.0, [Hit("x", 0.33, "x/1", (0, 0, 1, 1), counted=False)])
    assert weak.ranked_items() == [] and weak.prediction() is None and weak.items == {}
    assert weak.last_resort() == "y" and answer(weak) == "y"
    assert weak.uncounted["y"].gallery_image_id == "y/2" and weak.uncounted["x"].similarity == pytest.approx(0.33)
    counted = MatchSummary("counted")
    counted.add_frame(0.5, [Hit("y", 0.9, "y/0", (0, 0, 1, 1), counted=False), Hit("x", 0.5, "x/0", (0, 0, 1, 1))])
    assert counted.ranked_items() == ["x"] and answer(counted) == "x"  # a counted hit wins over any uncounted one
    assert answer(MatchSummary("empty")) is None


def test_iou() -> None:
    assert iou([0, 0, 10, 10], [0, 0, 10, 10]) == pytest.approx(1.0)
    assert iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert iou([0, 0, 10, 10], [20, 20, 30, 30]) == 0.0


def _write(path: Path, doc: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def _tiny_root(tmp_path: Path) -> Path:
    """Annotations of two shop items and two videos (the files they name exist; the readers check)."""
    root = tmp_path / "test"
    label = "短袖上衣"
    for item, inst in (("i1", 11), ("i2", 12)):
        (root / "image" / item).mkdir(parents=True)
        (root / "image" / item / "0.jpg").write_bytes(b"")
        _write(root / "image_annotation" / item / "0.json",
               {"item_id": item, "img_name": "0.jpg",
                "annotations": [{"box": [0, 0, 40, 80], "label": label, "instance_id": inst}]})
    (root / "video").mkdir(parents=True)
    for video in ("v1", "v2"):
        (root / "video" / f"{video}.mp4").write_bytes(b"")
    frames = [{"frame_index": i, "annotations": [{"box": [10, 10, 50, 90], "label": label, "instance_id": 11}]}
              for i in (25, 50, 75)]
    frames.append({"frame_index": 75, "annotations": [{"box": [0, 0, 5, 5], "label": label, "instance_id": 12}]})
    frames.append({"frame_index": 80, "annotations": [{"box": [0, 0, 5, 5], "label": label, "instance_id": 0}]})
    _write(root / "video_annotation" / "v1.json", {"video_id": "v1", "frames": frames})
    _write(root / "video_annotation" / "v2.json",
           {"video_id": "v2", "frames": [{"frame_index": 0, "annotations": [
               {"box": [1, 1, 9, 9], "label": label, "instance_id": 12}]}]})
    _write(root / "segments.json", {"v1": [{"item_id": "i1", "instance_id": 11, "start_frame": 25, "end_frame": 100,
                                            "start_s": 1.0, "end_s": 4.0}]})
    return root


def test_truth_reading(tmp_path: Path) -> None:
    root = _tiny_root(tmp_path)
    check_layout(root)
    truth = read_truth(root)
    v1 = truth.video("v1")
    assert (v1.item_id, v1.instance_id, v1.first_frame) == ("i1", 11, 25)
    assert v1.frame_boxes[50] == [(10.0, 10.0, 50.0, 90.0)]
    assert truth.video("v2").item_id == "i2"
    assert truth.video("nope").item_id is None
    assert truth.shop_boxes[("i1", "0.jpg")] == [((0.0, 0.0, 40.0, 80.0), 11)]
    assert truth.segments is not None and truth.segments[0].item_id == "i1"
    assert read_truth(tmp_path / "test" / "image").videos == {}  # no annotations: nothing to score


def test_layout_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match="lacks image/, video/"):
        check_layout(tmp_path)
    bad = _tiny_root(tmp_path)
    (bad / "video_annotation" / "v1.json").write_text("{not json")
    with pytest.raises(TianchiFormatError, match="v1.json"):
        read_truth(bad)


def test_evaluate_report_and_submission(tmp_path: Path) -> None:
    root = _tiny_root(tmp_path)
    truth = read_truth(root)
    truths = {v: truth.video(v) for v in ("v1", "v2")}
    v1 = MatchSummary("v1")
    v1.add_event(_event("match.started", "i1", 1.5, None, 2.5))
    v1.add_event(_event("match.ended", "i1", 1.5, 4.0, 4.0))
    v2 = MatchSummary("v2")
    v2.add_frame(0.0, [Hit("i2", 0.4, "i2/0", (0, 0, 1, 1))])
    v2.add_event(_event("match.started", "i1", 0.0, None, 0.5, score=0.6))
    for s in (v1, v2):
        s.close(5.0)
    videos = [ReplayedVideo("v1", v1, fps=25.0), ReplayedVideo("v2", v2, fps=25.0)]
    refs = {"i1/0": GalleryImageRef("i1", "0.jpg"), "i2/0": GalleryImageRef("i2", "0.jpg")}
    report, result = evaluate(videos, truths, refs, truth.shop_boxes, truth.segments)
    assert report["videos"] == 2 and report["scored_videos"] == 2
    assert report["top1_accuracy"] == 0.5
    assert report["recall_at"] == {"1": 0.5, "5": 1.0, "10": 1.0}
    # first annotated frame 25 at 25 fps = 1.0 s; decided at pts 2.5
    assert report["time_to_first_correct_s"] == {"found": 1, "mean": 1.5, "median": 1.5}
    # v1's pair: frame 63 (pts 2.5) is not annotated -> not judged; v2's pair names the wrong item -> wrong
    assert report["box_pairs"] == {"judged": 1, "correct": 0, "frame_not_annotated": 1}
    assert report["segment_accuracy"] == {"segments": 1, "correct": 1, "accuracy": 1.0}
    assert result["v1"] == {
        "item_id": "i1",
        "frame_index": 63,
        "result": [{"img_name": "0.jpg", "item_box": [0.0, 0.0, 40.0, 80.0], "frame_box": [10.0, 10.0, 50.0, 90.0]}],
    }
    # refinement: both videos claim i1; v2's weaker claim has no other confirmed candidate, so it stays
    refined, _ = evaluate(videos, truths, refs, truth.shop_boxes, refine=True)
    assert refined["refined"] is True and refined["per_video"][1]["predicted"] == "i1"


@pytest.mark.parametrize(
    ("pts", "frame", "precision"),
    [(2.0, 50, 1.0), (2.08, 52, 1.0), (2.16, 54, None)],
    ids=["annotated-frame", "two-frames-off", "too-far-from-annotation"],
)
def test_box_pair_precision_on_annotated_frame(tmp_path: Path, pts: float, frame: int, precision: float | None) -> None:
    truth = read_truth(_tiny_root(tmp_path))
    s = MatchSummary("v1")
    s.add_event(_event("match.started", "i1", 1.0, None, pts))  # frames 25, 50, 75 are annotated (25 fps)
    s.close(3.0)
    report, result = evaluate(
        [ReplayedVideo("v1", s, fps=25.0)], {"v1": truth.video("v1")},
        {"i1/0": GalleryImageRef("i1", "0.jpg")}, truth.shop_boxes,
    )
    assert result["v1"]["frame_index"] == frame
    assert report["box_pair_precision"] == precision
    assert report["segment_accuracy"] is None


def _generated_set(tmp_path: Path, videos: dict[str, list[str]], items: dict[str, str]) -> tuple[Path, Any]:
    """A tiny Tianchi-layout set and settings with the tiny models (the consumers' tests' helpers):
    ``(root, settings)``, every box may vote (sold threshold 0), keyframes sampled."""
    consumer_tests = str(Path(__file__).resolve().parents[2] / "consumers")
    if consumer_tests not in sys.path:
        sys.path.insert(0, consumer_tests)
    from consumers_media import export_tiny_models, make_tianchi_root

    from consumers.settings import ModelSettings, Settings

    root = make_tianchi_root(tmp_path / "test", videos, items)
    packages = export_tiny_models(tmp_path / "models")
    settings = Settings(models=ModelSettings(str(packages["detector"]), str(packages["embedder"]))).with_overrides(
        pipeline__sold_threshold=0.0, replay__sampling="keyframes")
    return root, settings


def test_eval_end_to_end_on_a_generated_set(tmp_path: Path) -> None:
    from training.evaluation.runner import run_tianchi_eval

    root, settings = _generated_set(tmp_path, {"v1": ["red", "red", "green"], "v2": ["blue", "yellow", "blue"]},
                                    {"A": "red", "B": "green", "C": "blue", "D": "yellow"})
    settings = settings.with_overrides(voter__min_similarity=-1.0, voter__min_votes=2, voter__start_score=0.2,
                                       voter__end_score=0.05, voter__margin=1.0)
    report, result = run_tianchi_eval(root, settings, refine=True, progress=False)
    assert report["videos"] == report["scored_videos"] == 2
    assert [row["truth"] for row in report["per_video"]] == ["A", "C"]  # most annotated frames
    for key in ("top1_accuracy", "box_pair_precision"):
        assert report[key] is None or 0.0 <= report[key] <= 1.0
    assert set(report["recall_at"]) == {"1", "5", "10"}
    assert report["recall_at"]["1"] <= report["recall_at"]["5"] <= report["recall_at"]["10"]
    assert report["segment_accuracy"]["segments"] == 6
    assert report["refined"] is True
    run = report["run"]
    # 6 s at 10 fps, keyframe every 5 frames: 12 frames per video
    assert run["frames"] == 24 and run["dead_letters"] == 0 and run["source_errors"] == {}
    assert run["gallery_images"] == 8 and run["gallery_items"] == 4
    assert set(result) == {"v1", "v2"}
    for entry in result.values():
        assert set(entry) == {"item_id", "frame_index", "result"}
        for pair in entry["result"]:
            assert set(pair) == {"img_name", "item_box", "frame_box"} and pair["img_name"].endswith(".jpg")


def test_eval_replays_a_video_without_any_box_on_every_box(tmp_path: Path) -> None:
    """No box reaches the detection threshold (1.0): every video is replayed once more on all the
    boxes the detector's decode keeps, so each still gets the one answer the challenge needs."""
    from training.evaluation.runner import run_tianchi_eval

    root, settings = _generated_set(tmp_path, {"v1": ["red", "red"], "v2": ["blue", "blue"]}, {"A": "red", "C": "blue"})
    silent, _ = run_tianchi_eval(root, settings.with_overrides(pipeline__detection_threshold=1.0), progress=False)
    assert silent["run"]["replayed_on_every_box"] == ["v1", "v2"]
    assert all(row["predicted"] in {"A", "C"} for row in silent["per_video"])
    normal, _ = run_tianchi_eval(root, settings.with_overrides(pipeline__detection_threshold=0.0), progress=False)
    assert normal["run"]["replayed_on_every_box"] == []
    assert [row["predicted"] for row in normal["per_video"]] == [row["predicted"] for row in silent["per_video"]]


def test_eval_answers_the_readable_videos_when_one_cannot_be_read(tmp_path: Path) -> None:
    """A video file that does not open is reported (``source_errors``, ``videos_without_frames``) and
    left unanswered; it is not replayed on every box, and the readable videos keep their answers."""
    from training.evaluation.runner import run_tianchi_eval

    root, settings = _generated_set(tmp_path, {"v1": ["red", "red"], "v2": ["blue", "blue"]}, {"A": "red", "C": "blue"})
    (root / "video" / "v2.mp4").write_bytes(b"not a video" * 100)
    report, result = run_tianchi_eval(root, settings.with_overrides(pipeline__detection_threshold=1.0), progress=False)
    run = report["run"]
    assert run["videos_without_frames"] == ["v2"] and set(run["source_errors"]) == {"v2"}
    assert run["replayed_on_every_box"] == ["v1"]
    assert result["v2"]["item_id"] is None
    assert result["v1"]["item_id"] in {"A", "C"}
