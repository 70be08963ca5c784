"""Retrieval metrics on hand-made similarity tables with exact expected Recall@K and mAP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.retrieval_metrics import RetrievalInputError, evaluate_retrieval, plot_cmc

# (name, similarity (Q, G), query labels, gallery labels, {k: expected recall@k}, expected mAP, skipped)
CASES = [
    (
        "perfect",
        [[0.9, 0.1], [0.2, 0.8]],
        ["a", "b"],
        ["a", "b"],
        {1: 1.0, 2: 1.0},
        1.0,
        0,
    ),
    (
        "second and fourth place",
        [[0.9, 0.8, 0.7, 0.6]],
        ["a"],
        ["x", "a", "y", "a"],
        {1: 0.0, 2: 1.0, 4: 1.0},
        (1 / 2 + 2 / 4) / 2,
        0,
    ),
    (
        "one last, one first",
        [[0.1, 0.5, 0.3], [0.2, 0.9, 0.1]],
        ["a", "b"],
        ["a", "b", "c"],
        {1: 0.5, 2: 0.5, 3: 1.0},
        (1 / 3 + 1.0) / 2,
        0,
    ),
    (
        "ties keep gallery order",
        [[0.5, 0.5]],
        ["b"],
        ["a", "b"],
        {1: 0.0, 2: 1.0},
        0.5,
        0,
    ),
    (
        "query without gallery match is skipped",
        [[0.1, 0.9], [0.9, 0.1]],
        ["b", "z"],
        ["a", "b"],
        {1: 1.0},
        1.0,
        1,
    ),
    (
        "integer labels, three of a kind",
        [[0.9, 0.3, 0.8, 0.1, 0.7]],
        [7],
        [7, 1, 2, 7, 7],
        {1: 1.0, 5: 1.0},
        (1 / 1 + 2 / 3 + 3 / 5) / 3,
        0,
    ),
]


@pytest.mark.parametrize(("name", "sim", "q", "g", "recalls", "mean_ap", "skipped"), CASES, ids=[c[0] for c in CASES])
def test_retrieval_metrics_match_hand_computed_values(name, sim, q, g, recalls, mean_ap, skipped) -> None:
    result = evaluate_retrieval(np.asarray(sim), q, g, ks=tuple(recalls))
    for k, expected in recalls.items():
        assert result.recall(k) == pytest.approx(expected), f"{name}: recall@{k}"
    assert result.mean_ap == pytest.approx(mean_ap)
    assert result.num_skipped == skipped
    assert result.num_queries == len(q) - skipped
    assert np.all(np.diff(result.cmc) >= 0)
    assert result.cmc[-1] == pytest.approx(1.0)


def test_recall_beyond_gallery_size_is_the_last_cmc_value() -> None:
    result = evaluate_retrieval(np.array([[0.2, 0.1]]), ["b"], ["a", "b"])
    assert result.recall(10) == pytest.approx(1.0)
    assert result.to_dict()["recall@1"] == 0.0
    assert result.to_dict()["gallery_products"] == 2


def test_shape_mismatch_is_a_clear_error() -> None:
    with pytest.raises(RetrievalInputError, match="similarity must be"):
        evaluate_retrieval(np.zeros((2, 3)), ["a"], ["a", "b", "c"])


def test_no_shared_labels_is_a_clear_error() -> None:
    with pytest.raises(RetrievalInputError, match="no query label"):
        evaluate_retrieval(np.zeros((1, 2)), ["q"], ["a", "b"])


def test_cmc_plot_is_written(tmp_path: Path) -> None:
    result = evaluate_retrieval(np.array([[0.9, 0.8, 0.7]]), ["c"], ["a", "b", "c"])
    out = tmp_path / "cmc.png"
    plot_cmc(result, out, "test")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
