"""Settings of the text cues (section ``[text]``, variables ``LIVETAG_TEXT_<FIELD>``)."""

from __future__ import annotations

from dataclasses import dataclass

from consumers.settings.checks import check, check_types, positive

OCR_MODES = ("off", "inline", "background")


@dataclass(frozen=True)
class TextSettings:
    """How stream titles, transcripts and on-screen text weigh on the votes (see consumers.text.text_prior).

    With no text for a stream, every factor is exactly 1: the votes are today's. The weights were
    set by argument (a named category or title doubles a vote at most; the detector's category head
    is weak, so the box prior is half as strong). ``half_life_s`` and ``named_boxes`` were chosen on
    synthetic three-product streams (docs/benchmarks.md, "Text cues"): a 60 s half-life and named
    boxes each cost segment accuracy there (0.95 without text; 0.82 with both, 0.90 with neither
    at 60 s, 0.95 with neither at 10 s), so the defaults are 10 s and off.

    Attributes:
        enabled: Use text cues at all.
        title_weight: A vote for the item whose title the stream's text matches best is multiplied
            by up to ``1 + title_weight``.
        category_weight: A vote for an item of the category the text names most is multiplied by up
            to ``1 + category_weight``.
        box_weight: A detection whose top categories (``box_top_k``) are the named ones votes with up
            to ``1 + box_weight`` times its weight (the sold-item box choice).
        box_top_k: Top categories of a detection compared with the named ones.
        named_boxes: When the text names items, also embed the boxes the sold head did not choose;
            one whose best match is a named item votes for the named items, with the text's strength
            as its sold probability (the text chooses the box, the picture the item). Off by default.
        half_life_s: Stream seconds for spoken and on-screen text to lose half its weight (the
            stream title does not fade): what was said over the last half minute or so counts.
        min_title_score: Title cosine similarities below this are ignored.
        max_text_chars: Characters of one text record that are read (the rest is cut).
        max_streams: Streams with text held at once (least recently seen evicted beyond it).
        idle_timeout_s: Wall seconds without text or frames after which a stream's text is forgotten.
        ocr_mode: ``off``, ``inline`` (read on the inference thread: deterministic, for replay and
            evaluation) or ``background`` (a worker thread with a bounded queue; live default when on).
        ocr_interval_s: Stream seconds between two frames of one stream sent to OCR.
        ocr_queue: Frames waiting for the OCR worker; a full queue drops its oldest frame (counted).
    """

    enabled: bool = True
    title_weight: float = 1.0
    category_weight: float = 1.0
    box_weight: float = 0.5
    box_top_k: int = 2
    named_boxes: bool = False
    half_life_s: float = 10.0
    min_title_score: float = 0.05
    max_text_chars: int = 2000
    max_streams: int = 10_000
    idle_timeout_s: float = 600.0
    ocr_mode: str = "off"
    ocr_interval_s: float = 5.0
    ocr_queue: int = 4

    def __post_init__(self) -> None:
        check_types(self, "text")
        for name in ("title_weight", "category_weight", "box_weight"):
            check(getattr(self, name) >= 0.0, f"text.{name}", f"must be >= 0, got {getattr(self, name)}")
        for name in ("half_life_s", "idle_timeout_s", "ocr_interval_s"):
            positive(f"text.{name}", getattr(self, name))
        check(0.0 <= self.min_title_score <= 1.0, "text.min_title_score", "must be in [0, 1]")
        for name in ("box_top_k", "max_text_chars", "max_streams", "ocr_queue"):
            check(getattr(self, name) >= 1, f"text.{name}", f"must be >= 1, got {getattr(self, name)}")
        check(self.ocr_mode in OCR_MODES, "text.ocr_mode", f"must be one of {', '.join(OCR_MODES)}, got {self.ocr_mode!r}")
