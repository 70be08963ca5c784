"""Decode chains: the wire layout (and its refusals) and the GOP buffer at the ingest."""

from __future__ import annotations

import struct

import pytest

from stream.packet import FramePacket, PacketFormatError
from stream.packet_chain import MAX_UNITS, GopChain, chain_bytes, decode_chain, encode_chain


def test_a_chain_comes_back_as_it_went_in() -> None:
    units = [(0, b"\x00\x00\x00\x02\x65\x88"), (1536, b"P" * 300), (-512, b"B")]
    value = encode_chain(units)
    assert len(value) == chain_bytes(units)
    assert decode_chain(value) == units


GOOD = encode_chain([(0, b"I" * 10), (512, b"P" * 5)])


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (b"LTC", "shorter than its header"),
        (b"XXXX" + GOOD[4:], "not b'LTCH' v1"),
        (GOOD[:4] + b"\x02" + GOOD[5:], "not b'LTCH' v1"),
        (GOOD[:5] + struct.pack(">H", 0) + GOOD[7:], "names 0 pictures"),
        (GOOD[:5] + struct.pack(">H", MAX_UNITS + 1) + GOOD[7:], f"names {MAX_UNITS + 1} pictures"),
        (GOOD[:5] + struct.pack(">H", 3) + GOOD[7:], "ends inside the header of picture 2 of 3"),
        (GOOD[:-1], "picture 1 of 2 claims 5 bytes; 4 remain"),
        (GOOD + b"\x00", "1 bytes after its 2 pictures"),
        (encode_chain([(0, b"I")])[:7] + struct.pack(">qI", 0, 0), "claims 0 bytes"),
    ],
)
def test_a_malformed_chain_is_refused_with_its_reason(value: bytes, says: str) -> None:
    with pytest.raises(PacketFormatError, match=says):
        decode_chain(value)


def test_encode_refuses_what_decode_would_refuse() -> None:
    with pytest.raises(ValueError, match="1..600"):
        encode_chain([])
    with pytest.raises(ValueError, match="no bytes"):
        encode_chain([(0, b"")])


def test_the_chain_of_a_picture_is_the_keyframe_the_references_since_it_and_the_picture() -> None:
    gop = GopChain()
    gop.push(0, b"I0", keyframe=True, reference=True)
    assert gop.chain() == [(0, b"I0")]
    gop.push(3, b"P3", keyframe=False, reference=True)
    gop.push(1, b"b1", keyframe=False, reference=False)
    assert gop.chain() == [(0, b"I0"), (3, b"P3"), (1, b"b1")]
    gop.push(2, b"b2", keyframe=False, reference=False)
    assert gop.chain() == [(0, b"I0"), (3, b"P3"), (2, b"b2")]  # b1 is nobody's reference
    gop.push(6, b"P6", keyframe=False, reference=True)
    assert gop.chain() == [(0, b"I0"), (3, b"P3"), (6, b"P6")]
    gop.push(9, b"I9", keyframe=True, reference=True)  # a new GOP needs nothing of the last
    assert gop.chain() == [(9, b"I9")]


def test_nothing_before_the_first_keyframe_has_a_chain() -> None:
    gop = GopChain()
    gop.push(3, b"P3", keyframe=False, reference=True)
    assert not gop.started and gop.chain() is None
    gop.push(6, b"I6", keyframe=True, reference=True)
    assert gop.chain() == [(6, b"I6")]
    gop.reset()  # a new session waits for its own keyframe
    gop.push(7, b"P7", keyframe=False, reference=True)
    assert gop.chain() is None


def test_a_gop_over_the_bounds_drops_its_samples_until_the_next_keyframe() -> None:
    gop = GopChain(max_units=3)
    gop.push(0, b"I", keyframe=True, reference=True)
    gop.push(1, b"P", keyframe=False, reference=True)
    gop.push(2, b"b", keyframe=False, reference=False)
    assert gop.chain() == [(0, b"I"), (1, b"P"), (2, b"b")]  # three fit
    gop.push(3, b"P", keyframe=False, reference=True)
    assert gop.chain() == [(0, b"I"), (1, b"P"), (3, b"P")]
    gop.push(4, b"b", keyframe=False, reference=False)
    assert gop.chain() is None and not gop.overflowed  # a fourth picture does not fit in a chain
    gop.push(5, b"P", keyframe=False, reference=True)
    assert gop.chain() is None and gop.overflowed  # nor in the GOP: later pictures lack a reference
    gop.push(7, b"b", keyframe=False, reference=False)
    assert gop.chain() is None
    gop.push(6, b"I", keyframe=True, reference=True)
    assert gop.chain() == [(6, b"I")] and not gop.overflowed
    by_bytes = GopChain(max_bytes=chain_bytes([(0, b"I" * 100)]))
    by_bytes.push(0, b"I" * 100, keyframe=True, reference=True)
    assert by_bytes.chain() == [(0, b"I" * 100)]
    by_bytes.push(1, b"b", keyframe=False, reference=False)
    assert by_bytes.chain() is None  # one byte too many for a record


def test_a_chain_packet_says_so_in_its_headers_and_mjpeg_chains_are_refused() -> None:
    from fractions import Fraction

    packet = FramePacket("cam", "h264", GOOD, b"\x01avc", 512, Fraction(1, 12800), 1.0, 7, keyframe=False, chain=True)
    key, value, headers = packet.to_record()
    assert ("chain", b"1") in headers and ("lt-wire", b"2") in headers
    assert FramePacket.from_record(key, value, headers) == packet
    plain = FramePacket("cam", "h264", b"I", b"", 0, Fraction(1, 25), 1.0, 0)
    assert ("lt-wire", b"1") in plain.to_record()[2] and not FramePacket.from_record(*plain.to_record()).chain
    mjpeg = [(n, b"mjpeg" if n == "codec" else v) for n, v in headers]
    with pytest.raises(PacketFormatError, match="chains carry video codecs"):
        FramePacket.from_record(key, value, mjpeg)
