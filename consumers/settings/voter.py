"""Settings of the per-stream voter (``consumers.voting.voter``): validated once, then passed down."""

from __future__ import annotations

from dataclasses import dataclass

from consumers.settings.checks import check, check_types, positive, unit_interval

VOTE_WEIGHTS = ("similarity", "similarity_sold_confidence", "similarity_sold_confidence_garment")


@dataclass(frozen=True)
class VoterSettings:
    """The per-stream voter (see consumers.voting.voter for the rules).

    Attributes:
        half_life_s: Stream seconds for a vote to lose half its weight.
        min_similarity: Gallery hits below this similarity do not vote.
        min_votes: Frames voting for an item before its match can start.
        start_score: Decayed score an item needs to start a match.
        margin: The leader must score at least ``margin`` times the runner-up (start and switch).
        end_score: A running match ends when its decayed score falls below this.
        forget_score: An item's state is dropped below this score (its next run starts afresh).
        update_interval_s: Least stream seconds between two match.updated events.
        idle_timeout_s: Wall seconds without frames after which a stream is evicted (match.ended).
        max_streams: Streams held at once; the least recently seen is evicted beyond it.
        max_items_per_stream: Candidate items held per stream (lowest score dropped).
        max_evidence: Evidence items kept per candidate (most similar).
        votes_per_detection: Distinct items one detection may vote for (best first).
        category_mismatch_weight: Factor on the vote of a hit whose product categories miss the
            detection's top categories (``pipeline.category_top_k``); 0 rejects such votes outright.
        votes_per_frame: The frame's strongest item votes that count (0: every detection's).
        vote_weight: ``similarity_sold_confidence`` (default): a detection votes with its gallery
            similarity times its sold-item probability times its objectness; ``similarity``: with the
            similarity times the embedder's garment probability (1 when it gives none), once it
            passed the detector's thresholds: for a detector whose probabilities are not calibrated
            on the footage at hand; ``similarity_sold_confidence_garment``: the default's product
            times the garment probability (three independent signs that the box is the sold garment).
        vote_interval_s: Stream seconds one frame's vote stands for at full weight. A frame's votes
            are scaled by the stream time since the stream's previous analysed frame (at most
            ``half_life_s``) over this interval, so evidence is counted per stream second, not per
            frame: a stream sampled sparsely (keyframes 2 s apart) decides as a densely sampled
            one does. The default is the embedded default's sampling (``fps:4``), where the
            scale is 1; 0 counts every frame once whatever its spacing.
    """

    half_life_s: float = 3.0
    min_similarity: float = 0.3
    min_votes: int = 3
    start_score: float = 1.0
    margin: float = 1.5
    end_score: float = 0.3
    forget_score: float = 0.02
    update_interval_s: float = 2.0
    idle_timeout_s: float = 30.0
    max_streams: int = 10_000
    max_items_per_stream: int = 64
    max_evidence: int = 5
    votes_per_detection: int = 1
    category_mismatch_weight: float = 0.5
    vote_weight: str = "similarity_sold_confidence"
    votes_per_frame: int = 0
    vote_interval_s: float = 0.25

    def __post_init__(self) -> None:
        check_types(self, "voter")
        check(self.votes_per_frame >= 0, "voter.votes_per_frame", f"must be >= 0, got {self.votes_per_frame}")
        check(self.vote_weight in VOTE_WEIGHTS, "voter.vote_weight",
              f"must be one of {', '.join(VOTE_WEIGHTS)}, got {self.vote_weight!r}")
        unit_interval("voter.category_mismatch_weight", self.category_mismatch_weight)
        for name in ("half_life_s", "start_score", "end_score", "forget_score", "idle_timeout_s"):
            positive(f"voter.{name}", getattr(self, name))
        check(-1.0 <= self.min_similarity <= 1.0, "voter.min_similarity", "must be in [-1, 1]")
        check(self.margin >= 1.0, "voter.margin", f"must be >= 1, got {self.margin}")
        check(self.forget_score < self.end_score < self.start_score, "voter.end_score",
              f"must lie between forget_score and start_score ({self.forget_score} < {self.end_score} < {self.start_score})")
        check(self.update_interval_s >= 0, "voter.update_interval_s", "must be >= 0")
        for name in ("min_votes", "max_streams", "max_items_per_stream", "max_evidence", "votes_per_detection"):
            check(getattr(self, name) >= 1, f"voter.{name}", f"must be >= 1, got {getattr(self, name)}")
        check(0.0 <= self.vote_interval_s <= self.half_life_s, "voter.vote_interval_s",
              f"must be in [0, half_life_s ({self.half_life_s})], got {self.vote_interval_s}")
