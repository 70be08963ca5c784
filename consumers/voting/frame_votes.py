"""One frame's votes: what each item gets from the observations of one analysed frame.

Rules (the voter, :mod:`consumers.voting.voter`, then scales, decays and accumulates these):

* A detection votes for its best gallery items (``votes_per_detection`` at most) with weight
  ``similarity * sold * confidence`` (``vote_weight``), or ``similarity * garment`` where the detector
  is not calibrated on the footage (``garment``: the embedder's clothing probability, 1 when it gives
  none), times the motion factor ``moving`` (below 1 only for a box still beside a moving one)
  and the size-and-place prior ``presentation`` (below 1 for boxes smaller than the frame's
  largest or off its centre line).
  Hits below ``min_similarity`` do not vote. A hit whose item's catalog categories (when known) miss
  the detection's top categories is weighted by ``category_mismatch_weight`` (0 rejects it); items are
  ranked by these weights. One frame gives an item at most one vote (its strongest).
* Text cues (optional, :class:`~consumers.text.text_prior.TextPriors`): each vote is multiplied by
  the stream's ``item_factor`` (title and named-category evidence for the item) and the detection's
  ``box_factor`` (its top categories are the named ones). When the text names items, boxes the
  sold head did not choose are compared with those items too (``named_only``) and vote with the
  text's strength for the item instead of the sold probability. A stream without text has factors
  of exactly 1; events of a match that text supported quote the snippets (``text``, schema v2).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from consumers.messages.match_event import Evidence
from consumers.settings import VoterSettings
from consumers.text.text_prior import CategoryLookup, TextPriors
from consumers.voting.observations import GalleryHit, Observation
from consumers.voting.voter_state import clamp01

#: item_id -> (vote weight, the evidence of that vote).
FrameVotes = dict[str, tuple[float, Evidence]]


class FrameVoteWeigher:
    """Weighs one frame's observations into per-item votes (rules in the module docstring).

    Args:
        settings: Validated voter settings (``vote_weight``, ``min_similarity``,
            ``votes_per_detection``, ``category_mismatch_weight``).
        stats: Counter the weigher adds to (``low_similarity``, ``category_rejected``,
            ``category_penalised``); the voter's own.
        categories: Catalog lookup item_id -> category indices; None turns the category check off.
        text: Per-stream text cues; None: the visual weights alone.
    """

    def __init__(self, settings: VoterSettings, stats: Counter[str], *, categories: CategoryLookup | None = None,
                 text: TextPriors | None = None) -> None:
        self.settings = settings
        self.stats = stats
        self._categories = categories
        self._text = text

    def weigh(self, stream_id: str, observations: Sequence[Observation], pts: float) -> FrameVotes:
        """The strongest vote of this frame for each item.

        Args:
            stream_id: The frame's stream (its text cues apply).
            observations: The frame's detections with their gallery hits.
            pts: The frame's stream time, recorded in the evidence.

        Returns:
            item_id -> (weight, evidence); items without a vote are absent.
        """
        best: FrameVotes = {}
        text = self._text if self._text is not None and self._text.has_text(stream_id) else None
        for obs in observations:
            if obs.named_only and text is None:  # chosen for text that is no longer there
                continue
            det_weight = self._detection_weight(obs)
            if det_weight <= 0.0:
                continue
            if text is not None:
                det_weight *= text.box_factor(stream_id, obs.top_categories)
            voted: set[str] = set()
            for weight, hit in self._weighted_hits(stream_id, obs, det_weight, text):
                if len(voted) >= self.settings.votes_per_detection:
                    break
                if hit.item_id in voted:
                    continue
                voted.add(hit.item_id)
                if weight > best.get(hit.item_id, (0.0, None))[0]:
                    best[hit.item_id] = (weight, Evidence(pts, obs.frame_box, hit.image_id, hit.item_box, hit.score))
        return best

    def _detection_weight(self, obs: Observation) -> float:
        """How much the box counts: the detector's (or the embedder's garment) probability x motion x
        the size-and-place prior."""
        if self.settings.vote_weight == "similarity":
            # The detector's probabilities are not trusted here; the garment probability stands in.
            weight = clamp01(obs.garment)
        elif obs.named_only:  # the text, not the sold head, chose this box (strength per hit)
            weight = clamp01(obs.confidence)
        else:
            weight = clamp01(obs.sold) * clamp01(obs.confidence)
            if self.settings.vote_weight == "similarity_sold_confidence_garment":
                weight *= clamp01(obs.garment)
        return weight * clamp01(obs.moving) * clamp01(obs.presentation)

    def _weighted_hits(self, stream_id: str, obs: Observation, det_weight: float,
                       text: TextPriors | None) -> list[tuple[float, GalleryHit]]:
        """The box's hits that may vote, with their weights, strongest first (ties by ids)."""
        weighted: list[tuple[float, GalleryHit]] = []
        for hit in obs.hits:
            if not (math.isfinite(hit.score) and hit.score >= self.settings.min_similarity):
                self.stats["low_similarity"] += 1
                continue
            factor = self.category_factor(hit.item_id, obs.top_categories)
            if factor < 1.0:
                self.stats["category_rejected" if factor <= 0.0 else "category_penalised"] += 1
            if factor > 0.0 and text is not None:
                factor *= text.item_factor(stream_id, hit.item_id)
                if obs.named_only:
                    factor *= text.strength(stream_id, hit.item_id)
            if factor > 0.0:
                weighted.append((hit.score * det_weight * factor, hit))
        return sorted(weighted, key=lambda w: (-w[0], w[1].item_id, w[1].image_id))

    def category_factor(self, item_id: str, top_categories: tuple[int, ...]) -> float:
        """1 when the item's categories meet the detection's top categories (or either is unknown),
        else ``category_mismatch_weight``."""
        if self._categories is None or not top_categories:
            return 1.0
        known = self._categories(item_id)
        if not known or not set(known).isdisjoint(top_categories):
            return 1.0
        return self.settings.category_mismatch_weight
