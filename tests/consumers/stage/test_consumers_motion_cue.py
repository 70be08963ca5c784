"""The motion cue: boxes that stand still beside a moving one, against the frame a window earlier."""

from __future__ import annotations

import numpy as np
import pytest

from consumers.stage.motion_cue import THUMB_WIDTH, MotionCue, thumbnail
from stream.clock import FakeClock

LEFT = (0.0, 0.0, 300.0, 360.0)  # a rack garment: never changes
RIGHT = (340.0, 0.0, 640.0, 360.0)  # a presenter: changes every frame


def _frame(t: int, right_moves: bool = True, left_moves: bool = False) -> np.ndarray:
    rng = np.random.default_rng(7)  # the same texture for every frame
    image = rng.integers(0, 255, (360, 640, 3), dtype=np.uint8)
    if right_moves:
        image[:, 340:] = np.roll(image[:, 340:], 7 * t, axis=0)
    if left_moves:
        image[:, :300] = np.roll(image[:, :300], 7 * t, axis=0)
    return image


def test_a_still_box_beside_a_moving_one_gets_a_low_factor_once_a_reference_exists() -> None:
    cue = MotionCue(window_s=2.0, clock=FakeClock())
    boxes = np.array([LEFT, RIGHT], np.float32)
    first = cue.factors("s", 0.0, _frame(0), boxes)
    assert first.tolist() == [1.0, 1.0]  # no earlier frame: nothing is known
    assert cue.factors("s", 1.0, _frame(1), boxes).tolist() == [1.0, 1.0]  # only 1 s back: no reference yet
    later = cue.factors("s", 2.0, _frame(2), boxes)
    assert later[1] == pytest.approx(1.0) and later[0] < 0.2


@pytest.mark.parametrize("left_moves", [False, True])
def test_a_frame_where_nothing_or_everything_moves_keeps_every_vote(left_moves: bool) -> None:
    cue = MotionCue(window_s=1.0, clock=FakeClock())
    boxes = np.array([LEFT, RIGHT], np.float32)
    for t in range(3):
        factors = cue.factors("s", float(t), _frame(t, right_moves=left_moves, left_moves=left_moves), boxes)
    assert factors.tolist() == pytest.approx([1.0, 1.0])


def test_a_gap_a_new_session_or_a_new_size_leaves_no_reference() -> None:
    cue = MotionCue(window_s=1.0, clock=FakeClock())
    boxes = np.array([LEFT, RIGHT], np.float32)
    cue.factors("s", 0.0, _frame(0), boxes)
    assert cue.factors("s", 10.0, _frame(1), boxes).tolist() == [1.0, 1.0]  # 10 windows later: too old
    assert cue.factors("s", 3.0, _frame(2), boxes).tolist() == [1.0, 1.0]  # time went back: forgotten
    portrait = np.ascontiguousarray(_frame(3)[:, :200])
    assert cue.factors("s", 4.0, portrait, boxes / 4).tolist() == [1.0, 1.0]  # another aspect: not compared
    assert cue.factors("s", 5.0, _frame(4), np.zeros((0, 4), np.float32)).shape == (0,)


def test_streams_are_bounded_evicted_when_idle_and_forgotten() -> None:
    clock = FakeClock()
    cue = MotionCue(window_s=1.0, clock=clock, idle_s=30.0, max_streams=2, history=3)
    for name in ("a", "b", "c"):
        cue.factors(name, 0.0, _frame(0), np.zeros((0, 4), np.float32))
    assert len(cue) == 2  # the least recently seen stream was evicted
    for t in range(10):  # thumbnails are bounded per stream too
        cue.factors("c", t * 0.5, _frame(t), np.zeros((0, 4), np.float32))
    assert len(cue._thumbs["c"]) == 3
    cue.forget("c")
    assert len(cue) == 1
    clock.advance(31.0)  # "b" has been idle longer than idle_s: the next frame of any stream evicts it
    cue.factors("d", 0.0, _frame(0), np.zeros((0, 4), np.float32))
    assert list(cue._thumbs) == ["d"]
    with pytest.raises(ValueError, match="window_s"):
        MotionCue(window_s=0.0, clock=FakeClock())


def test_a_thumbnail_made_beforehand_gives_the_factors_the_cue_makes_itself() -> None:
    """The pipeline makes the thumbnail on the decoding thread; the factors must not change."""
    assert thumbnail(_frame(0)).shape == (90, THUMB_WIDTH) and thumbnail(_frame(0)).dtype == np.uint8
    own, given = MotionCue(window_s=1.0, clock=FakeClock()), MotionCue(window_s=1.0, clock=FakeClock())
    boxes = np.array([LEFT, RIGHT], np.float32)
    for t in range(4):
        image = _frame(t)
        expected = own.factors("s", float(t), image, boxes)
        assert given.factors("s", float(t), image, boxes, thumbnail(image)).tolist() == expected.tolist()
    assert expected[0] < 0.2  # the still box was told apart with the given thumbnails too


def test_a_thumbnail_from_the_detectors_scaled_copy_tells_the_still_box_apart_the_same_way() -> None:
    """The decoding thread makes the thumbnail from the detector's input (cheaper than the full
    frame's area resize): same shape, values within a few grey levels, the same factors' verdict."""
    from engines.preprocess import resize_to

    image = _frame(0)
    scaled = resize_to(image, 320, 180)
    from_scaled = thumbnail(image, scaled)
    assert from_scaled.shape == thumbnail(image).shape
    assert np.abs(from_scaled.astype(int) - thumbnail(image).astype(int)).mean() < 3.0
    narrow = resize_to(image, THUMB_WIDTH - 1, 89)  # narrower than a thumbnail: the full frame is used
    assert np.array_equal(thumbnail(image, narrow), thumbnail(image))
    cue = MotionCue(window_s=1.0, clock=FakeClock())
    boxes = np.array([LEFT, RIGHT], np.float32)
    for t in range(3):
        frame = _frame(t)
        factors = cue.factors("s", float(t), frame, boxes, thumbnail(frame, resize_to(frame, 320, 180)))
    assert factors[1] == pytest.approx(1.0) and factors[0] < 0.2
