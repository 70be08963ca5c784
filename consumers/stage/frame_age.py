"""Deadline-aware admission of live frames: shed at the door what would be too old at the models.

With ``pipeline.max_frame_age_s`` a frame older than the age is shed twice: when it is read (before
the decoder) and again before the models. When the consumer is behind it reads in offset order, so
the frames it reads are all nearly ``max_age`` old. Checked only against the age, they pass the
door, spend the decoder's time, and grow too old while the rest of their batch is decoded and while
they are queued. Under overload at fps:N sampling that left the models idle while the decoding
thread decoded frames that were then shed (docs/benchmarks.md, live latency).

So the door also counts the time ahead of a frame. The frame in place ``k`` (from 0) of the
frames a batch admits is decoded after ``k + 1`` decode times and then waits for the models::

    admitted  <=>  age + min(decode + queue, max_age / 2) + k * decode  <=  max_age

``decode`` (seconds of wall time per frame of a decoded batch) and ``queue`` (from the end of a
batch's decode to the models, its slowest frame) are exponentially weighted means of what was
measured. The cap keeps the door open for a frame younger than half the age, so the estimates keep
being measured and fall again with the load; the ``k * decode`` term limits how many frames one
batch decodes when decoding is slow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from consumers.stage.frames import DecodedFrame

#: Weight of the newest measured wait in the running mean.
ALPHA = 0.2
#: The time ahead of a batch's first frame counts at most this share of ``max_age_s``.
MAX_SHARE = 0.5


class FrameAge:
    """The live age policy of one stage: the door test, the test before the models, the estimates.

    Args:
        max_age_s: ``pipeline.max_frame_age_s``; 0 turns the policy off (replays and evaluation):
            every frame is admitted and fresh.

    One thread measures the queue (the model thread) and another the decode and asks (the decoding
    thread); each estimate is one float, replaced whole.
    """

    def __init__(self, max_age_s: float) -> None:
        if max_age_s < 0:
            raise ValueError(f"max_age_s must be >= 0, got {max_age_s}")
        self.max_age_s = max_age_s
        self.decode_s = 0.0
        self.queue_s = 0.0

    @property
    def on(self) -> bool:
        """Whether frames are shed for their age at all."""
        return self.max_age_s > 0

    def observe_decode(self, seconds: float, frames: int) -> None:
        """Account a batch whose ``frames`` frames took ``seconds`` of wall time to decode."""
        if frames > 0:
            self.decode_s = _mean(self.decode_s, seconds / frames)

    def observe_queue(self, waited_s: float) -> None:
        """Account the longest wait of a batch between the end of its decode and the models."""
        self.queue_s = _mean(self.queue_s, waited_s)

    def admits(self, wallclock: float, now: float, place: int = 0) -> bool:
        """Whether a frame ingested at ``wallclock`` should be decoded, read at ``now`` as the
        ``place``-th frame (from 0) its batch admits: it would reach the models within the age."""
        if not self.on:
            return True
        ahead = min(self.decode_s + self.queue_s, MAX_SHARE * self.max_age_s) + place * self.decode_s
        return now - wallclock + ahead <= self.max_age_s

    def fresh(self, wallclock: float, now: float) -> bool:
        """Whether a frame ingested at ``wallclock`` is still within the age at ``now``."""
        return not self.on or now - wallclock <= self.max_age_s

    def mark_stale(self, frames: Sequence[DecodedFrame], now: float) -> int:
        """Before the models: account the batch's queue wait (its slowest frame, from the end of its
        decode) and mark ``shed`` the frames no longer :meth:`fresh` at ``now``; how many."""
        if frames:
            self.observe_queue(max(now - frame.decoded_at for frame in frames))
        for frame in frames:
            frame.shed = not self.fresh(frame.packet.wallclock, now)
        return sum(frame.shed for frame in frames)


def _mean(mean: float, value: float) -> float:
    return (1.0 - ALPHA) * mean + ALPHA * max(0.0, value)
