"""Replay: source naming and checks, real-time pacing on an injected clock, the match printer."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from consumers_media import make_video

from consumers.bus import Record
from consumers.services.embedded import SourceSpec, write_jsonl
from consumers.services.match_printer import format_event
from consumers.services.replay import ReplayInputError, file_frame_source, replay, source_specs
from consumers.settings import ReplaySettings, Settings, SettingsError
from stream.clock import FakeClock
from stream.errors import SourceOpenError
from stream.packet import FramePacket


class CountingStage:
    """A record stage that only counts frames per stream (the models are not under test here)."""

    def __init__(self) -> None:
        self.pts: dict[str, list[float]] = {}
        self.ended: list[str] = []

    def process(self, records: list[Record]) -> list[Record]:
        for r in records:
            packet = FramePacket.from_record(r.key, r.value, r.headers)
            self.pts.setdefault(packet.stream_id, []).append(packet.pts_seconds)
        return []

    def end_streams(self, stream_ids: list[str], end_pts: dict[str, float] | None = None) -> list[Record]:
        self.ended.extend(stream_ids)
        return []


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("replay") / "clip.mp4", ["red", "green"], seconds_each=1.5)


def test_source_specs_names_and_checks(tmp_path: Path, video: Path) -> None:
    specs = source_specs([str(video), str(video), "rtmp://host/live/cam7"], catalog="c1")
    assert [s.stream_id for s in specs] == ["clip", "clip-1", "cam7"]
    assert all(s.catalog == "c1" for s in specs)
    with pytest.raises(ReplayInputError, match="does not exist"):
        source_specs([str(tmp_path / "missing.mp4")])
    with pytest.raises(ReplayInputError, match="is not a file"):
        source_specs([str(tmp_path)])
    with pytest.raises(SettingsError, match="replay.speed"):
        ReplaySettings(speed="fast")
    with pytest.raises(SettingsError, match="replay.sampling"):
        ReplaySettings(sampling="fps:0")


def test_max_speed_replays_every_keyframe(video: Path) -> None:
    stage = CountingStage()
    clock = FakeClock()
    report = replay(stage, source_specs([str(video)]), Settings(), lambda e, _pts: None,
                    clock=clock, progress=False)
    # 3 s at 10 fps, keyframe every 5 frames
    assert stage.pts["clip"] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    assert report.frames_consumed == 6 and stage.ended == ["clip"]
    assert clock.monotonic() == 0.0  # nothing waited


def test_realtime_replay_waits_on_the_injected_clock(video: Path) -> None:
    stage = CountingStage()
    clock = FakeClock()
    replay(stage, source_specs([str(video)]), Settings().with_overrides(replay__speed="realtime"), lambda e, _pts: None,
           clock=clock, progress=False)
    assert len(stage.pts["clip"]) == 6
    # the reader slept until each packet's stream time: the last packet is at 2.9 s
    assert clock.monotonic() == pytest.approx(2.9, abs=0.11)


def test_replay_of_unreadable_sources_is_one_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mkv"
    junk.write_bytes(b"\x1a\x45\xdf\xa3 garbage")
    with pytest.raises(SourceOpenError, match="junk.mkv.*playable video"):
        replay(CountingStage(), source_specs([str(junk)]), Settings(), lambda e, _pts: None, progress=False)


def test_frame_source_honours_stop(video: Path) -> None:
    stop = threading.Event()
    frames = file_frame_source(ReplaySettings())(SourceSpec("clip", str(video)), stop)
    first = next(frames)
    stop.set()
    assert first.stream_id == "clip" and list(frames) == []


def test_jsonl_and_printer(tmp_path: Path) -> None:
    event: dict[str, Any] = {
        "event": "match.ended", "stream_id": "demo", "item_id": "i000123", "score": 2.314, "vote_share": 0.87,
        "segment": {"start": 1.5, "end": 9.25}, "evidence": [{"pts": 9.0}],
    }
    assert format_event(event, 12.0).split()[0] == "12.00s"  # the emitting frame's time wins
    line = format_event(event)
    assert line.split() == ["9.25s", "demo", "ended", "i000123", "score", "2.31", "share", "0.87", "segment",
                            "1.50-9.25s"]
    write, close = write_jsonl(tmp_path / "sub" / "m.jsonl")
    write(event)
    write(event)
    close()
    assert (tmp_path / "sub" / "m.jsonl").read_text().count("\n") == 2
