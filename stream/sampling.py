"""Which frames a stream forwards: keyframes only (no decode) or a fixed frame rate.

A sampling spec is a short string carried in the ``streams`` topic and on the command line::

    keyframes                 every keyframe packet, no decoding
    keyframes,max_rate=2      keyframes, at most 2 per second (faster ones are dropped)
    fps:2                     decode, forward 2 frames per second as JPEG
    fps:5,max_rate=2,quality=85
    fps:2,transport=chain     no decoding at the ingest: forward each sample's decode chain (the GOP's
                              keyframe and reference pictures up to it, :mod:`stream.packet_chain`),
                              so the consumer decodes (NVDEC on a GPU) and no JPEG is made

Drop policy ``drop-over-rate``: a frame that arrives less than ``1 / max_rate`` seconds (stream
time) after the last forwarded frame is dropped; the next one after the interval is forwarded.
"""

from __future__ import annotations

from dataclasses import dataclass

from stream.errors import SamplingSpecError

KEYFRAMES = "keyframes"
FPS = "fps"
RATE_DROP_POLICY = "drop-over-rate"
#: How ``fps`` samples travel: re-encoded as JPEG at the ingest, or as their compressed decode chain.
TRANSPORTS = ("jpeg", "chain")


@dataclass(frozen=True)
class SamplingSpec:
    """A validated sampling choice.

    Attributes:
        mode: ``"keyframes"`` (demux only) or ``"fps"`` (decode and re-encode as JPEG).
        fps: Frames per second forwarded in ``fps`` mode; None in keyframe mode.
        max_rate: Upper bound on forwarded frames per second (policy ``drop-over-rate``); None = no bound.
        jpeg_quality: JPEG quality 1..100 for ``fps`` mode.
        transport: ``fps`` mode only: ``"jpeg"`` (decode at the ingest) or ``"chain"`` (forward the
            compressed pictures each sample needs; the consumer decodes).
    """

    mode: str = KEYFRAMES
    fps: float | None = None
    max_rate: float | None = None
    jpeg_quality: int = 90
    transport: str = "jpeg"

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
        if self.transport not in TRANSPORTS:
            raise SamplingSpecError(f"transport must be one of {', '.join(TRANSPORTS)}, got {self.transport!r}")
        if self.mode == KEYFRAMES and self.transport != "jpeg":
            raise SamplingSpecError("keyframe sampling forwards keyframes as they are; transport is for 'fps:N'")

    @property
    def decodes(self) -> bool:
        """True when the ingest has to decode frames (``fps`` mode with JPEG transport)."""
        return self.mode == FPS and self.transport == "jpeg"

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
        transport = "jpeg"
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
            elif name == "transport":
                transport = value.strip()
            else:
                raise SamplingSpecError(
                    f"unknown sampling option {name!r} in {text!r}; known: max_rate, quality, transport")
        return cls(mode=mode, fps=fps, max_rate=max_rate, jpeg_quality=quality, transport=transport)

    def __str__(self) -> str:
        head = KEYFRAMES if self.mode == KEYFRAMES else f"fps:{self.fps:g}"
        tail = f",max_rate={self.max_rate:g}" if self.max_rate is not None else ""
        if self.mode == FPS and self.jpeg_quality != 90:
            tail += f",quality={self.jpeg_quality}"
        if self.transport != "jpeg":
            tail += f",transport={self.transport}"
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
