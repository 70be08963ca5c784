"""What the inference stage passes between its steps and reports: decoded frames, counters, headers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from consumers.bus import Record
from engines.picture import Picture
from stream.errors import LiveTagError
from stream.packet import FramePacket

if TYPE_CHECKING:
    from consumers.stage.frame_analysis import FrameAnalysis


@dataclass(frozen=True)
class Hit:
    """The best gallery match of one detection in one frame (what observers of the stage get).

    Attributes:
        item_id: Item of the nearest gallery image.
        similarity: Cosine similarity in [-1, 1].
        gallery_image_id: Id of the nearest gallery image.
        frame_box: ``[x1, y1, x2, y2]`` of the detection in frame pixels.
        item_box: Box of the product in the gallery image, or None when unknown.
        garment: The embedder's probability that the detection shows a garment (1 when unknown).
        prior: The stream's text factor on this hit times the detection's motion and presentation
            factors (1 when none applies).
        counted: False for a detection none of whose hits reaches the voter's ``min_similarity``:
            its best hit, which votes for nothing; an observer may use it only as a last resort
            (the evaluation's one answer for a video where no hit counted).
    """

    item_id: str
    similarity: float
    gallery_image_id: str
    frame_box: tuple[float, float, float, float]
    item_box: tuple[float, float, float, float] | None = None
    garment: float = 1.0
    prior: float = 1.0
    counted: bool = True


#: Called once per processed frame with (stream id, pts seconds, best hit of every detection).
FrameObserver = Callable[[str, float, list[Hit]], None]


@dataclass
class DecodedFrame:
    """A frame record with its decoded picture and catalog header; ``scaled`` is the picture already
    scaled to the detector's input (h, w, 3) RGB uint8 when the decoder made one, ``thumb`` the
    motion cue's grey thumbnail (h, 160) uint8 when the cue is on (both made on the decoding thread,
    so the model thread does not wait for them). The picture keeps the decoder's YUV planes where it
    can (:mod:`engines.picture`): the crops convert only their own pixels, and the whole (H, W, 3)
    RGB frame (:attr:`image`) is made only if something asks for it."""

    record: Record
    packet: FramePacket
    picture: Picture
    catalog: str | None
    shed: bool = False  # grew too old while waiting for the models: not analysed
    scaled: np.ndarray | None = None
    thumb: np.ndarray | None = None
    analysis: FrameAnalysis | None = None  # the models' part, once run (ahead, with batch.model_workers > 1)
    decoded_at: float = 0.0  # clock time its batch's decode ended (live admission, consumers.stage.frame_age)

    @property
    def image(self) -> np.ndarray:
        """The whole frame, (H, W, 3) RGB uint8 (converted on first use, then kept)."""
        return self.picture.rgb()


@dataclass
class StageCounters:
    """Counters since creation (read from any thread)."""

    records: int = 0
    frames: int = 0
    detections: int = 0
    events: int = 0
    dead_letters: int = 0
    unknown_catalog: int = 0  # searches for frames whose catalog the gallery does not have
    dropped_stale: int = 0  # frames older than pipeline.max_frame_age_s, shed before the models
    skipped_revoked: int = 0  # frames of partitions revoked while they waited (the new owner has them)
    superseded: int = 0  # older frames of a stream with a newer one in the same batch (newest_frame_wins)


def newest_per_stream(records: Sequence[Record]) -> tuple[list[Record], int]:
    """Keep each stream's last record of a batch (records without a key are kept, to be judged).

    Every frame packet decodes alone, so when a consumer is behind and a batch holds several frames
    of one stream, the newest is enough: the older ones are counted and not decoded.

    Returns:
        ``(kept records in input order, number left out)``.
    """
    last: dict[bytes, int] = {}
    for index, record in enumerate(records):
        if record.key:
            last[record.key] = index
    kept = [r for i, r in enumerate(records) if not r.key or last[r.key] == i]
    return kept, len(records) - len(kept)


class StaleFrame(Exception):  # noqa: N818 - a signal, not an error: the frame is a counted drop
    """A frame older than ``pipeline.max_frame_age_s``."""


class FrameRecordError(LiveTagError):
    """A record on the frames topic is not a frame packet."""
