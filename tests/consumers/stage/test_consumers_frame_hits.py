"""The hits observers get besides the counted ones: a detection's best hit below the voter's floor."""

from __future__ import annotations

import numpy as np
import pytest

from consumers.stage.frame_hits import uncounted_hits
from engines.gallery import GalleryHit
from engines.types import Detections


def _detections(n: int) -> Detections:
    boxes = np.array([[10.0 * i, 0.0, 10.0 * i + 5.0, 5.0] for i in range(n)], np.float32)
    return Detections(boxes, np.ones(n, np.float32), np.full((n, 1), 1.0, np.float32), np.ones(n, np.float32))


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        pytest.param([[0.2, 0.25]], [("b", 0.25)], id="all-below: the best"),
        pytest.param([[0.2, 0.5]], [], id="one-counts: none"),
        pytest.param([[]], [], id="no-hits: none"),
        pytest.param([[0.1], [0.29]], [("a", 0.1), ("a", 0.29)], id="each-detection"),
        pytest.param([[0.3]], [], id="at-the-floor-counts"),
    ],
)
def test_uncounted_hits_are_the_best_below_the_floor(scores: list[list[float]], expected: list[tuple[str, float]]) -> None:
    owners = [(0, di, False) for di in range(len(scores))]
    hits = {ci: [GalleryHit(f"{item}/0", item, s, None) for item, s in zip("ab", row, strict=False)]
            for ci, row in enumerate(scores)}
    out = uncounted_hits(owners, hits, [_detections(len(scores))], 0.3, 1)
    assert [(h.item_id, h.similarity) for h in out[0]] == expected
    assert all(not h.counted for h in out[0])
    assert [h.frame_box for h in out[0]] == [tuple(float(v) for v in _detections(len(scores)).boxes[i])
                                             for i, row in enumerate(scores) if row and max(row) < 0.3]
