"""FrameReader: fps sampling to JPEG, max-rate dropping, clock stamps and real-time pacing."""

from __future__ import annotations

import contextlib
import io

import av
import numpy as np
import pytest
from PIL import Image
from stream_media import DATA

from stream.clock import FakeClock
from stream.decode import PacketDecoder
from stream.errors import DecodeError, SamplingSpecError
from stream.frames import FrameReader, iter_frame_packets
from stream.pacing import Pacer
from stream.sampling import SamplingSpec
from stream.source import SourceOptions, UnsupportedSourceError


@pytest.mark.parametrize(
    ("spec", "expected_rate"),
    [("fps:2", 2.0), ("fps:1", 1.0), ("fps:5,max_rate=0.5", 0.5)],
)
def test_fps_sampling_forwards_jpegs_at_the_requested_rate(spec, expected_rate):
    path = DATA / "car-detection-14s.mp4"  # 12.5 fps, 14.4 s
    reader = FrameReader("cam", path, SamplingSpec.parse(spec), clock=FakeClock())
    packets = list(reader)
    duration = 14.4
    assert abs(len(packets) - duration * expected_rate) <= 1
    times = [p.pts_seconds for p in packets]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    frame_s = 1 / 12.5
    assert all(1 / expected_rate - frame_s - 1e-6 <= g <= 1 / expected_rate + frame_s + 1e-6 for g in gaps)
    decoder = PacketDecoder()
    for packet in packets[:3]:
        assert packet.codec == "mjpeg" and packet.extradata == b"" and packet.data[:2] == b"\xff\xd8"
        assert Image.open(io.BytesIO(packet.data)).size == (768, 432)
        assert decoder.decode(packet).shape == (432, 768, 3)
    assert reader.counters.forwarded == len(packets)
    assert reader.counters.decode_errors == 0


def test_fps_at_the_source_rate_forwards_every_frame_including_the_decoder_tail():
    reader = FrameReader("cam", DATA / "car-detection-14s.mp4", SamplingSpec.parse("fps:12.5"))
    packets = list(reader)
    assert len(packets) == reader.source.counters.packets == 180
    assert reader.counters.skipped_fps == 0


def test_keyframes_faster_than_max_rate_are_dropped(make_clip):
    clip = make_clip("h264", ".mp4", frames=100, fps=10, gop=10)  # a keyframe every second for 10 s
    reader = FrameReader("cam", clip, SamplingSpec.parse("keyframes,max_rate=0.5"), clock=FakeClock())
    packets = list(reader)
    assert [p.pts_seconds for p in packets] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert [p.sequence for p in packets] == list(range(5))  # sequence counts forwarded packets only
    assert (reader.counters.forwarded, reader.counters.dropped_rate) == (5, 5)


def test_packets_carry_the_injected_wallclock_and_stream_id(make_clip):
    clock = FakeClock(start=1_800_000_000.0)
    packets = list(iter_frame_packets("seller-42", make_clip("hevc", ".mkv"), "keyframes", clock=clock))
    assert {p.wallclock for p in packets} == {1_800_000_000.0}
    assert {p.stream_id for p in packets} == {"seller-42"}


def test_realtime_pacing_follows_the_stream_clock(make_clip):
    clip = make_clip("h264", ".mp4", frames=40, fps=10, gop=10)  # 4 s
    for speed, expected in ((1.0, 3.9), (2.0, 1.95)):
        clock = FakeClock()
        options = SourceOptions(realtime=True, speed=speed)
        packets = list(iter_frame_packets("cam", clip, "keyframes", options=options, clock=clock))
        assert len(packets) == 4
        assert clock.monotonic() == pytest.approx(expected)  # last frame at 3.9 s of stream time
        assert [p.wallclock - clock.now() for p in packets] == pytest.approx([-expected + i / speed for i in range(4)])


@pytest.mark.parametrize(
    ("times", "speed", "sleeps"),
    [
        ([0.0, 1.0, 2.5], 1.0, [0.0, 1.0, 1.5]),
        ([10.0, 11.0, 12.0], 2.0, [0.0, 0.5, 0.5]),
        ([5.0, 6.0, 1.0, 2.0], 1.0, [0.0, 1.0, 0.0, 1.0]),  # backwards jump re-anchors
    ],
)
def test_pacer_sleeps_on_the_clock(times, speed, sleeps):
    clock = FakeClock()
    pacer = Pacer(clock, speed)
    assert [pacer.wait_until(t) for t in times] == pytest.approx(sleeps)
    with pytest.raises(ValueError):
        Pacer(clock, 0)


def test_bad_sampling_and_unsupported_codecs_fail_clearly(tmp_path):
    with pytest.raises(SamplingSpecError, match="unknown"):
        iter_frame_packets("cam", DATA / "again.mkv", "keyframes,every=3")
    path = tmp_path / "mpeg2.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg2video", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(UnsupportedSourceError, match="'mpeg2video' cannot travel as keyframes"):
        list(iter_frame_packets("cam", path, "keyframes"))
    jpegs = list(iter_frame_packets("cam", path, "fps:5"))  # fps sampling decodes any codec
    assert len(jpegs) >= 4 and {p.codec for p in jpegs} == {"mjpeg"}


def test_damaged_bytes_in_the_middle_of_a_file_lose_only_the_damaged_frames(tmp_path):
    data = bytearray((DATA / "car-detection-14s.mp4").read_bytes())
    start = len(data) // 2
    data[start : start + 150_000] = np.random.default_rng(5).bytes(150_000)
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    reader = FrameReader("cam", damaged, SamplingSpec.parse("fps:12.5"))
    frames = list(reader)
    assert reader.counters.decode_errors > 0
    assert 100 < len(frames) < 180  # the intact frames still arrive
    keyframes = list(iter_frame_packets("cam", damaged, "keyframes"))
    decoder = PacketDecoder()
    decodable = []
    for packet in keyframes:
        with contextlib.suppress(DecodeError):
            decodable.append(decoder.decode(packet).shape)
    assert decodable.count((432, 768, 3)) >= 2


def test_gop_skipper_learns_the_gop_and_skips_only_its_tail() -> None:
    from stream.frames import GopSkipper

    gop = GopSkipper()
    gop.keyframe(0.0)
    gop.sampled(0.0, 1.0, 0.04)
    assert not gop.skipping  # one keyframe: the GOP length is not known yet
    gop.keyframe(2.0)
    gop.sampled(2.0, 3.0, 0.04)
    assert not gop.skipping  # the next slot (3.0) is inside this GOP: keep decoding
    gop.sampled(3.0, 4.0, 0.04)
    assert gop.skipping  # the next slot is the next keyframe's: the rest of the GOP is not needed
    gop.keyframe(4.0)
    assert not gop.skipping
    gop.sampled(6.5, 7.0, 0.04)  # past the expected keyframe (lost or a longer GOP): skip nothing
    assert not gop.skipping


def test_fps_sampling_decodes_only_up_to_the_last_frame_it_needs_in_each_gop(tmp_path) -> None:
    from stream_media import moving_frames

    from stream.encode import write_video

    clip = tmp_path / "gop2s.mp4"
    write_video(clip, moving_frames(200), fps=25.0, gop=50)  # 8 s, a keyframe every 2 s
    reader = FrameReader("cam", clip, SamplingSpec.parse("fps:1"))
    times = [round(float(p.pts * p.time_base), 2) for p in reader]
    assert times == [float(t) for t in range(8)]  # the same frames as decoding everything
    # GOPs 2-4: the 24 frames after the 1 s sample are not decoded (the first GOP teaches the length),
    # but for the few the decoder already held when it gave out that sample (its reorder delay)
    assert 3 * 20 <= reader.counters.skipped_decode <= 3 * 24
    assert reader.counters.decode_errors == 0


@pytest.mark.parametrize(("spec", "skips"), [("fps:1", True), ("fps:4", True), ("fps:25", False)])
def test_fps_sampling_leaves_unwanted_non_reference_pictures_undecoded_and_samples_the_same_frames(
    tmp_path, monkeypatch, spec, skips
) -> None:
    from stream_media import moving_frames

    from stream.encode import write_video

    clip = tmp_path / "bframes.flv"  # x264 with two B-frames, a keyframe every 5 s
    write_video(clip, moving_frames(250), fps=25.0, gop=125)
    reader = FrameReader("cam", clip, SamplingSpec.parse(spec))
    sampled = [(p.pts, p.data) for p in reader]
    monkeypatch.setattr("stream.frames.is_disposable", lambda data, length_size: False)
    everything = FrameReader("cam", clip, SamplingSpec.parse(spec))
    assert sampled == [(p.pts, p.data) for p in everything]  # the same pictures, byte for byte
    assert len(sampled) == 10 * float(spec.split(":")[1])
    assert (reader.counters.skipped_nonref > 0) is skips
    assert everything.counters.skipped_nonref == 0
    assert reader.counters.decode_errors == 0
