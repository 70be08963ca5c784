"""Which detections move: the garment being sold is worn or held up by a presenter who moves, while
rack garments, mannequins and on-screen boards stand still.

Per stream, a small grey thumbnail of each analysed frame is kept for a few seconds. A detection's
motion is the mean absolute grey-level difference inside its box between the frame and the newest
thumbnail at least ``window_s`` older (the previous keyframe of a stream with a 2 s GOP). The
motion factor ranks a box against the liveliest box of its frame::

    m = min(1, motion / STILL_LEVEL)            # 0: still, 1: clearly moving
    factor = 1 - (max(m over the frame) - m)    # 1 for the liveliest box; 0 for a still box beside a moving one

So a still frame (a slide, a paused stream, a frame without a reference) keeps every vote as it was,
and a camera that moves everything changes nothing either; only a box that stands still while
another moves loses weight. ``STILL_LEVEL`` (8 of 255 grey levels) is well above what H.264 noise
gives a still region between two frames (1-3) and well below a moving person (tens).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence

import cv2
import numpy as np

from engines.picture import Picture, as_picture
from stream.clock import Clock

#: Mean grey-level difference at which a box counts as clearly moving.
STILL_LEVEL = 8.0
#: Thumbnail width in pixels (the height keeps the frame's aspect).
THUMB_WIDTH = 160
#: A reference older than this many windows is not compared with (a gap in the stream).
MAX_WINDOWS = 4.0


def thumbnail(image: np.ndarray | Picture, scaled: np.ndarray | None = None) -> np.ndarray:
    """The grey thumbnail the cue compares: (h, ``THUMB_WIDTH``) uint8, h keeping ``image``'s aspect.

    Args:
        image: (H, W, 3) uint8 RGB frame, H and W > 0, or its picture (:mod:`engines.picture`;
            converted to RGB only when ``scaled`` cannot serve).
        scaled: The same frame already scaled down (h', w', 3) with ``w' >= THUMB_WIDTH`` (the
            detector's input, which the decoding thread makes anyway), or None. The thumbnail is
            then made from it: about 0.2 ms instead of 1.5-2.4 ms of CPU for a 540x960 or 720x1280
            frame, whose area resize to a non-integer factor takes OpenCV's slow path. The values
            differ a little from the full frame's (mean 1-2 grey levels, blurrier edges); a stream's
            thumbnails are all made one way, and the cue only compares them with each other.
    """
    picture = as_picture(image)
    height = max(1, round(picture.height * THUMB_WIDTH / picture.width))
    usable = scaled is not None and scaled.ndim == 3 and scaled.shape[1] >= THUMB_WIDTH
    source = scaled if usable and scaled is not None else picture.rgb()
    return cv2.resize(cv2.cvtColor(source, cv2.COLOR_RGB2GRAY), (THUMB_WIDTH, height), interpolation=cv2.INTER_AREA)


class MotionCue:
    """Per-stream thumbnails and the motion factor of each detection.

    Args:
        window_s: Stream seconds between a frame and the thumbnail it is compared with.
        clock: Injected clock; a stream unseen for ``idle_s`` of its wall time is evicted.
        idle_s: Wall seconds without a frame after which a stream's thumbnails are dropped (the
            voter's ``idle_timeout_s``).
        max_streams: Streams kept; the least recently seen is evicted beyond it.
        history: Thumbnails kept per stream (bounded; the oldest is dropped). A thumbnail is kept
            only when at least a quarter window after the previous one, so 8 reach two windows back
            at any frame rate: about 115 KB per stream at 16:9.
    """

    def __init__(self, window_s: float, clock: Clock, idle_s: float = 30.0, max_streams: int = 10_000,
                 history: int = 8) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.window_s = window_s
        self.clock = clock
        self.idle_s = idle_s
        self.max_streams = max_streams
        self.history = history
        self._thumbs: OrderedDict[str, deque[tuple[float, np.ndarray]]] = OrderedDict()
        self._seen: dict[str, float] = {}  # stream -> wall time of its latest frame

    def __len__(self) -> int:
        return len(self._thumbs)

    def factors(self, stream_id: str, pts: float, image: np.ndarray | Picture, boxes: np.ndarray,
                thumb: np.ndarray | None = None) -> np.ndarray:
        """Motion factors of a frame's boxes, and remember the frame.

        Args:
            stream_id: The stream.
            pts: The frame's stream time in seconds.
            image: (H, W, 3) uint8 RGB frame, or its picture.
            boxes: (N, 4) ``x1, y1, x2, y2`` in frame pixels.
            thumb: :func:`thumbnail` of ``image`` when it was made already (the pipeline makes it on
                the decoding thread); made here when None.

        Returns:
            (N,) float32 in [0, 1]; all ones without a reference frame.
        """
        if thumb is None:
            thumb = thumbnail(image)
        scale = THUMB_WIDTH / as_picture(image).width
        reference = self._reference(stream_id, pts, thumb.shape)
        out = np.ones(len(boxes), np.float32)
        if reference is not None and len(boxes):
            diff = np.abs(thumb.astype(np.float32) - reference)
            height, width = diff.shape
            motion = np.empty(len(boxes), np.float32)
            for i, box in enumerate(np.asarray(boxes, np.float32) * scale):
                x1, y1 = int(np.clip(np.floor(box[0]), 0, width - 1)), int(np.clip(np.floor(box[1]), 0, height - 1))
                x2, y2 = int(np.clip(np.ceil(box[2]), x1 + 1, width)), int(np.clip(np.ceil(box[3]), y1 + 1, height))
                motion[i] = float(diff[y1:y2, x1:x2].mean())
            moving = np.minimum(1.0, motion / STILL_LEVEL)
            out = (1.0 - (moving.max() - moving)).astype(np.float32)
        self._remember(stream_id, pts, thumb)
        return out

    def forget(self, stream_id: str) -> None:
        """Drop a stream's thumbnails (its stream ended or moved to another consumer)."""
        self._thumbs.pop(stream_id, None)
        self._seen.pop(stream_id, None)

    def _reference(self, stream_id: str, pts: float, shape: Sequence[int]) -> np.ndarray | None:
        kept = self._thumbs.get(stream_id)
        if not kept or pts < kept[-1][0]:  # nothing yet, or time went back (a new session starts over)
            return None
        for then, thumb in reversed(kept):
            age = pts - then
            if age >= self.window_s - 1e-3:
                return thumb if age <= MAX_WINDOWS * self.window_s and thumb.shape == tuple(shape) else None
        return None

    def _remember(self, stream_id: str, pts: float, thumb: np.ndarray) -> None:
        kept = self._thumbs.get(stream_id)
        if kept is None or (kept and pts < kept[-1][0]):  # new stream, or time went back (a new session)
            kept = self._thumbs[stream_id] = deque(maxlen=self.history)
        if not kept or pts - kept[-1][0] >= self.window_s / 4:
            kept.append((pts, thumb))
        now = self.clock.now()
        self._seen[stream_id] = now
        self._thumbs.move_to_end(stream_id)
        # least recently seen first: drop from the front while over the cap or idle (amortised O(1))
        while self._thumbs:
            oldest = next(iter(self._thumbs))
            if len(self._thumbs) <= self.max_streams and now - self._seen[oldest] <= self.idle_s:
                break
            self.forget(oldest)
