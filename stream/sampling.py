"""Which frames a stream forwards: keyframes only (no decode) or a fixed frame rate (decode + JPEG).

A sampling spec is a short string carried in the ``streams`` topic and on the command line::

    keyframes                 every keyframe packet, no decoding
    keyframes,max_rate=2      keyframes, at most 2 per second (faster ones are dropped)
    fps:2                     decode, forward 2 frames per second as JPEG
    fps:5,max_rate=2,quality=85

Drop policy ``drop-over-rate``: a frame that arrives less than ``1 / max_rate`` seconds (stream
time) after the last forwarded frame is dropped; the next one after the interval is forwarded.
"""

from __future__ import annotations

from dataclasses import dataclass

from stream.errors import SamplingSpecError

KEYFRAMES = "keyframes"
FPS = "fps"
RATE_DROP_POLICY = "drop-over-rate"


@dataclass(frozen=True)
class SamplingSpec:
    """A validated sampling choice.

    Attributes:
        mode: ``"keyframes"`` (demux only) or ``"fps"`` (decode and re-encode as JPEG).
        fps: Frames per second forwarded in ``fps`` mode; None in keyframe mode.
        max_rate: Upper bound on forwarded frames per second (policy ``drop-over-rate``); None = no bound.
        jpeg_quality: JPEG quality 1..100 for ``fps`` mode.
    """

    mode: str = KEYFRAMES
    fps: float | None = None
    max_rate: float | None = None
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        if self.mode not in (KEYFRAMES, FPS):
            raise SamplingSpecError(f"sampling mode {self.mode!r} is unknown; use 'keyframes' or 'fps:N'")
        if self.mode == FPS and (self.fps is None or not self.fps > 0):
            raise SamplingSpecError("fps sampling needs a positive rate, e.g. 'fps:2'")
        if self.mode == KEYFRAMES and self.fps is not None:
            raise SamplingSpecError("keyframe sampling takes no fps; use 'keyframes,max_rate=N' to cap it")
        if self.max_rate is not None and not self.max_rate > 0:
            raise SamplingSpecError(f"max_rate must be > 0, got {self.max_rate}")
        if not 1 <= self.jpeg_quality <= 100:
            raise SamplingSpecError(f"quality must be within 1..100, got {self.jpeg_quality}")

    @property
    def decodes(self) -> bool:
        """True when the sampling has to decode frames (``fps`` mode)."""
        return self.mode == FPS

    @property
    def interval_s(self) -> float | None:
        """Smallest gap in seconds between forwarded frames, from ``fps`` and ``max_rate`` together."""
        rates = [r for r in (self.fps, self.max_rate) if r is not None]
        return 1.0 / min(rates) if rates else None

    @classmethod
    def parse(cls, text: str) -> SamplingSpec:
        """Parse ``"keyframes"``, ``"fps:2"``, ``"keyframes,max_rate=2"``, ``"fps:5,quality=80"``.

        Raises:
            SamplingSpecError: The text names an unknown mode or option, or a value is not a number.
        """
        parts = [p.strip() for p in text.strip().split(",")]
        if not parts or not parts[0]:
            raise SamplingSpecError("empty sampling spec; use 'keyframes' or 'fps:N'")
        head, options = parts[0], parts[1:]
        mode, fps = _parse_head(head)
        max_rate: float | None = None
        quality = 90
        for option in options:
            name, sep, value = option.partition("=")
            name = name.strip()
            if not sep or not value.strip():
                raise SamplingSpecError(f"sampling option {option!r} must look like name=value")
            if name == "max_rate":
                max_rate = _number(value, "max_rate", text)
            elif name == "quality":
                q = _number(value, "quality", text)
                if q != int(q):
                    raise SamplingSpecError(f"quality must be an integer in {text!r}")
                quality = int(q)
            else:
                raise SamplingSpecError(f"unknown sampling option {name!r} in {text!r}; known: max_rate, quality")
        return cls(mode=mode, fps=fps, max_rate=max_rate, jpeg_quality=quality)

    def __str__(self) -> str:
        head = KEYFRAMES if self.mode == KEYFRAMES else f"fps:{self.fps:g}"
        tail = f",max_rate={self.max_rate:g}" if self.max_rate is not None else ""
        if self.mode == FPS and self.jpeg_quality != 90:
            tail += f",quality={self.jpeg_quality}"
        return head + tail


def _parse_head(head: str) -> tuple[str, float | None]:
    if head == KEYFRAMES:
        return KEYFRAMES, None
    name, sep, value = head.partition(":")
    if name.strip() == FPS:
        if not sep or not value.strip():
            raise SamplingSpecError("fps sampling needs a rate, e.g. 'fps:2'")
        return FPS, _number(value, "fps", head)
    raise SamplingSpecError(f"sampling mode {head!r} is unknown; use 'keyframes' or 'fps:N'")


def _number(value: str, name: str, text: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise SamplingSpecError(f"{name} must be a number, got {value.strip()!r} in {text!r}") from None
    if not number > 0 or number == float("inf"):
        raise SamplingSpecError(f"{name} must be a positive finite number, got {value.strip()!r} in {text!r}")
    return number


class RateLimiter:
    """Forwards at most one frame per ``interval_s`` of stream time (policy ``drop-over-rate``).

    Times are seconds on one timeline (stream pts seconds or an injected clock's monotonic time).
    A timestamp that goes backwards (a new session after a reconnect) restarts the window.

    Args:
        interval_s: Smallest gap between forwarded frames; None forwards everything.
        tolerance_s: Slack for timestamp rounding, so 2.0 fps keyframes pass a 2.0 max_rate.
    """

    policy = RATE_DROP_POLICY

    def __init__(self, interval_s: float | None, tolerance_s: float = 1e-3) -> None:
        self.interval_s = interval_s
        self.tolerance_s = tolerance_s
        self._last: float | None = None
        self.forwarded = 0
        self.dropped = 0

    def admit(self, t: float) -> bool:
        """True when a frame at time ``t`` may be forwarded; counts it as forwarded or dropped."""
        if self.interval_s is None or self._last is None or t < self._last:
            ok = True
        else:
            ok = t - self._last >= self.interval_s - self.tolerance_s
        if ok:
            self._last = t
            self.forwarded += 1
        else:
            self.dropped += 1
        return ok

    def reset(self) -> None:
        """Forget the last forwarded time (after a reconnect); counters are kept."""
        self._last = None
