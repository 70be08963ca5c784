"""The live age policy: the door counts the time ahead of a frame, the cap keeps it open."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from stage_world import SETTINGS, frame_records, keyframe_packets

from consumers.stage.builder import build_stage
from consumers.stage.frame_age import ALPHA, FrameAge
from stream.clock import FakeClock


def test_off_admits_everything_and_never_calls_a_frame_stale() -> None:
    age = FrameAge(0.0)
    age.observe_queue(100.0)
    assert not age.on and age.admits(0.0, 1e9, place=50) and age.fresh(0.0, 1e9)
    with pytest.raises(ValueError, match="max_age_s"):
        FrameAge(-1.0)


def test_the_door_counts_decode_and_queue_time_and_the_place_in_the_batch() -> None:
    age = FrameAge(1.0)
    assert age.admits(wallclock=0.0, now=1.0) and not age.admits(wallclock=0.0, now=1.01)  # nothing measured: the age alone
    for _ in range(50):  # converge: 0.1 s per decoded frame, 0.2 s queued
        age.observe_decode(0.8, frames=8)
        age.observe_queue(0.2)
    assert age.decode_s == pytest.approx(0.1, abs=1e-3) and age.queue_s == pytest.approx(0.2, abs=1e-3)
    assert age.admits(0.0, 0.69) and not age.admits(0.0, 0.71)  # 0.7 + 0.1 + 0.2 > 1
    assert age.admits(0.0, 0.49, place=2) and not age.admits(0.0, 0.51, place=2)  # two frames decode first
    assert age.fresh(0.0, 1.0) and not age.fresh(0.0, 1.01)  # before the models: the age alone


def test_a_slow_queue_cannot_close_the_door_on_young_frames() -> None:
    age = FrameAge(1.0)
    for _ in range(50):
        age.observe_queue(30.0)  # far slower than the age
    assert age.queue_s > 1.0
    assert age.admits(0.0, 0.5) and not age.admits(0.0, 0.51)  # the time ahead counts at most half the age
    age.observe_queue(0.0)
    assert age.queue_s == pytest.approx(30.0 * (1 - ALPHA), rel=0.01)  # and falls with the load


def test_the_stage_sheds_at_the_door_what_the_queue_would_make_too_old(world: dict[str, Any]) -> None:
    """After batches that waited 1.5 s for the models, a 1.2 s old frame is shed before decoding under
    a 2 s age, while a 0.2 s old one is still decoded."""
    clock = FakeClock(start=1_800_000_000.0)
    stage = build_stage(world["detector"], world["embedder"], world["gallery"],
                        SETTINGS.with_overrides(pipeline__max_frame_age_s=2.0), clock)
    packets = keyframe_packets(world["videos"]["s2"], "s2")
    for k in range(20):
        frames, _ = stage.decode_records(frame_records([replace(packets[k % len(packets)], wallclock=clock.now())]))
        clock.advance(1.5)  # queued behind other batches
        stage.infer_frames(frames)
    assert stage.age.queue_s == pytest.approx(1.5, abs=0.05)
    shed_before = stage.counters.dropped_stale
    old = replace(packets[0], wallclock=clock.now() - 1.2)  # + the capped 1 s ahead > 2 s
    young = replace(packets[1], wallclock=clock.now() - 0.2)
    frames, letters = stage.decode_records(frame_records([old, young]))
    assert stage.counters.dropped_stale == shed_before + 1 and not letters
    assert [f.packet.wallclock for f in frames] == [young.wallclock]
