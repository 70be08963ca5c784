"""Reads just enough of an H.264 access unit to tell whether any other picture refers to it.

A picture whose slices all carry ``nal_ref_idc == 0`` (x264's non-reference B-frames, the default
of OBS and most desktop encoders) is never used to predict another picture, so a sampler that does
not want it can leave it undecoded without harming the frames after it. Packets come in one of
two layouts:

* AVCC (FLV, MP4, MKV: what RTMP carries): each NAL unit is prefixed by its length in
  ``length_size`` bytes (1, 2 or 4; given by the ``avcC`` extradata's fifth byte);
* Annex B (MPEG-TS, raw ``.h264``): NAL units separated by ``00 00 01`` start codes.
"""

from __future__ import annotations

from collections.abc import Iterator

#: nal_unit_type values that carry a coded slice (1: non-IDR, 5: IDR).
_SLICE_TYPES = frozenset({1, 5})


def avcc_length_size(extradata: bytes) -> int | None:
    """The NAL length-prefix size of an ``avcC`` record, None when the extradata is not one
    (Annex B streams carry SPS/PPS with start codes, or no extradata at all)."""
    if len(extradata) >= 7 and extradata[0] == 1:
        return (extradata[4] & 0x03) + 1
    return None


def nal_headers(data: bytes, length_size: int | None) -> Iterator[int]:
    """The first byte (forbidden bit, ``nal_ref_idc``, ``nal_unit_type``) of each NAL unit in a packet.

    Args:
        data: One packet's payload.
        length_size: AVCC length-prefix size, or None for Annex B start codes.

    Yields:
        Header bytes in stream order; a truncated unit ends the walk.
    """
    if length_size is not None:
        pos = 0
        while pos + length_size < len(data):
            size = int.from_bytes(data[pos : pos + length_size], "big")
            if size <= 0 or pos + length_size + size > len(data):
                return
            yield data[pos + length_size]
            pos += length_size + size
        return
    pos = data.find(b"\x00\x00\x01")
    while pos >= 0 and pos + 3 < len(data):
        yield data[pos + 3]
        pos = data.find(b"\x00\x00\x01", pos + 3)


def is_disposable(data: bytes, length_size: int | None) -> bool:
    """True when the packet holds coded slices and none of them is a reference (``nal_ref_idc`` 0).

    A packet that cannot be parsed, or holds no slice, is not disposable: when in doubt, decode.
    """
    slices = 0
    for header in nal_headers(data, length_size):
        if header & 0x80:  # forbidden_zero_bit set: not H.264 as expected
            return False
        if (header & 0x1F) in _SLICE_TYPES:
            if header & 0x60:
                return False
            slices += 1
    return slices > 0
