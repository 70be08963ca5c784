"""Decode chains: the compressed pictures one sampled frame needs, forwarded instead of a JPEG.

With ``fps:N,transport=chain`` sampling the ingest decodes nothing. For each sampled picture it
forwards, in decode order, the GOP's keyframe, the reference pictures since it and the sampled
picture itself; the consumer decodes the chain with a fresh decoder and keeps the picture whose pts
is the packet's (:class:`stream.decode.PacketDecoder`). Non-reference H.264 pictures before the
sample are left out (:mod:`stream.h264_nal`): no picture is predicted from them. So every record
still decodes on its own, in any order, on any consumer, on the CPU or on NVDEC, and the
pictures come out bit-exact (the decoder sees the references it would see decoding the whole
stream).

Wire layout of the record value (big-endian)::

    b"LTCH" | version u8 (1) | count u16 | count x (pts i64 | size u32 | size bytes)

:class:`GopChain` keeps the current GOP's keyframe and reference pictures at the ingest. It is
bounded (``max_units`` pictures, ``max_bytes`` bytes, so a record stays under the frames topic's
record limit); a GOP that outgrows the bound drops its samples until the next keyframe (policy
``drop-until-keyframe``, counted by the reader), since a chain without its references cannot decode.
"""

from __future__ import annotations

import struct

from stream.packet import MAX_DATA_BYTES, PacketFormatError

MAGIC = b"LTCH"
VERSION = 1
#: Most pictures in one chain (a 10 s GOP at 60 frames/s with every picture a reference).
MAX_UNITS = 600
CHAIN_DROP_POLICY = "drop-until-keyframe"

_HEAD = struct.Struct(">4sBH")
_UNIT = struct.Struct(">qI")

Unit = tuple[int, bytes]


def chain_bytes(units: list[Unit]) -> int:
    """Size of the encoded chain of ``units``."""
    return _HEAD.size + sum(_UNIT.size + len(data) for _, data in units)


def encode_chain(units: list[Unit]) -> bytes:
    """The record value of a chain: ``units`` = ``(pts, access unit)`` in decode order, sample last.

    Raises:
        ValueError: No unit, more than :data:`MAX_UNITS`, or an empty access unit.
    """
    if not 1 <= len(units) <= MAX_UNITS:
        raise ValueError(f"a chain holds 1..{MAX_UNITS} pictures, got {len(units)}")
    parts = [_HEAD.pack(MAGIC, VERSION, len(units))]
    for pts, data in units:
        if not data:
            raise ValueError("a chain picture has no bytes")
        parts += [_UNIT.pack(pts, len(data)), data]
    return b"".join(parts)


def decode_chain(value: bytes) -> list[Unit]:
    """The ``(pts, access unit)`` pairs of a chain record value, in decode order.

    Raises:
        PacketFormatError: The value is not a chain of this version, or its sizes do not add up.
    """
    if len(value) < _HEAD.size:
        raise PacketFormatError(f"chain record of {len(value)} bytes is shorter than its header")
    magic, version, count = _HEAD.unpack_from(value)
    if magic != MAGIC or version != VERSION:
        raise PacketFormatError(f"chain record starts with {magic!r} v{version}, not {MAGIC!r} v{VERSION}")
    if not 1 <= count <= MAX_UNITS:
        raise PacketFormatError(f"chain record names {count} pictures; 1..{MAX_UNITS} are accepted")
    units: list[Unit] = []
    pos = _HEAD.size
    for index in range(count):
        if pos + _UNIT.size > len(value):
            raise PacketFormatError(f"chain record ends inside the header of picture {index} of {count}")
        pts, size = _UNIT.unpack_from(value, pos)
        pos += _UNIT.size
        if size == 0 or pos + size > len(value):
            raise PacketFormatError(f"chain picture {index} of {count} claims {size} bytes; {len(value) - pos} remain")
        units.append((pts, value[pos : pos + size]))
        pos += size
    if pos != len(value):
        raise PacketFormatError(f"chain record has {len(value) - pos} bytes after its {count} pictures")
    return units


class GopChain:
    """The current GOP's keyframe and reference pictures, in decode order, for the next sample.

    Feed every picture with :meth:`push` in decode order; :meth:`chain` gives what the picture just
    pushed needs. Memory: at most ``max_units`` pictures and ``max_bytes`` bytes (policy
    :data:`CHAIN_DROP_POLICY`).

    Args:
        max_units: Most pictures in a chain (the sample included).
        max_bytes: Most bytes of an encoded chain.
    """

    def __init__(self, max_units: int = MAX_UNITS, max_bytes: int = MAX_DATA_BYTES) -> None:
        if not 1 <= max_units <= MAX_UNITS:
            raise ValueError(f"max_units must be within 1..{MAX_UNITS}, got {max_units}")
        self.max_units = max_units
        self.max_bytes = max_bytes
        self._units: list[Unit] = []
        self._bytes = _HEAD.size
        self._last: Unit | None = None
        self._last_kept = False
        self.started = False
        #: The GOP outgrew the bounds: its pictures get no chain until the next keyframe.
        self.overflowed = False

    def push(self, pts: int, data: bytes, keyframe: bool, reference: bool) -> None:
        """The next picture in decode order.

        Args:
            pts: Its presentation timestamp; data: its access unit.
            keyframe: It starts a GOP (earlier pictures are no longer needed).
            reference: Later pictures may be predicted from it, so later samples need it.
        """
        if keyframe:
            self.reset()
            self.started = True
        self._last, self._last_kept = (pts, data), False
        if not self.started or self.overflowed or not (keyframe or reference):
            return
        if self._fits(1, len(data)):
            self._units.append((pts, data))
            self._bytes += _UNIT.size + len(data)
            self._last_kept = True
        else:
            self._overflow()

    def chain(self) -> list[Unit] | None:
        """The pictures that decode the one pushed last (it comes last), or None: no keyframe seen
        yet in this session, or the GOP outgrew the bounds."""
        if self._last is None or not self.started or self.overflowed:
            return None
        if self._last_kept:
            return list(self._units)
        if not self._fits(1, len(self._last[1])):
            return None
        return [*self._units, self._last]

    def reset(self) -> None:
        """A new session: wait for its first keyframe."""
        self._units = []
        self._bytes = _HEAD.size
        self._last, self._last_kept = None, False
        self.started = False
        self.overflowed = False

    def _fits(self, units: int, size: int) -> bool:
        return len(self._units) + units <= self.max_units and self._bytes + units * _UNIT.size + size <= self.max_bytes

    def _overflow(self) -> None:
        self.overflowed = True
        self._units = []
        self._bytes = _HEAD.size
