"""Sampling specs, the max-rate limiter (policy drop-over-rate) and the fps grid."""

from __future__ import annotations

import pytest

from stream.clock import FakeClock
from stream.errors import LiveTagError, SamplingSpecError
from stream.frames import FpsGrid
from stream.sampling import FPS, KEYFRAMES, RateLimiter, SamplingSpec


@pytest.mark.parametrize(
    ("text", "mode", "fps", "max_rate", "quality", "canonical"),
    [
        ("keyframes", KEYFRAMES, None, None, 90, "keyframes"),
        ("fps:2", FPS, 2.0, None, 90, "fps:2"),
        ("keyframes,max_rate=2", KEYFRAMES, None, 2.0, 90, "keyframes,max_rate=2"),
        (" keyframes , max_rate = 0.5 ", KEYFRAMES, None, 0.5, 90, "keyframes,max_rate=0.5"),
        ("fps:5,max_rate=2,quality=80", FPS, 5.0, 2.0, 80, "fps:5,max_rate=2,quality=80"),
        ("fps:0.25", FPS, 0.25, None, 90, "fps:0.25"),
        ("fps:1,transport=chain", FPS, 1.0, None, 90, "fps:1,transport=chain"),
        ("fps:4, transport = jpeg", FPS, 4.0, None, 90, "fps:4"),
    ],
)
def test_parse_valid_specs(text, mode, fps, max_rate, quality, canonical):
    spec = SamplingSpec.parse(text)
    assert (spec.mode, spec.fps, spec.max_rate, spec.jpeg_quality) == (mode, fps, max_rate, quality)
    assert str(spec) == canonical
    assert SamplingSpec.parse(str(spec)) == spec
    assert spec.decodes == (mode == FPS and "chain" not in text)  # a chain is decoded by the consumer


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("frames", "unknown"),
        ("fps", "needs a rate"),
        ("fps:", "needs a rate"),
        ("fps:0", "positive"),
        ("fps:-1", "positive"),
        ("fps:abc", "must be a number"),
        ("fps:inf", "finite"),
        ("keyframes,max_rate", "name=value"),
        ("keyframes,max_rate=0", "positive"),
        ("keyframes,speed=2", "unknown sampling option 'speed'"),
        ("fps:2,quality=101", "1..100"),
        ("fps:2,quality=8.5", "integer"),
        ("fps:2,transport=png", "transport must be one of jpeg, chain"),
        ("keyframes,transport=chain", "transport is for 'fps:N'"),
    ],
)
def test_parse_rejects_bad_specs_with_one_line_errors(text, fragment):
    with pytest.raises(SamplingSpecError) as info:
        SamplingSpec.parse(text)
    assert isinstance(info.value, LiveTagError)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_interval_takes_the_tighter_of_fps_and_max_rate():
    assert SamplingSpec.parse("keyframes").interval_s is None
    assert SamplingSpec.parse("fps:4,max_rate=2").interval_s == pytest.approx(0.5)
    assert SamplingSpec.parse("fps:1,max_rate=2").interval_s == pytest.approx(1.0)


def test_rate_limiter_drops_keyframes_faster_than_max_rate_on_a_fake_clock():
    clock = FakeClock()
    limiter = RateLimiter(interval_s=1 / 2)  # max_rate = 2 per second
    admitted = []
    for _ in range(12):  # a keyframe every 0.25 s for 3 s
        if limiter.admit(clock.monotonic()):
            admitted.append(round(clock.monotonic(), 3))
        clock.advance(0.25)
    assert admitted == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert (limiter.forwarded, limiter.dropped) == (6, 6)
    assert limiter.policy == "drop-over-rate"


def test_rate_limiter_restarts_after_time_goes_backwards_and_passes_all_without_a_rate():
    limiter = RateLimiter(interval_s=1.0)
    assert [limiter.admit(t) for t in (10.0, 10.4, 2.0, 2.5, 3.0)] == [True, False, True, False, True]
    free = RateLimiter(interval_s=None)
    assert all(free.admit(t) for t in (0.0, 0.0, 0.01, 0.02))
    limiter.reset()
    assert limiter.admit(3.1)


@pytest.mark.parametrize(
    ("source_fps", "target_fps", "seconds", "expected"),
    [
        (30.0, 2.0, 10.0, 20),
        (12.5, 2.0, 10.0, 20),
        (25.0, 1.0, 4.0, 4),
        (10.0, 30.0, 2.0, 20),  # target above source: every frame
    ],
)
def test_fps_grid_keeps_the_target_rate(source_fps, target_fps, seconds, expected):
    grid = FpsGrid(target_fps)
    times = [i / source_fps for i in range(int(seconds * source_fps))]
    kept = [t for t in times if grid.admit(t)]
    assert len(kept) == expected
    assert kept[0] == 0.0
