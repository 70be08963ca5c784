"""How the detector's sold-item probabilities are read before the sold gate and the votes.

The sold head learned on synthetic renders. On camera footage its *level* moves with the training
details (on the real dev set, the median of a frame's highest sold probability is 0.85 for the
shipped detector and 0.53 for the same recipe with random convolutions, whose order is the better
one), while its *order* within a frame still says which garment is the one presented. ``frame``
scale divides each detection's probability by the highest of its frame, the form the motion cue and
the size-and-place prior already use: the frame's most likely sold box gets 1 and the others their
share of it. A frame with no box, or whose best box has probability 0, keeps its zeros.
"""

from __future__ import annotations

import numpy as np

from consumers.settings.sections import SOLD_SCALES


def scaled_sold(sold: np.ndarray, scale: str) -> np.ndarray:
    """The sold probabilities of one frame's detections on ``scale``.

    Args:
        sold: (N,) float sold-item probabilities in [0, 1].
        scale: One of :data:`consumers.settings.sections.SOLD_SCALES`.

    Returns:
        (N,) float32: ``sold`` unchanged (``absolute``) or divided by its maximum (``frame``).
    """
    if scale not in SOLD_SCALES:
        raise ValueError(f"sold scale must be one of {SOLD_SCALES}, got {scale!r}")
    values = np.asarray(sold, np.float32).reshape(-1)
    if scale == "absolute" or values.size == 0:
        return values
    best = float(values.max())
    return values / best if best > 0.0 else values
