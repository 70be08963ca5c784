"""The best gallery hit of each detection of a frame, for observers that rank items (evaluation)."""

from __future__ import annotations

from collections.abc import Sequence

from consumers.match_summary import Hit
from consumers.text.text_prior import TextPriors
from consumers.voter import Observation


def best_hits(stream_id: str, observations: Sequence[Observation], text: TextPriors | None) -> list[Hit]:
    """The best hit of every detection; with text cues, best by similarity times the text factors
    (which the hit carries as ``prior``)."""
    out = []
    use_text = text is not None and text.has_text(stream_id)
    for obs in observations:
        if not obs.hits:
            continue
        if use_text:
            assert text is not None
            box = text.box_factor(stream_id, obs.top_categories)
            priors = [box * text.item_factor(stream_id, h.item_id)
                      * (text.strength(stream_id, h.item_id) if obs.named_only else 1.0) for h in obs.hits]
        else:
            priors = [1.0] * len(obs.hits)
        best, prior = max(zip(obs.hits, priors, strict=True), key=lambda hp: hp[0].similarity * hp[1])
        out.append(Hit(best.item_id, best.similarity, best.gallery_image_id, obs.frame_box, best.item_box,
                       obs.garment, prior))
    return out
