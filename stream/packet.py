"""The frame packet: one compressed video frame that decodes on its own.

A packet travels as a Kafka-style record: ``key`` = stream id, ``value`` = the
packet bytes, and the metadata in record headers. Every packet carries the codec
extradata, so any consumer can decode it with a fresh decoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

WIRE_VERSION = "1"

Headers = list[tuple[str, bytes]]


class PacketFormatError(ValueError):
    """A record is not a valid frame packet (missing or malformed header)."""


@dataclass(frozen=True)
class FramePacket:
    """One keyframe (or JPEG) with everything needed to decode it alone.

    Attributes:
        stream_id: The live stream the frame belongs to.
        codec: PyAV decoder name: ``h264``, ``hevc``, ``mpeg4`` or ``mjpeg``.
        data: The compressed access unit as demuxed (AVCC or Annex B), or JPEG bytes.
        extradata: Codec extradata (avcC / hvcC); empty for Annex B or JPEG.
        pts: Presentation timestamp in ``time_base`` units.
        time_base: Seconds per pts tick.
        wallclock: Unix seconds when the ingest saw the frame (from an injected clock).
        sequence: Per-stream counter, increasing by one for every packet published.
        keyframe: True for IDR / I frames and JPEG.
    """

    stream_id: str
    codec: str
    data: bytes
    extradata: bytes
    pts: int
    time_base: Fraction
    wallclock: float
    sequence: int
    keyframe: bool = True

    @property
    def pts_seconds(self) -> float:
        """Presentation time in seconds."""
        return float(self.pts * self.time_base)

    def to_record(self) -> tuple[bytes, bytes, Headers]:
        """Encode as ``(key, value, headers)`` for a bus record."""
        headers: Headers = [
            ("lt-wire", WIRE_VERSION.encode()),
            ("codec", self.codec.encode()),
            ("extradata", self.extradata),
            ("pts", str(self.pts).encode()),
            ("time_base", f"{self.time_base.numerator}/{self.time_base.denominator}".encode()),
            ("wallclock", repr(float(self.wallclock)).encode()),
            ("sequence", str(self.sequence).encode()),
            ("keyframe", b"1" if self.keyframe else b"0"),
        ]
        return self.stream_id.encode(), self.data, headers

    @classmethod
    def from_record(cls, key: bytes | None, value: bytes | None, headers: Headers) -> FramePacket:
        """Decode a bus record; raises PacketFormatError with the reason when it is not a packet."""
        if not key:
            raise PacketFormatError("frame record has no key (stream id)")
        if not value:
            raise PacketFormatError("frame record has an empty value")
        h = {name: raw for name, raw in headers}
        missing = [n for n in ("codec", "pts", "time_base", "wallclock", "sequence") if n not in h]
        if missing:
            raise PacketFormatError(f"frame record lacks headers: {', '.join(missing)}")
        try:
            num, den = h["time_base"].decode().split("/")
            time_base = Fraction(int(num), int(den))
            return cls(
                stream_id=key.decode(),
                codec=h["codec"].decode(),
                data=bytes(value),
                extradata=bytes(h.get("extradata", b"")),
                pts=int(h["pts"]),
                time_base=time_base,
                wallclock=float(h["wallclock"]),
                sequence=int(h["sequence"]),
                keyframe=h.get("keyframe", b"1") == b"1",
            )
        except (ValueError, ZeroDivisionError, UnicodeDecodeError) as exc:
            raise PacketFormatError(f"frame record has a malformed header: {exc}") from exc
