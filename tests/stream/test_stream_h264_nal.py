"""H.264 NAL headers: which packets no other picture refers to, in AVCC and Annex B layouts."""

from __future__ import annotations

import av
import pytest
from stream_media import moving_frames

from stream.encode import write_video
from stream.h264_nal import avcc_length_size, is_disposable, nal_headers

SEI, NONREF_SLICE, REF_SLICE, IDR = 0x06, 0x01, 0x41, 0x65  # nal_ref_idc in bits 5-6, type in bits 0-4


def _avcc(*units: bytes, size: int = 4) -> bytes:
    return b"".join(len(u).to_bytes(size, "big") + u for u in units)


def _annexb(*units: bytes) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + u for u in units)


@pytest.mark.parametrize(
    ("units", "disposable"),
    [
        ([bytes([NONREF_SLICE, 0x9A, 0x10])], True),
        ([bytes([SEI, 0x05, 0x80]), bytes([NONREF_SLICE, 0x9A])], True),  # SEI does not count as a slice
        ([bytes([NONREF_SLICE, 0x9A]), bytes([REF_SLICE, 0x9A])], False),  # one reference slice keeps it
        ([bytes([IDR, 0x88, 0x84])], False),
        ([bytes([SEI, 0x05])], False),  # no slice at all: decode it
        ([bytes([0x81, 0x9A])], False),  # forbidden bit set: not H.264 as expected
    ],
)
def test_a_packet_is_disposable_only_when_every_slice_is_non_reference(units, disposable) -> None:
    assert is_disposable(_avcc(*units), 4) is disposable
    assert is_disposable(_avcc(*units, size=2), 2) is disposable
    assert is_disposable(_annexb(*units), None) is disposable


def test_truncated_or_empty_packets_are_never_disposable() -> None:
    whole = _avcc(bytes([NONREF_SLICE, 0x9A, 0x10]))
    assert list(nal_headers(whole[:-1], 4)) == []  # the length says more than the packet holds
    assert not is_disposable(whole[:-1], 4)
    assert not is_disposable(b"", 4) and not is_disposable(b"", None)
    assert list(nal_headers(_avcc(b"\x06\x05", b"\x01\x9a") + b"\x00\x00", 4)) == [0x06, 0x01]


def test_avcc_length_size_reads_the_avcc_record_and_refuses_annex_b() -> None:
    assert avcc_length_size(bytes([1, 0x64, 0, 0x1F, 0xFF, 0xE1, 0])) == 4
    assert avcc_length_size(bytes([1, 0x64, 0, 0x1F, 0xFD, 0xE1, 0])) == 2
    assert avcc_length_size(b"\x00\x00\x00\x01\x67\x64") is None
    assert avcc_length_size(b"") is None


@pytest.mark.parametrize("suffix", [".flv", ".mp4", ".ts"])
def test_x264_b_frames_are_partly_disposable_and_keyframes_never(tmp_path, suffix) -> None:
    clip = tmp_path / f"clip{suffix}"
    write_video(clip, moving_frames(60), fps=25.0, gop=30)  # x264 with two B-frames, as broadcasters send
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        length_size = avcc_length_size(bytes(stream.codec_context.extradata or b""))
        assert (length_size is None) == (suffix == ".ts")
        packets = [(p.is_keyframe, is_disposable(bytes(p), length_size)) for p in container.demux(stream) if p.size]
    assert len(packets) == 60
    assert not any(disposable for keyframe, disposable in packets if keyframe)
    assert 0.25 <= sum(disposable for _, disposable in packets) / 60 <= 0.6  # the B-pyramid's middle one is a reference
