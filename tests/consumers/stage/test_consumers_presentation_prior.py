"""The size-and-place prior of a frame's detections and its person term (consumers.stage.presentation_prior)."""

from __future__ import annotations

import numpy as np
import pytest

from consumers.stage.presentation_prior import EDGE_DISCOUNT, FULL_COVER, person_factors, presentation_factors

WIDTH = 720


def test_the_largest_box_on_the_centre_line_gets_one_and_a_quarter_area_box_half() -> None:
    boxes = np.array([[260, 300, 460, 900],   # the presenter's dress: 200 x 600, centred
                      [310, 100, 410, 400]],  # 100 x 300 on the centre line: a quarter of the area
                     dtype=np.float32)
    factors = presentation_factors(boxes, WIDTH)
    assert factors.dtype == np.float32 and factors.shape == (2,)
    assert factors == pytest.approx([1.0, 0.5])


def test_a_box_at_the_edge_keeps_one_minus_the_edge_discount() -> None:
    boxes = np.array([[260, 300, 460, 900], [620, 300, 820, 900]], dtype=np.float32)  # same size, centre x 720
    factors = presentation_factors(boxes, WIDTH)
    assert factors == pytest.approx([1.0, 1.0 - EDGE_DISCOUNT])


def test_off_centre_falls_linearly_and_is_symmetric() -> None:
    size = 100
    lefts = [WIDTH / 2 - size / 2, WIDTH / 2 - 90 - size / 2, WIDTH / 2 + 90 - size / 2]  # centre, 90 px left, right
    boxes = np.array([[x, 0, x + size, size] for x in lefts], dtype=np.float32)
    factors = presentation_factors(boxes, WIDTH)
    assert factors[1] == pytest.approx(factors[2])
    assert factors[1] == pytest.approx(1.0 - EDGE_DISCOUNT * 90 / (WIDTH / 2))


def test_the_best_box_of_a_frame_keeps_its_full_vote() -> None:
    """The prior ranks boxes within a frame: a lone box, or the best of two off-centre boxes, gets 1."""
    for x in (0, 300, 650):
        assert presentation_factors(np.array([[x, 0, x + 50, 80]], np.float32), WIDTH) == pytest.approx([1.0])
    both_left = np.array([[0, 0, 100, 100], [150, 0, 250, 100]], np.float32)  # centres 50 and 200 px
    factors = presentation_factors(both_left, WIDTH)
    assert factors[1] == pytest.approx(1.0)
    assert factors[0] == pytest.approx((1 - EDGE_DISCOUNT * 310 / 360) / (1 - EDGE_DISCOUNT * 160 / 360))


def test_degenerate_boxes_and_empty_frames() -> None:
    assert presentation_factors(np.zeros((0, 4), np.float32), WIDTH).shape == (0,)
    flat = np.array([[10, 10, 10, 50], [300, 0, 400, 200]], np.float32)  # no width: no area
    assert presentation_factors(flat, WIDTH)[0] == 0.0
    assert presentation_factors(np.array([[5, 5, 5, 5]], np.float32), WIDTH) == pytest.approx([1.0])
    with pytest.raises(ValueError, match="width"):
        presentation_factors(flat, 0)


@pytest.mark.parametrize(("coverage", "expected"), [
    ([0.8, 0.0], [1.0, 0.0]),          # worn beside a rack garment: the rack garment loses its vote
    ([0.5, 0.25], [1.0, 0.5]),         # half on the person counts as fully on
    ([0.3, 0.3], [1.0, 1.0]),          # equally on the person: no change
    ([0.0, 0.0], [1.0, 1.0]),          # nobody in the frame: no change
    ([], []),
])
def test_person_factors_rank_boxes_against_the_one_most_on_a_person(coverage: list[float], expected: list[float]) -> None:
    assert person_factors(np.array(coverage, np.float32)) == pytest.approx(expected)
    assert FULL_COVER == 0.5


def test_the_person_term_can_lift_a_smaller_box_on_the_presenter_over_a_larger_one_off_it() -> None:
    """A rack of coats (large, off the presenter) and the presenter's top (smaller, on her): without
    the mask the rack wins on size; with it the top keeps its vote and the rack loses it."""
    boxes = np.array([[0, 100, 400, 1000],     # the rack: 400 x 900 at the left
                      [300, 300, 500, 600]],   # the worn top: 200 x 300, centred
                     np.float32)
    without = presentation_factors(boxes, WIDTH)
    assert without[0] > without[1]
    with_mask = presentation_factors(boxes, WIDTH, person_coverage=np.array([0.05, 0.9], np.float32))
    assert with_mask[1] == pytest.approx(1.0)
    # the rack's own prior (size 1, centre 1 - 0.5 * 160 / 360) times its person term (1 - (1 - 0.1)),
    # against the top's (size sqrt(1/6), centre 1 - 0.5 * 40 / 360)
    rack, top = (1 - 0.5 * 160 / 360) * 0.1, (1 / 6) ** 0.5 * (1 - 0.5 * 40 / 360)
    assert with_mask[0] == pytest.approx(rack / top, rel=1e-5)
