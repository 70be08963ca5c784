"""Sources: dead URLs fail after the retries, live sources reconnect, stalls are detected, stop works."""

from __future__ import annotations

import http.server
import queue
import threading
from pathlib import Path

import av
import numpy as np
import pytest
from local_ports import free_port
from stream_media import DATA, REAL_VIDEOS

from stream.backoff import Backoff
from stream.clock import FakeClock
from stream.encode import write_video
from stream.errors import LiveTagError, SourceOpenError
from stream.frames import FrameReader
from stream.source import SourceOptions, UnsupportedSourceError, VideoSource, is_live_url, url_scheme


class MidRandom:
    """Jitter draw in the middle of its range, so delays equal the base delays."""

    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2



@pytest.mark.parametrize(
    ("url", "scheme", "live"),
    [
        ("rtmp://host/live/x", "rtmp", True),
        ("RTSP://host:554/x", "rtsp", True),
        ("https://cdn/x/index.m3u8", "https", True),
        ("srt://host:9000", "srt", True),
        ("/videos/a.mp4", "file", False),
        ("file://videos/a.mkv", "file", False),
        ("C:/videos/a.ts", "file", False),
    ],
)
def test_url_scheme_and_liveness(url, scheme, live):
    assert url_scheme(url) == scheme
    assert is_live_url(url) == live


@pytest.mark.parametrize(
    "make_url",
    [
        pytest.param(lambda tmp: f"rtmp://127.0.0.1:{free_port()}/live/x", id="rtmp-closed-port"),
        pytest.param(lambda tmp: f"rtsp://127.0.0.1:{free_port()}/cam", id="rtsp-closed-port"),
        pytest.param(lambda tmp: f"http://127.0.0.1:{free_port()}/live.m3u8", id="hls-closed-port"),
        pytest.param(lambda tmp: str(tmp / "missing.mp4"), id="missing-file"),
        pytest.param(lambda tmp: str(garbage_file(tmp)), id="not-a-video"),
    ],
)
@pytest.mark.parametrize("retries", [0, 3])
def test_dead_url_raises_source_open_error_after_the_retries(tmp_path, make_url, retries):
    url = make_url(tmp_path)
    clock = FakeClock()
    policy = Backoff(initial_s=0.5, factor=2.0, cap_s=1.5, jitter=0.2)
    source = VideoSource(url, SourceOptions(max_retries=retries, backoff=policy, open_timeout_s=3), clock, MidRandom())
    with pytest.raises(SourceOpenError) as info:
        list(source.packets())
    message = str(info.value)
    assert isinstance(info.value, LiveTagError)
    assert url in message and f"after {retries + 1} attempt(s)" in message and "\n" not in message
    assert source.counters.open_failures == retries + 1
    assert source.counters.opens == 0
    # backoff slept on the fake clock: 0.5, 1.0, 1.5 (capped) -- no real waiting
    assert clock.monotonic() == pytest.approx([0.0, 0.0, 0.5, 1.5, 3.0][retries + 1])


def garbage_file(tmp: Path) -> Path:
    path = tmp / "garbage.mp4"
    path.write_bytes(np.random.default_rng(3).bytes(20_000))
    return path


@pytest.mark.parametrize(
    ("name", "width", "height", "fps"),
    [
        ("bottle-detection.mp4", 640, 360, 179 / 6),
        ("again.mkv", 640, 480, 30.0),
        ("car-detection-14s.mp4", 768, 432, 12.5),
    ],
)
def test_source_reports_width_height_fps_and_counts(name, width, height, fps):
    assert name in REAL_VIDEOS
    source = VideoSource(DATA / name, clock=FakeClock())
    assert source.info is None and not source.live
    kept = sum(1 for _ in source.packets(keyframes_only=True))
    info = source.info
    assert info is not None
    assert (info.codec, info.width, info.height) == ("h264", width, height)
    assert info.fps == pytest.approx(fps, rel=1e-3)
    counters = source.counters
    assert counters.keyframes == kept and counters.packets > kept
    assert (counters.opens, counters.reconnects, counters.end_of_streams) == (1, 0, 1)


def test_a_live_source_reconnects_at_end_of_stream_and_keeps_the_sequence(make_clip):
    clip = make_clip("h264", ".mp4", frames=30, fps=10, gop=10)
    clock = FakeClock()
    reader = FrameReader("cam", clip, options=SourceOptions(live=True, backoff=Backoff(0.5, 2, 4, 0)), clock=clock)
    packets = []
    for packet in reader:
        packets.append(packet)
        if len(packets) == 9:  # three sessions of three keyframes
            reader.stop()
    counters = reader.source.counters
    assert (counters.opens, counters.reconnects, counters.end_of_streams) == (3, 2, 2)
    assert [p.sequence for p in packets] == list(range(9))
    assert [p.pts_seconds for p in packets] == [0.0, 1.0, 2.0] * 3
    assert clock.monotonic() == pytest.approx(1.0)  # two reconnect delays of 0.5 s


def test_stop_from_another_thread_ends_a_live_source(make_clip):
    clip = make_clip("h264", ".mp4", frames=30, fps=10, gop=10)
    reader = FrameReader("cam", clip, options=SourceOptions(live=True, backoff=Backoff(0.01, 1, 0.01, 0)))
    seen: queue.Queue[int] = queue.Queue()
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            for packet in reader:
                seen.put(packet.sequence)
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            errors.append(exc)

    worker = threading.Thread(target=consume)
    worker.start()
    for _ in range(7):  # more than one session: it is really reconnecting
        seen.get(timeout=30)
    reader.stop()
    worker.join(timeout=30)
    assert not worker.is_alive() and not errors
    assert reader.source.counters.reconnects >= 2


def test_a_source_without_video_fails_at_once(tmp_path):
    path = tmp_path / "audio.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    source = VideoSource(path, SourceOptions(max_retries=5), FakeClock())
    with pytest.raises(UnsupportedSourceError, match="has no video track"):
        list(source.packets())
    assert source.counters.open_failures == 0


class StallingServer:
    """HTTP server for a TS file: the first response stops part-way and hangs, the second is whole,
    later requests get 404."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.release = threading.Event()
        self.requests = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                server.requests += 1
                if server.requests > 2:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.send_header("Content-Length", str(len(server.payload)))
                self.end_headers()
                if server.requests == 1:
                    self.wfile.write(server.payload[: len(server.payload) * 6 // 10])
                    self.wfile.flush()
                    server.release.wait(30)
                    return
                self.wfile.write(server.payload)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> StallingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/live.ts"


def test_a_stalled_live_source_is_reopened_then_a_dead_one_reported(tmp_path):
    clip = tmp_path / "live.ts"
    frames = [np.random.default_rng(i).integers(0, 255, (96, 128, 3), dtype=np.uint8) for i in range(100)]
    write_video(clip, frames, fps=10, gop=10)
    with StallingServer(clip.read_bytes()) as server:
        reader = FrameReader(
            "cam",
            server.url,
            options=SourceOptions(stall_timeout_s=0.5, open_timeout_s=5, max_retries=0),
            clock=FakeClock(),
        )
        got = []
        with pytest.raises(SourceOpenError, match="404") as info:
            for packet in reader:
                got.append(packet)
    assert server.url in str(info.value)
    counters = reader.source.counters
    assert (counters.stalls, counters.reconnects, counters.end_of_streams, counters.opens) == (1, 1, 1, 2)
    first = [p for p in got if p.sequence < len(got) - 10]
    assert 0 < len(first) < 10  # part of the file before the stall
    assert [round(p.pts_seconds, 1) for p in got[-10:]] == [0.2 + i for i in range(10)]  # the whole file after


def test_a_cut_file_is_reported_instead_of_ending_quietly(tmp_path):
    """An MP4 whose index (moov, first: faststart) declares 5 s but whose data stops after about a
    third: FFmpeg reads what is there and stops without an error; the source raises SourceReadError."""
    from stream.source import SourceReadError

    path = tmp_path / "whole.mp4"
    rng = np.random.default_rng(5)
    frames = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(50)]
    write_video(path, frames, fps=10, gop=10, container_options={"movflags": "faststart"})
    whole = list(VideoSource(str(path)).packets(keyframes_only=True))
    assert len(whole) == 5
    cut = tmp_path / "cut.mp4"
    data = path.read_bytes()
    media = data.find(b"mdat")
    assert 0 < data.find(b"moov") < media, "the index comes first"
    cut.write_bytes(data[: media + (len(data) - media) // 3])
    with pytest.raises(SourceReadError, match="ended at .* of the 5.0 s its header declares"):
        list(VideoSource(str(cut)).packets(keyframes_only=True))
