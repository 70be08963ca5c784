"""The frame packet: one compressed video frame that decodes on its own.

A packet travels as a Kafka-style record: ``key`` = stream id, ``value`` = the
packet bytes, and the metadata in record headers. Every packet carries the codec
extradata, so any consumer can decode it with a fresh decoder. A *chain* packet
(header ``chain: 1``, wire version 2) carries the pictures a sampled frame needs
instead of one keyframe (:mod:`stream.packet_chain`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

WIRE_VERSION = "1"
#: Wire version of a chain packet: a consumer that predates chains sees a version it does not know.
CHAIN_WIRE_VERSION = "2"

Headers = list[tuple[str, bytes]]

#: Codecs a packet may name (the decoders ``stream.decode`` opens).
CODECS = ("h264", "hevc", "mpeg4", "mjpeg")
#: Bounds of one packet: value, extradata, stream id (bytes), a header's text (bytes).
MAX_DATA_BYTES = 8 * 1024 * 1024
MAX_EXTRADATA_BYTES = 64 * 1024
MAX_STREAM_ID_BYTES = 200
MAX_HEADER_TEXT = 64
#: |pts| in seconds and wallclock in unix seconds stay below this (about 300 years).
MAX_SECONDS = 1e10
#: Numerator and denominator of the time base stay below this.
MAX_TIME_BASE_TERM = 10**9


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
        chain: ``data`` is a decode chain (:mod:`stream.packet_chain`): the GOP's keyframe, its
            reference pictures and the sampled picture, whose pts is ``pts``.
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
    chain: bool = False

    @property
    def pts_seconds(self) -> float:
        """Presentation time in seconds."""
        return float(self.pts * self.time_base)

    def to_record(self) -> tuple[bytes, bytes, Headers]:
        """Encode as ``(key, value, headers)`` for a bus record."""
        headers: Headers = [
            ("lt-wire", (CHAIN_WIRE_VERSION if self.chain else WIRE_VERSION).encode()),
            ("codec", self.codec.encode()),
            ("extradata", self.extradata),
            ("pts", str(self.pts).encode()),
            ("time_base", f"{self.time_base.numerator}/{self.time_base.denominator}".encode()),
            ("wallclock", repr(float(self.wallclock)).encode()),
            ("sequence", str(self.sequence).encode()),
            ("keyframe", b"1" if self.keyframe else b"0"),
        ]
        if self.chain:
            headers.append(("chain", b"1"))
        return self.stream_id.encode(), self.data, headers

    @classmethod
    def from_record(cls, key: bytes | None, value: bytes | None, headers: Headers) -> FramePacket:
        """Decode a bus record; raises PacketFormatError with the reason when it is not a packet.

        Every field is bounded (sizes, codec, time base, finite pts and wallclock), so a record
        that passes can be decoded and voted on without overflow or unbounded work.
        """
        if not key:
            raise PacketFormatError("frame record has no key (stream id)")
        if len(key) > MAX_STREAM_ID_BYTES:
            raise PacketFormatError(f"frame record key is {len(key)} bytes; a stream id has at most {MAX_STREAM_ID_BYTES}")
        if not value:
            raise PacketFormatError("frame record has an empty value")
        if len(value) > MAX_DATA_BYTES:
            raise PacketFormatError(f"frame record value is {len(value)} bytes; at most {MAX_DATA_BYTES} are accepted")
        h = {name: raw for name, raw in headers}
        missing = [n for n in ("codec", "pts", "time_base", "wallclock", "sequence") if n not in h]
        if missing:
            raise PacketFormatError(f"frame record lacks headers: {', '.join(missing)}")
        long = [n for n in ("codec", "pts", "time_base", "wallclock", "sequence") if len(h[n] or b"") > MAX_HEADER_TEXT]
        if long:
            raise PacketFormatError(f"frame record headers too long: {', '.join(long)}")
        extradata = bytes(h.get("extradata") or b"")
        if len(extradata) > MAX_EXTRADATA_BYTES:
            raise PacketFormatError(f"frame record extradata is {len(extradata)} bytes; at most {MAX_EXTRADATA_BYTES}")
        try:
            stream_id = key.decode()
            codec = (h["codec"] or b"").decode()
            num, den = (h["time_base"] or b"").decode().split("/")
            time_base = Fraction(int(num), int(den))
            pts, sequence = int(h["pts"] or b""), int(h["sequence"] or b"")
            wallclock = float(h["wallclock"] or b"")
        except (ValueError, ZeroDivisionError, UnicodeDecodeError) as exc:
            raise PacketFormatError(f"frame record has a malformed header: {exc}") from exc
        if codec not in CODECS:
            raise PacketFormatError(f"frame record codec {codec[:20]!r} is not one of {', '.join(CODECS)}")
        chain = h.get("chain") == b"1"
        if chain and codec == "mjpeg":
            raise PacketFormatError("frame record is a decode chain of mjpeg pictures; chains carry video codecs")
        if not (0 < time_base.numerator <= MAX_TIME_BASE_TERM and 0 < time_base.denominator <= MAX_TIME_BASE_TERM):
            raise PacketFormatError(f"frame record time_base {time_base} is out of range (positive, terms <= 1e9)")
        if abs(pts) > MAX_SECONDS * time_base.denominator / time_base.numerator:
            raise PacketFormatError(f"frame record pts is out of range (|pts x time_base| <= {MAX_SECONDS:g} s)")
        if not (math.isfinite(wallclock) and 0.0 <= wallclock <= MAX_SECONDS):
            raise PacketFormatError(f"frame record wallclock {wallclock!r} is not a unix time in [0, {MAX_SECONDS:g}]")
        if not 0 <= sequence < 2**63:
            raise PacketFormatError(f"frame record sequence {sequence} is out of range [0, 2^63)")
        return cls(
            stream_id=stream_id,
            codec=codec,
            data=bytes(value),
            extradata=extradata,
            pts=pts,
            time_base=time_base,
            wallclock=wallclock,
            sequence=sequence,
            keyframe=h.get("keyframe", b"1") == b"1",
            chain=chain,
        )
