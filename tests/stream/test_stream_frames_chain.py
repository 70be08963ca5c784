"""``fps:N,transport=chain``: the ingest decodes nothing, and every sample's chain decodes, alone and
in any order, to the very picture a decoder of the whole stream gives at that pts."""

from __future__ import annotations

import random
from pathlib import Path

import av
import numpy as np
import pytest
from stream_media import DATA, moving_frames

from stream.decode import PacketDecoder
from stream.encode import write_video
from stream.errors import DecodeError
from stream.frames import FrameReader
from stream.packet import FramePacket
from stream.packet_chain import decode_chain, encode_chain
from stream.sampling import SamplingSpec


def _whole_stream(path: Path) -> dict[int, np.ndarray]:
    """Every picture of ``path`` by pts, from one decoder fed the whole stream."""
    with av.open(str(path)) as container:
        return {f.pts: f.to_ndarray(format="rgb24") for f in container.decode(video=0)}


@pytest.fixture(scope="module")
def bframes_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 s of x264 with two B-frames at 25 frames/s, a keyframe every 2 s, in FLV (as RTMP carries it)."""
    path = tmp_path_factory.mktemp("chain") / "bframes.flv"
    write_video(path, moving_frames(250, height=96, width=128), fps=25.0, gop=50)
    return path


@pytest.mark.parametrize("fps", [1, 4])
def test_each_chain_decodes_alone_to_the_exact_picture_at_its_pts(bframes_clip: Path, fps: int) -> None:
    reader = FrameReader("cam", bframes_clip, SamplingSpec.parse(f"fps:{fps},transport=chain"))
    packets = [FramePacket.from_record(*p.to_record()) for p in reader]
    whole = _whole_stream(bframes_clip)
    assert len(packets) == 10 * fps
    times = [p.pts_seconds for p in packets]
    assert times == sorted(times) and len(decode_chain(packets[0].data)) == 1  # the opening keyframe alone
    assert all(p.chain and p.codec == "h264" and p.extradata for p in packets)
    shuffled = random.Random(0).sample(packets, len(packets))  # records of one stream, in any order
    decoder = PacketDecoder()
    for packet in shuffled:
        assert np.array_equal(decoder.decode(packet), whole[packet.pts]), packet.pts
    # No chain holds a picture that nobody refers to, except its own sample (the last one).
    for packet in packets:
        units = decode_chain(packet.data)
        assert units[-1][0] == packet.pts
        assert len(units) <= 50


def test_the_grid_keeps_its_rate_within_the_reorder_depth(bframes_clip: Path) -> None:
    """Picked in decode order, a sample is at most a few frames after its slot, never before it."""
    reader = FrameReader("cam", bframes_clip, SamplingSpec.parse("fps:4,transport=chain"))
    times = [p.pts_seconds for p in reader]
    slots = [times[0] + k * 0.25 for k in range(len(times))]
    lateness = [t - s for t, s in zip(times, slots, strict=True)]
    assert all(-1e-6 <= late <= 4 / 25 + 1e-6 for late in lateness), lateness
    assert reader.counters.decode_errors == 0 and reader.counters.dropped_chain == 0


def test_a_real_camera_clip_gives_the_same_pictures(tmp_path: Path) -> None:
    clip = DATA / "car-detection-14s.mp4"
    reader = FrameReader("car", clip, SamplingSpec.parse("fps:1,transport=chain"))
    packets = list(reader)
    whole = _whole_stream(clip)
    decoder = PacketDecoder()
    assert len(packets) >= 13
    assert all(np.array_equal(decoder.decode(p), whole[p.pts]) for p in packets)


def test_a_damaged_chain_is_a_decode_error_and_the_next_one_still_decodes(bframes_clip: Path) -> None:
    packets = list(FrameReader("cam", bframes_clip, SamplingSpec.parse("fps:1,transport=chain")))
    good = packets[1]
    units = decode_chain(good.data)
    cut = FramePacket(**{**good.__dict__, "data": encode_chain(units[1:])})  # its keyframe left out
    truncated = FramePacket(**{**good.__dict__, "data": good.data[:-3]})
    decoder = PacketDecoder()
    with pytest.raises(DecodeError, match="decoder reset"):
        decoder.decode(truncated)
    with pytest.raises(DecodeError):
        decoder.decode(cut)
    assert np.array_equal(decoder.decode(good), _whole_stream(bframes_clip)[good.pts])


def test_a_stream_joined_mid_gop_waits_for_its_keyframe(bframes_clip: Path, tmp_path: Path) -> None:
    """The first second of packets (after the opening keyframe) travels on its own: no chain."""
    cut = tmp_path / "mid-gop.h264"
    with av.open(str(bframes_clip)) as source, av.open(str(cut), "w", format="h264") as sink:
        src = source.streams.video[0]
        out = sink.add_stream_from_template(src)
        for index, packet in enumerate(p for p in source.demux(src) if p.size):
            if index >= 25:
                packet.stream = out
                sink.mux(packet)
    reader = FrameReader("cam", cut, SamplingSpec.parse("fps:1,transport=chain"))
    packets = list(reader)
    assert reader.counters.dropped_chain > 0
    assert packets and len(decode_chain(packets[0].data)) == 1  # the first sample is the next keyframe
    decoder = PacketDecoder()
    assert all(decoder.decode(p).shape == (96, 128, 3) for p in packets)
