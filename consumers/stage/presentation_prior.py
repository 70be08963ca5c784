"""Where the product being sold sits in a live-shopping frame: a prior on each detection from its
size, its place and, with a person mask, whether it lies on the presenter.

A seller presents the product to the camera: the presenter wearing or holding it stands nearest the
camera and, in a phone stream's frame, about the middle of it. Rack garments, bystanders and
on-screen badges (the host's avatar, a coupon) are smaller and off to the sides. So, per frame::

    size   = sqrt(area / largest area of the frame)       # 1 for the largest box
    centre = 1 - EDGE_DISCOUNT * |x_centre - W/2| / (W/2)  # 1 on the vertical centre line
    factor = size * centre / max(size * centre over the frame)

``size`` is the ratio of apparent sizes (the square root of the area ratio): a garment twice as far
from the camera looks half as tall and counts half. ``EDGE_DISCOUNT`` is 0.5: a box at the frame's
edge keeps half its weight, since presenters move and some streams have two of them. Both were set
by this argument, not fitted to any footage. Like the motion cue, the prior ranks the boxes of a
frame against its best one, which keeps its full vote: a frame with one box gets 1 for it wherever
it is, so a stream with one detection per frame votes exactly as without the prior, and the
voter's thresholds keep their meaning.

With a person mask (:class:`engines.person_segmenter.PersonSegmenter`), the share of each box on a
person counts too, in the form of the motion cue (:mod:`consumers.stage.motion_cue`)::

    p      = min(1, coverage / FULL_COVER)   # 0: off every person, 1: on a person
    person = 1 - (max(p over the frame) - p) # 1 for the box most on a person; 0 for a box off
                                             # every person beside one on a person

A worn garment's box also holds some background at its corners, so half of it on the person
(``FULL_COVER``) counts as fully on. A frame without a person, or whose boxes all lie equally on
one, keeps every vote as it was; only a box off the presenter beside one on the presenter loses
weight: rack garments, mannequins, on-screen panels.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engines.picture import Picture, as_picture

#: Share of its weight a box loses at the left or right edge of the frame (linearly from the centre).
EDGE_DISCOUNT = 0.5
#: Share of a box on a person at which it counts as fully on the person.
FULL_COVER = 0.5

#: (H, W, 3) RGB frame and its (N, 4) boxes -> (N,) share of each box on a person (None: no mask).
CoverageOf = Callable[[np.ndarray, np.ndarray], "np.ndarray | None"]


def person_factors(coverage: np.ndarray) -> np.ndarray:
    """The person term of each detection of one frame (module docstring).

    Args:
        coverage: (N,) share of each box on a person, in [0, 1].

    Returns:
        (N,) float32 in [0, 1]; all ones when no box lies on a person.
    """
    on = np.minimum(1.0, np.clip(np.asarray(coverage, np.float32), 0.0, None) / FULL_COVER)
    if on.size == 0:
        return on.astype(np.float32)
    return (1.0 - (on.max() - on)).astype(np.float32)


def presentation_factors(boxes: np.ndarray, width: int, person_coverage: np.ndarray | None = None) -> np.ndarray:
    """The prior of each detection of one frame.

    Args:
        boxes: (N, 4) ``x1, y1, x2, y2`` in frame pixels.
        width: The frame's width in pixels.
        person_coverage: (N,) share of each box on a person (:meth:`PersonSegmenter.coverage`);
            None leaves the person term out.

    Returns:
        (N,) float32 in [0, 1]; the frame's best box gets 1. Degenerate boxes (no area) get 0; a
        frame whose boxes all have no area gets ones.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    if len(boxes) == 0:
        return np.zeros(0, np.float32)
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}")
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    largest = float(area.max())
    if largest <= 0.0:
        return np.ones(len(boxes), np.float32)
    size = np.sqrt(area / largest)
    half = width / 2.0
    off_centre = np.clip(np.abs((boxes[:, 0] + boxes[:, 2]) / 2.0 - half) / half, 0.0, 1.0)
    prior = size * (1.0 - EDGE_DISCOUNT * off_centre)
    if person_coverage is not None:
        prior = prior * person_factors(np.asarray(person_coverage, np.float32).reshape(-1))
    best = float(prior.max())
    return (prior / best).astype(np.float32) if best > 0.0 else np.ones(len(boxes), np.float32)


def frame_presentation(image: np.ndarray | Picture, boxes: np.ndarray, coverage_of: CoverageOf | None = None) -> np.ndarray:
    """The prior of a frame's detections, with the person term when ``coverage_of`` gives masks.

    The mask is asked for only when the frame has two or more boxes: a lone box gets 1 whatever
    its coverage, so a mask of its frame would change nothing.

    Args:
        image: (H, W, 3) RGB uint8 frame, or its picture (converted to RGB only for the masks).
        boxes: (N, 4) ``x1, y1, x2, y2`` in frame pixels.
        coverage_of: E.g. :meth:`engines.person_segmenter.PersonSegmenter.coverage`; None: no mask.

    Returns:
        (N,) float32, as :func:`presentation_factors`.
    """
    picture = as_picture(image)
    coverage = coverage_of(picture.rgb(), boxes) if coverage_of is not None and len(boxes) > 1 else None
    return presentation_factors(boxes, picture.width, coverage)
