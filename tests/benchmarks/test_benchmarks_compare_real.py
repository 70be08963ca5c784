"""Two real-footage runs compared stream by stream: the paired sign test and the videos that changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmark_scripts import load_benchmark


def _row(correct: dict[str, bool], ranks: dict[str, int | None] | None = None) -> dict[str, object]:
    ranks = ranks or {}
    return {"correct": sum(correct.values()), "videos": len(correct),
            "answers": {v: {"predicted": "a" if ok else "b", "truth": "a", "correct": ok,
                            "rank": ranks.get(v, 1 if ok else 2)} for v, ok in correct.items()}}


@pytest.mark.parametrize(("gained", "lost", "p"), [
    (0, 0, 1.0),
    (2, 0, 0.5),  # two more streams right, none lost: a coin does that half the time
    (5, 0, 0.0625),
    (6, 0, 0.03125),  # the least that passes p < 0.05 without a loss
    (3, 3, 1.0),
    (7, 1, 0.0703125),
    (1, 7, 0.0703125),  # two-sided
])
def test_sign_test_known_values(gained: int, lost: int, p: float) -> None:
    assert load_benchmark("compare_real").sign_test_p(gained, lost) == pytest.approx(p)


def test_sign_test_refuses_negative_counts() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        load_benchmark("compare_real").sign_test_p(-1, 2)


def test_paired_change_names_the_videos_that_flipped() -> None:
    module = load_benchmark("compare_real")
    before = _row({"v1": True, "v2": False, "v3": False, "v4": True})
    after = _row({"v1": True, "v2": True, "v3": True, "v4": False, "v5": True})  # v5 only in one run: not compared
    change = module.paired_change(before, after)
    assert change["videos"] == 4 and (change["before"], change["after"]) == (2, 3)
    assert change["gained"] == ["v2", "v3"] and change["lost"] == ["v4"]
    assert change["p"] == pytest.approx(1.0)
    assert change["rank_up"] == ["v2", "v3"] and change["rank_down"] == ["v4"]


def test_paired_change_counts_rank_moves_below_the_top() -> None:
    """Wrong both times, but the true item moved up (6 -> 2, unranked -> 5) or down (3 -> unranked)."""
    module = load_benchmark("compare_real")
    wrong = dict.fromkeys(("v1", "v2", "v3", "v4"), False)
    change = module.paired_change(_row(wrong, {"v1": 6, "v2": None, "v3": 3, "v4": 4}),
                                  _row(wrong, {"v1": 2, "v2": 5, "v3": None, "v4": 4}))
    assert change["gained"] == change["lost"] == []
    assert change["rank_up"] == ["v1", "v2"] and change["rank_down"] == ["v3"]
    assert change["rank_p"] == pytest.approx(1.0)


def test_main_prints_both_rows_and_refuses_runs_without_answers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = load_benchmark("compare_real")
    first, second, old = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "old.json"
    wrong = {f"v{i}": False for i in range(6)}
    first.write_text(json.dumps({"pipeline_no_text": _row(wrong), "pipeline": _row(wrong)}))
    second.write_text(json.dumps({"pipeline_no_text": _row({v: True for v in wrong}), "pipeline": _row(wrong)}))
    assert module.main([str(first), str(second)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("no text: 0/6 -> 6/6; gained 6") and "p = 0.031 (unlikely from noise alone)" in out[0]
    assert out[1].startswith("with text: 0/6 -> 0/6; gained 0 [], lost 0 []") and "within the noise" in out[1]
    old.write_text(json.dumps({"pipeline": {"correct": 1, "videos": 1}}))
    assert module.main([str(old), str(second)]) == 2
    assert "no per-video answers" in capsys.readouterr().err
    skipped = tmp_path / "skip.json"
    skipped.write_text(json.dumps({"embedder_crops": {}}))
    assert module.main([str(skipped), str(skipped)]) == 2
