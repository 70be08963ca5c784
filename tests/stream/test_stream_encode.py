"""The encoder helpers: GOP control, input checks, clip cutting, RTMP push errors."""

from __future__ import annotations

import av
import numpy as np
import pytest
from local_ports import free_port
from stream_media import DATA, demux_keyframe_count, moving_frames

from stream.encode import push_to_rtmp, remux_clip, write_video
from stream.errors import EncodeError, LiveTagError


@pytest.mark.parametrize("codec", ["h264", "hevc", "mpeg4"])
@pytest.mark.parametrize(("frames", "gop", "keyframes"), [(30, 10, 3), (25, 7, 4), (12, 1, 12)])
def test_write_video_places_keyframes_every_gop(tmp_path, codec, frames, gop, keyframes):
    path = tmp_path / f"clip-{codec}.mkv"
    assert write_video(path, moving_frames(frames, 64, 96), fps=12.5, codec=codec, gop=gop) == frames
    assert demux_keyframe_count(path) == (frames, keyframes)


@pytest.mark.parametrize(
    ("frames", "codec", "fragment"),
    [
        ([], "h264", "no frames"),
        (moving_frames(2), "vp8", "cannot encode 'vp8'"),
        ([np.zeros((63, 96, 3), np.uint8)], "h264", "even"),
        ([np.zeros((64, 96, 3), np.float32)], "h264", "uint8"),
        ([np.zeros((64, 96), np.uint8)], "h264", "(H, W, 3)"),
        ([np.zeros((64, 96, 3), np.uint8), np.zeros((32, 96, 3), np.uint8)], "h264", "expected 64x96"),
    ],
)
def test_write_video_rejects_bad_input(tmp_path, frames, codec, fragment):
    with pytest.raises(EncodeError) as info:
        write_video(tmp_path / "bad.mp4", frames, codec=codec)
    assert isinstance(info.value, LiveTagError) and fragment in str(info.value)


def test_remux_clip_cuts_whole_gops_and_keeps_audio(tmp_path):
    out = tmp_path / "cut.mp4"
    assert remux_clip(DATA / "car-detection-14s.mp4", out, end_s=5.0) > 0
    _, keyframes = demux_keyframe_count(out)
    assert keyframes == 2  # cut at the keyframe at 9.6 s: GOPs at 0 and 4.8 s
    with av.open(str(out)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]


def test_push_to_a_closed_rtmp_port_fails_clearly(make_clip):
    port = free_port()
    url = f"rtmp://127.0.0.1:{port}/live/x"
    with pytest.raises(EncodeError, match=f"publishing to {url} failed after 0 packets: Connection refused"):
        push_to_rtmp(make_clip(), url, open_timeout_s=2)
