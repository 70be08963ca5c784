"""What the inference stage hands the voter per frame: detections with their gallery hits
(``engines.gallery.GalleryHit``, as the search returns them)."""

from __future__ import annotations

from dataclasses import dataclass

from consumers.messages.match_event import Box
from engines.gallery import GalleryHit

__all__ = ["GalleryHit", "Observation"]


@dataclass(frozen=True)
class Observation:
    """One detection of a frame with its gallery hits.

    Attributes:
        frame_box: ``x1, y1, x2, y2`` in frame pixels.
        sold: The detector's sold-item probability in [0, 1], on the pipeline's ``sold_scale``
            (over the frame's highest with ``frame``).
        confidence: The detector's objectness in [0, 1].
        hits: Gallery hits, any order.
        top_categories: The detection's most likely category indices (empty: no check).
        garment: Probability that the crop shows a garment, from the embedder's ImageNet classes
            (1 when the embedder does not say); the vote's weight with ``vote_weight="similarity"``.
        moving: Motion factor in [0, 1] (:mod:`consumers.stage.motion_cue`): 1 for the liveliest
            box of the frame, less for a box that stands still beside it; multiplies the vote.
        presentation: Size-and-place prior in [0, 1] (:mod:`consumers.stage.presentation_prior`):
            1 for the frame's largest box on its centre line, less for smaller boxes and boxes
            off to the sides; multiplies the vote.
        named_only: The box was not chosen by the sold head but because the stream's text names
            items; its hits are those items only, and the text's strength for the item
            (:meth:`TextPriors.strength`) stands in for the sold probability.
    """

    frame_box: Box
    sold: float
    confidence: float
    hits: tuple[GalleryHit, ...]
    top_categories: tuple[int, ...] = ()
    garment: float = 1.0
    named_only: bool = False
    moving: float = 1.0
    presentation: float = 1.0
