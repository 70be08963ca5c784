"""A real RTMP round trip: nginx-rtmp on a free port, a realtime push, the reconnecting source reads it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from rtmp_server import RtmpServer
from stream_media import moving_frames

from stream.backoff import Backoff
from stream.decode import PacketDecoder
from stream.encode import push_to_rtmp, write_video
from stream.frames import FrameReader
from stream.packet import FramePacket
from stream.source import SourceOptions

pytestmark = [
    pytest.mark.rtmp,
    pytest.mark.skipif(not RtmpServer.available(), reason="needs Debian's nginx with libnginx-mod-rtmp"),
]


def wait_for(condition, timeout_s: float = 20.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout_s`` passes (a liveness guard, not a timing check)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_rtmp_publish_play_and_reconnect_after_the_publisher_returns(tmp_path: Path):
    clip = tmp_path / "clip.mp4"
    write_video(clip, moving_frames(75, 120, 160), fps=25, gop=25)  # 3 s, a keyframe every second
    with RtmpServer.start(tmp_path / "nginx") as server:
        url = server.url("live", "seller-7")
        options = SourceOptions(stall_timeout_s=1.5, open_timeout_s=15, backoff=Backoff(0.1, 2.0, 1.0, 0.1))
        reader = FrameReader("seller-7", url, options=options)
        got: list[FramePacket] = []
        errors: list[BaseException] = []

        def consume() -> None:
            try:
                got.extend(reader)
            except BaseException as exc:  # noqa: BLE001 - reported to the test thread
                errors.append(exc)

        worker = threading.Thread(target=consume)
        worker.start()
        try:
            assert push_to_rtmp(clip, url) == 75
            assert wait_for(lambda: reader.source.counters.stalls >= 1), server.error_log()[-2000:]
            first_session = len(got)
            assert push_to_rtmp(clip, url) == 75  # the publisher comes back
            assert wait_for(lambda: len(got) >= first_session + 2), server.error_log()[-2000:]
        finally:
            reader.stop()
            worker.join(timeout=30)
    assert not worker.is_alive() and not errors, errors
    counters = reader.source.counters
    assert counters.reconnects >= 1 and counters.opens >= 2
    assert first_session >= 2  # keyframes at 0, 1, 2 s; nginx starts players on a keyframe
    assert reader.info is not None and (reader.info.width, reader.info.height) == (160, 120)
    assert [p.sequence for p in got] == list(range(len(got)))
    decoder = PacketDecoder()
    for packet in got:
        assert packet.codec == "h264" and packet.extradata[:1] == b"\x01"  # avcC from the FLV header
        frame = PacketDecoder().decode(FramePacket.from_record(*packet.to_record()))
        assert frame.shape == (120, 160, 3)
        assert decoder.decode(packet).shape == (120, 160, 3)
