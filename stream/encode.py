"""Write short videos from numpy frames and push a file to an RTMP server in real time.

Used by tests and tools: ``write_video`` makes H.264 / HEVC / MPEG-4 Part 2 files with a chosen GOP,
``push_to_rtmp`` plays a file into ``rtmp://host:port/app/name`` the way a broadcaster would.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.stream import VideoStream

from stream.clock import Clock, SystemClock
from stream.errors import EncodeError
from stream.pacing import Pacer

# codec name -> (PyAV encoder, extra encoder options)
ENCODERS: dict[str, tuple[str, dict[str, str]]] = {
    "h264": ("libx264", {"preset": "veryfast", "tune": "zerolatency"}),
    "hevc": ("libx265", {"preset": "ultrafast", "x265-params": "log-level=error"}),
    "mpeg4": ("mpeg4", {}),
}


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float = 25.0,
    codec: str = "h264",
    gop: int = 25,
    bitrate: int | None = None,
    container_options: Mapping[str, str] | None = None,
    b_frames: int = 2,
) -> int:
    """Encode RGB frames into a video file; the container follows the suffix (.mp4 .mkv .ts .flv).

    Args:
        path: Output file.
        frames: RGB uint8 arrays of one shape (H, W, 3); H and W even.
        fps: Frame rate.
        codec: ``h264``, ``hevc`` or ``mpeg4``.
        gop: Keyframe interval in frames (no scene-cut keyframes, so the count is predictable).
        bitrate: Target bits per second; None keeps the encoder's default quality mode.
        container_options: Muxer options, e.g. ``{"movflags": "faststart"}`` (the MP4 index first).
        b_frames: Most consecutive B-frames (H.264 and HEVC; MPEG-4 Part 2 never uses them here);
            0 gives a stream whose pictures come out of a decoder as soon as they are sent.

    Returns:
        Number of frames written.

    Raises:
        EncodeError: Unknown codec, no frames, or frames of the wrong shape.
    """
    if codec not in ENCODERS:
        raise EncodeError(f"cannot encode {codec!r}; use one of {', '.join(ENCODERS)}")
    if gop < 1:
        raise EncodeError(f"gop must be >= 1, got {gop}")
    if b_frames < 0:
        raise EncodeError(f"b_frames must be >= 0, got {b_frames}")
    encoder, options = ENCODERS[codec]
    options = dict(options)
    if codec == "h264":
        options["x264-params"] = f"keyint={gop}:min-keyint={gop}:scenecut=0"
    elif codec == "hevc":
        options["x265-params"] += f":keyint={gop}:min-keyint={gop}:scenecut=0"
    else:
        options["sc_threshold"] = "1000000000"  # no scene-change keyframes
    rate = Fraction(fps).limit_denominator(1001)
    path = Path(path)
    count = 0
    with av.open(str(path), "w", options=dict(container_options or {})) as container:
        stream: VideoStream | None = None
        for frame in frames:
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise EncodeError(f"frames must be uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
            if stream is None:
                height, width = frame.shape[:2]
                if height % 2 or width % 2:
                    raise EncodeError(f"frame size must be even, got {width}x{height}")
                new_stream = container.add_stream(encoder, rate=rate, options=options)
                assert isinstance(new_stream, VideoStream)
                stream = new_stream
                stream.width, stream.height = width, height
                stream.pix_fmt = "yuv420p"
                stream.codec_context.gop_size = gop
                stream.codec_context.max_b_frames = 0 if codec == "mpeg4" else b_frames
                if bitrate:
                    stream.codec_context.bit_rate = bitrate
            elif frame.shape[:2] != (stream.height, stream.width):
                raise EncodeError(f"frame {count} has shape {frame.shape}, expected {stream.height}x{stream.width}")
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            video_frame.pts = count
            video_frame.time_base = 1 / rate
            container.mux(stream.encode(video_frame))
            count += 1
        if stream is None:
            raise EncodeError(f"no frames given for {path}")
        container.mux(stream.encode(None))
    return count


def push_to_rtmp(
    source: str | Path,
    url: str,
    clock: Clock | None = None,
    speed: float = 1.0,
    stop: threading.Event | None = None,
    open_timeout_s: float = 10.0,
) -> int:
    """Remux a file's video track to FLV over ``rtmp://`` paced at ``speed`` x real time.

    Args:
        source: A local video file with H.264 video (any container PyAV reads).
        url: ``rtmp://host:port/app/stream``.
        clock: Paces the packets; the system clock by default.
        speed: 1.0 = real time; larger is faster.
        stop: Set from another thread to end the push early.
        open_timeout_s: Seconds to wait for the server to accept the connection.

    Returns:
        Number of video packets sent.

    Raises:
        EncodeError: The file has no video or the server cannot be reached.
    """
    pacer = Pacer(clock or SystemClock(), speed)
    sent = 0
    with av.open(str(source)) as inp:
        if not inp.streams.video:
            raise EncodeError(f"{source} has no video track to push")
        in_stream = inp.streams.video[0]
        try:
            out = av.open(url, "w", format="flv", timeout=(open_timeout_s, open_timeout_s))
            with out:  # FFmpeg connects when the header is written, at the first packet
                out_stream = out.add_stream_from_template(in_stream)
                for packet in inp.demux(in_stream):
                    if stop is not None and stop.is_set():
                        break
                    if packet.dts is None or packet.size == 0 or packet.time_base is None:
                        continue
                    pacer.wait_until(float(packet.dts * packet.time_base))
                    packet.stream = out_stream
                    out.mux(packet)
                    sent += 1
        except (av.FFmpegError, OSError) as exc:
            reason = " ".join(str(getattr(exc, "strerror", None) or exc).split())
            raise EncodeError(f"publishing to {url} failed after {sent} packets: {reason}") from exc
    return sent


def remux_clip(source: str | Path, dest: str | Path, end_s: float) -> int:
    """Copy the packets of every audio and video track before ``end_s`` seconds, without re-encoding.

    The cut is at the first video keyframe at or after ``end_s``, so the clip ends on a whole GOP.

    Args:
        source: Input video file.
        dest: Output file; the container follows its suffix.
        end_s: Stream time in seconds where the clip ends.

    Returns:
        Number of packets written.
    """
    written = 0
    with av.open(str(source)) as inp, av.open(str(dest), "w") as out:
        tracks = [s for s in inp.streams if s.type in ("video", "audio")]
        mapping = {s.index: out.add_stream_from_template(s) for s in tracks}
        video_done = False
        for packet in inp.demux(tracks):
            if packet.dts is None or packet.size == 0 or packet.time_base is None:
                continue
            t = float(packet.dts * packet.time_base)
            is_video = packet.stream.type == "video"
            if is_video and packet.is_keyframe and t >= end_s - 1e-6:
                video_done = True
            if (is_video and video_done) or (not is_video and t >= end_s):
                continue
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)
            written += 1
    return written
