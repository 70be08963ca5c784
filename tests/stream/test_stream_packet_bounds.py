"""Frame packet records at the boundary: bounds table-driven, then a property-based fuzz (0 crashes:
every record either parses to a bounded packet or raises PacketFormatError)."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.packet import MAX_DATA_BYTES, MAX_SECONDS, FramePacket, PacketFormatError

GOOD = FramePacket("s1", "h264", b"\x00\x00\x00\x01\x65", b"", 9000, Fraction(1, 90000), 1.7e9, 3)


def _headers(**changes: bytes) -> list[tuple[str, bytes]]:
    headers = dict(GOOD.to_record()[2])
    headers.update(changes)
    return list(headers.items())


def test_a_good_packet_round_trips() -> None:
    key, value, headers = GOOD.to_record()
    assert FramePacket.from_record(key, value, headers) == GOOD


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"pts": b"1" + b"0" * 400}, "headers too long: pts"),  # the 10^400 poison pill
        ({"pts": b"1" + b"0" * 40}, "pts is out of range"),
        ({"pts": b"1e400"}, "malformed header"),
        ({"wallclock": b"-inf"}, "wallclock"),
        ({"wallclock": b"nan"}, "wallclock"),
        ({"wallclock": b"1e300"}, "wallclock"),
        ({"time_base": b"0/1"}, "time_base"),
        ({"time_base": b"1/0"}, "malformed header"),
        ({"time_base": b"-1/25"}, "time_base"),
        ({"time_base": b"1/99999999999"}, "time_base"),
        ({"sequence": b"-1"}, "sequence"),
        ({"codec": b"concat"}, "codec"),
        ({"pts": b"9" * 100}, "too long"),
        ({"extradata": b"x" * (64 * 1024 + 1)}, "extradata"),
    ],
)
def test_out_of_bounds_headers_are_refused(changes: dict[str, bytes], reason: str) -> None:
    with pytest.raises(PacketFormatError, match=reason):
        FramePacket.from_record(b"s1", b"data", _headers(**changes))


def test_sizes_are_bounded() -> None:
    with pytest.raises(PacketFormatError, match="at most"):
        FramePacket.from_record(b"s1", b"x" * (MAX_DATA_BYTES + 1), _headers())
    with pytest.raises(PacketFormatError, match="stream id"):
        FramePacket.from_record(b"s" * 201, b"x", _headers())


HEADER_NAMES = st.sampled_from(["codec", "pts", "time_base", "wallclock", "sequence", "keyframe", "extradata", "other"])
TEXTS = st.one_of(
    st.binary(max_size=40),
    st.integers(min_value=-(10**30), max_value=10**30).map(lambda n: str(n).encode()),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda f: repr(f).encode()),
    st.tuples(st.integers(-5, 10**10), st.integers(-5, 10**10)).map(lambda t: f"{t[0]}/{t[1]}".encode()),
    st.sampled_from([b"h264", b"hevc", b"mjpeg", b"mpeg4", b"1/90000", b"0", b"1"]),
)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    key=st.one_of(st.none(), st.binary(max_size=220)),
    value=st.one_of(st.none(), st.binary(max_size=64)),
    headers=st.lists(st.tuples(HEADER_NAMES, TEXTS), max_size=10),
)
def test_fuzzed_frame_records_parse_or_raise_the_format_error(
    key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
) -> None:
    try:
        packet = FramePacket.from_record(key, value, headers)
    except PacketFormatError:
        return
    assert math.isfinite(packet.pts_seconds) and abs(packet.pts_seconds) <= MAX_SECONDS
    assert math.isfinite(packet.wallclock) and packet.sequence >= 0


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    pts=st.integers(min_value=-(10**20), max_value=10**20),
    num=st.integers(1, 10**9),
    den=st.integers(1, 10**9),
    wallclock=st.floats(0, 1e10),
)
def test_fuzzed_valid_headers_give_finite_times(pts: int, num: int, den: int, wallclock: float) -> None:
    headers = _headers(pts=str(pts).encode(), time_base=f"{num}/{den}".encode(), wallclock=repr(wallclock).encode())
    try:
        packet = FramePacket.from_record(b"s1", b"x", headers)
    except PacketFormatError as exc:
        assert "pts is out of range" in str(exc)
        return
    assert math.isfinite(packet.pts_seconds)
