"""Real-time pacing: hold a reader back so stream time advances with the (injected) clock."""

from __future__ import annotations

from stream.clock import Clock


class Pacer:
    """Sleeps so that media time ``t`` is reached no earlier than ``t / speed`` after the first call.

    Args:
        clock: Source of monotonic time and sleep.
        speed: 1.0 = real time, 2.0 = twice as fast; must be > 0.
    """

    def __init__(self, clock: Clock, speed: float = 1.0) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.clock = clock
        self.speed = speed
        self._origin: tuple[float, float] | None = None  # (media time, monotonic time)

    def wait_until(self, media_time_s: float) -> float:
        """Sleep until ``media_time_s`` is due; returns the seconds slept.

        The first call anchors media time to the clock; a timestamp that jumps backwards
        (a new session) re-anchors.
        """
        now = self.clock.monotonic()
        if self._origin is None or media_time_s < self._origin[0]:
            self._origin = (media_time_s, now)
            return 0.0
        due = self._origin[1] + (media_time_s - self._origin[0]) / self.speed
        wait = due - now
        if wait > 0:
            self.clock.sleep(wait)
            return wait
        return 0.0

    def reset(self) -> None:
        """Forget the anchor (after a reconnect)."""
        self._origin = None
