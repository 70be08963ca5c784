"""One frame's votes (consumers.voting.frame_votes), table-driven: weights, filters, one vote per item."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest

from consumers.settings import VoterSettings
from consumers.voting.frame_votes import FrameVoteWeigher
from consumers.voting.observations import GalleryHit, Observation

CATALOG = {"A": {1}, "B": {2}, "C": {1, 2}}
BOX = (0.0, 0.0, 10.0, 10.0)


def _hit(item: str, score: float, image: str = "") -> GalleryHit:
    return GalleryHit(image or f"{item}-{score}", item, score, BOX)


def _obs(*hits: GalleryHit, sold: float = 1.0, confidence: float = 1.0, garment: float = 1.0, moving: float = 1.0,
         cats: tuple[int, ...] = (), presentation: float = 1.0) -> Observation:
    return Observation(BOX, sold=sold, confidence=confidence, hits=hits, top_categories=cats, garment=garment,
                       moving=moving, presentation=presentation)


@dataclass(frozen=True)
class Case:
    name: str
    observations: list[Observation]
    expected: dict[str, float]  # item -> weight
    settings: dict[str, object] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)


CASES = [
    Case("product weight: similarity x sold x objectness x motion",
         [_obs(_hit("A", 0.8), sold=0.5, confidence=0.5, moving=0.5)], {"A": 0.8 * 0.5 * 0.5 * 0.5}),
    Case("the size-and-place prior multiplies the product weight",
         [_obs(_hit("A", 0.8), sold=0.5, presentation=0.25)], {"A": 0.8 * 0.5 * 0.25}),
    Case("the size-and-place prior multiplies similarity votes too",
         [_obs(_hit("A", 0.8), garment=0.5, presentation=0.5)], {"A": 0.2}, settings={"vote_weight": "similarity"}),
    Case("a larger box on the centre line outvotes a smaller one at the edge with a closer match",
         [_obs(_hit("B", 0.9), presentation=0.3), _obs(_hit("A", 0.6), presentation=1.0)], {"A": 0.6, "B": 0.27}),
    Case("similarity votes ignore the detector and use the garment probability",
         [_obs(_hit("A", 0.8), sold=0.1, confidence=0.1, garment=0.5)], {"A": 0.4},
         settings={"vote_weight": "similarity"}),
    Case("the product weight with the garment probability too",
         [_obs(_hit("A", 0.8), sold=0.5, garment=0.5)], {"A": 0.2},
         settings={"vote_weight": "similarity_sold_confidence_garment"}),
    Case("probabilities outside [0, 1] are clamped", [_obs(_hit("A", 0.8), sold=3.0, confidence=-1.0)], {}),
    Case("hits under min_similarity do not vote",
         [_obs(_hit("A", 0.2), _hit("B", 0.6))], {"B": 0.6}, settings={"min_similarity": 0.3},
         stats={"low_similarity": 1}),
    Case("a non-finite similarity does not vote", [_obs(_hit("A", float("nan")))], {}, stats={"low_similarity": 1}),
    Case("votes_per_detection keeps a box's strongest items",
         [_obs(_hit("A", 0.5), _hit("B", 0.9), _hit("C", 0.7))], {"B": 0.9, "C": 0.7},
         settings={"votes_per_detection": 2}),
    Case("an item's second image in the same box takes no extra vote slot",
         [_obs(_hit("A", 0.9, "a1"), _hit("A", 0.8, "a2"), _hit("B", 0.7))], {"A": 0.9, "B": 0.7},
         settings={"votes_per_detection": 2}),
    Case("one vote per item and frame: the strongest box's",
         [_obs(_hit("A", 0.6)), _obs(_hit("A", 0.9)), _obs(_hit("A", 0.7))], {"A": 0.9}),
    Case("a category mismatch is weighted by category_mismatch_weight",
         [_obs(_hit("A", 0.8), _hit("B", 0.8), cats=(2,))], {"A": 0.4, "B": 0.8},
         settings={"category_mismatch_weight": 0.5, "votes_per_detection": 2}, stats={"category_penalised": 1}),
    Case("a mismatch weight of 0 rejects the hit",
         [_obs(_hit("A", 0.8), _hit("C", 0.7), cats=(2,))], {"C": 0.7},
         settings={"category_mismatch_weight": 0.0, "votes_per_detection": 2},
         stats={"category_rejected": 1}),
    Case("by default a box votes for its strongest item only", [_obs(_hit("A", 0.6), _hit("B", 0.9))], {"B": 0.9}),
    Case("a box without top categories is not checked", [_obs(_hit("A", 0.8))], {"A": 0.8},
         settings={"category_mismatch_weight": 0.0}),
    Case("a box of text-named items votes only while the stream has text",
         [Observation(BOX, sold=1.0, confidence=1.0, hits=(_hit("A", 0.9),), named_only=True)], {}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_frame_votes(case: Case) -> None:
    stats: Counter[str] = Counter()
    weigher = FrameVoteWeigher(VoterSettings(**case.settings), stats, categories=CATALOG.get)  # type: ignore[arg-type]
    votes = weigher.weigh("s1", case.observations, pts=4.0)
    assert {item: pytest.approx(weight) for item, (weight, _) in votes.items()} == case.expected
    assert {k: v for k, v in stats.items() if v} == case.stats


def test_evidence_names_the_winning_box_and_image() -> None:
    weigher = FrameVoteWeigher(VoterSettings(), Counter())
    strong = Observation((5.0, 6.0, 50.0, 60.0), sold=1.0, confidence=1.0, hits=(_hit("A", 0.9, "shop-7"),))
    weak = _obs(_hit("A", 0.6, "shop-1"))
    (weight, evidence), = weigher.weigh("s1", [weak, strong], pts=12.5).values()
    assert weight == pytest.approx(0.9)
    assert (evidence.pts, evidence.frame_box, evidence.gallery_image_id, evidence.similarity) == (12.5, (5.0, 6.0, 50.0, 60.0),
                                                                                         "shop-7", 0.9)


def test_without_a_catalog_lookup_categories_are_not_checked() -> None:
    weigher = FrameVoteWeigher(VoterSettings(category_mismatch_weight=0.0), Counter())
    assert weigher.category_factor("A", (2,)) == 1.0
    assert set(weigher.weigh("s1", [_obs(_hit("A", 0.8), cats=(2,))], pts=0.0)) == {"A"}
