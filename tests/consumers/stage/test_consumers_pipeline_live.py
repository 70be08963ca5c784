"""The stage live: idle eviction, load shedding of stale frames, bounded latency under overload,
revoked partitions."""

from __future__ import annotations

import threading
from dataclasses import replace
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from stage_world import SETTINGS, bus_of, frame_records, keyframe_packets, produce_keyframes, stage_of

from consumers.bus import Record
from consumers.observability.metrics import PipelineMetrics
from consumers.stage.builder import build_stage
from engines.gallery import GalleryIndex
from stream.clock import FakeClock


@pytest.mark.parametrize("loop_name", ["run_stage_loop", "run_decoupled_loop"])
def test_a_stream_that_stops_ends_its_segment_on_the_idle_timer(world: dict[str, Any], loop_name: str) -> None:
    """No frame arrives after the stream stops; the loop still calls the stage when idle, so the
    voter's idle eviction (injected clock) publishes ``match.ended``."""
    import time

    from consumers.stage import loops as runners

    clock = FakeClock()
    bus, producer = bus_of(clock)
    packets = produce_keyframes(producer, world, "s2")
    stage = stage_of(world, clock)
    stop = threading.Event()
    loop = getattr(runners, loop_name)
    thread = threading.Thread(target=loop, args=(bus.consumer(["frames"], "infer"), producer, stage, stop, SETTINGS.batch))
    thread.start()
    reader = bus.consumer(["matches"], None)
    seen: list[Record] = []

    def kinds() -> list[bytes | None]:
        seen.extend(reader.poll(timeout_s=0.1, max_records=100))
        return [r.header("event") for r in seen]

    try:
        deadline = time.monotonic() + 20
        while stage.counters.frames < packets and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        before = kinds()
        assert before and before[-1] == b"match.started", "the stream's last segment is still open"
        clock.advance(SETTINGS.voter.idle_timeout_s + 1)  # the stream has been silent that long
        deadline = time.monotonic() + 10
        while len(kinds()) == len(before) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert kinds()[len(before):] == [b"match.ended"], "the idle timer ended the open segment"
    finally:
        stop.set()
        thread.join(10)


def test_live_load_shedding_drops_stale_frames_before_the_models_and_counts_them(world: dict[str, Any]) -> None:
    """With ``pipeline.max_frame_age_s``, a frame whose ingest wall clock is older than that is shed
    before decoding (the consumer is behind; the newest frames win): frames in = processed + drops."""
    clock = FakeClock(start=1_800_000_000.0)
    settings = SETTINGS.with_overrides(pipeline__max_frame_age_s=2.0)
    gallery: GalleryIndex = world["gallery"]
    stage = build_stage(world["detector"], world["embedder"], gallery, settings, clock)
    drops: list[tuple[str, str, int]] = []
    stage.on_drop = lambda queue, policy, count: drops.append((queue, policy, count))
    packets = keyframe_packets(world["videos"]["s2"], "s2")
    fresh = [replace(p, wallclock=clock.now() - 0.5) for p in packets[:4]]
    stale = [replace(p, wallclock=clock.now() - 30.0) for p in packets[4:10]]
    outputs = stage.process(frame_records(stale + fresh))
    assert stage.counters.dropped_stale == len(stale) and drops == [("frames", "stale", len(stale))]
    assert stage.counters.frames == len(fresh) and not [r for r in outputs if r.topic == "dlq"]
    off = stage_of(world, clock)  # the default (0) never drops: replays and evaluation
    off.process(frame_records(stale))
    assert off.counters.dropped_stale == 0 and off.counters.frames == len(stale)


class _SlowDetector:
    """The tiny detector, costing ``seconds_per_frame`` of the fake clock per frame (a loaded machine)."""

    def __init__(self, inner: Any, clock: FakeClock, seconds_per_frame: float) -> None:
        self.inner, self.clock, self.cost = inner, clock, seconds_per_frame
        self.spec = inner.spec

    def detect(self, images: list[np.ndarray]) -> Any:
        self.clock.advance(self.cost * len(images))
        return self.inner.detect(images)


@pytest.mark.parametrize(("max_age", "bounded"), [(2.0, True), (0.0, False)])
def test_twice_overloaded_latency_stays_bounded_by_shedding(world: dict[str, Any], max_age: float, bounded: bool) -> None:
    """Frames arrive every 0.1 s and cost 0.2 s each (2x overload, simulated time, 30 s). With
    ``max_frame_age_s`` = 2 the age of every frame that reaches the models stays under 2 s and the
    rest are counted drops; without it the age grows with the backlog."""
    clock = FakeClock(start=1_800_000_000.0)
    settings = SETTINGS.with_overrides(pipeline__max_frame_age_s=max_age)
    stage = build_stage(_SlowDetector(world["detector"], clock, 0.2), world["embedder"], world["gallery"], settings, clock)
    ages: list[float] = []
    infer = stage.infer_frames

    def timed(frames: Any) -> list[Record]:
        ages.extend(clock.now() - f.packet.wallclock for f in frames)
        return infer(frames)

    stage.infer_frames = timed  # type: ignore[method-assign]
    bus, producer = bus_of(clock)
    consumer = bus.consumer(["frames"], "infer")
    source = keyframe_packets(world["videos"]["s2"], "s2")
    start, total, sent = clock.now(), 300, 0
    while True:
        while sent < total and start + 0.1 * sent <= clock.now():  # what has arrived by now
            packet = replace(source[sent % len(source)], pts=sent * 900, time_base=Fraction(1, 9000),
                             wallclock=start + 0.1 * sent, sequence=sent)
            producer.produce("frames", *packet.to_record())
            sent += 1
        records = consumer.poll(timeout_s=0, max_records=4)
        if records:
            stage.process(records)
        elif sent == total:
            break
        else:
            clock.advance(0.05)
    assert len(ages) + stage.counters.dropped_stale + stage.counters.dead_letters == total
    if bounded:
        assert max(ages) <= max_age and stage.counters.dropped_stale > total // 3
    else:
        assert max(ages) > 20.0 and stage.counters.dropped_stale == 0


def test_revoked_partitions_end_their_streams_open_segments(world: dict[str, Any]) -> None:
    """On revoke, the old owner publishes ``match.ended`` for the streams whose frames came from the
    revoked partitions (and only those), so the new owner's segment does not overlap an open one."""
    clock = FakeClock()
    stage = stage_of(world, clock)
    s2 = [Record("frames", *p.to_record(), 0, i) for i, p in enumerate(keyframe_packets(world["videos"]["s2"], "s2"))]
    s1 = [Record("frames", *p.to_record(), 1, i) for i, p in enumerate(keyframe_packets(world["videos"]["s1"], "s1"))]
    outputs = stage.process(s2 + s1)
    opened = {r.key for r in outputs if r.header("event") == b"match.started"}
    assert opened == {b"s1", b"s2"}
    ended = stage.revoke({("frames", 0)})
    assert [(r.key, r.header("event")) for r in ended] == [(b"s2", b"match.ended")]
    assert stage.revoke({("frames", 0)}) == [], "a stream is ended once"
    assert stage.voter.current("s1") is not None and stage.voter.current("s2") is None


def test_frames_of_a_revoked_partition_still_queued_are_not_analysed(world: dict[str, Any]) -> None:
    """A decoded batch that waited while its partition was revoked opens no segment here: the
    partition's new owner processes those frames (this consumer's commit for them is refused)."""
    clock = FakeClock()
    stage = stage_of(world, clock)
    s1 = [Record("frames", *p.to_record(), 1, i) for i, p in enumerate(keyframe_packets(world["videos"]["s1"], "s1"))]
    frames, letters = stage.decode_records(s1)
    assert letters == [] and frames
    stage.revoke({("frames", 1)})
    assert stage.infer_frames(frames) == []
    assert stage.counters.skipped_revoked == len(frames) and all(f.shed for f in frames)
    assert stage.voter.current("s1") is None
    stage.assign({("frames", 1)})
    fresh, _ = stage.decode_records(s1)
    outputs = stage.infer_frames(fresh)
    assert any(r.header("event") == b"match.started" for r in outputs), "assigned again: its frames count"


class _TwoBoxDetector:
    """The tiny detector's spec, two fixed boxes per frame: a small one at the left edge (a rack
    garment) that the sold head prefers, and a large one on the centre line (the presenter's)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.spec = inner, inner.spec

    def detect(self, images: list[np.ndarray]) -> Any:
        from engines.types import Detections

        out = []
        for image in images:
            w, h = image.shape[1], image.shape[0]
            boxes = np.array([[0, 0, w * 0.2, h * 0.3], [w * 0.3, h * 0.1, w * 0.7, h * 0.9]], np.float32)
            classes = len(self.inner.spec.classes)
            out.append(Detections(boxes, np.array([0.9, 0.9], np.float32),
                                  np.full((2, classes), 1.0 / classes, np.float32), np.array([0.9, 0.6], np.float32)))
        return out


@pytest.mark.parametrize("prior", [True, False])
def test_the_presentation_prior_weighs_the_edge_box_below_the_centred_one(world: dict[str, Any], prior: bool) -> None:
    """With ``pipeline.presentation_prior`` (the default) the small edge box's hits carry a prior
    under 1 and the large centred box keeps 1; with it off, both keep 1 (motion is off here)."""
    clock = FakeClock()
    settings = SETTINGS.with_overrides(pipeline__presentation_prior=prior, pipeline__motion_window_s=0.0)
    seen: list[list[Any]] = []
    stage = build_stage(_TwoBoxDetector(world["detector"]), world["embedder"], world["gallery"], settings, clock,
                        observer=lambda stream, pts, hits: seen.append(hits))
    stage.process(frame_records(keyframe_packets(world["videos"]["s1"], "s1")[:2]))
    assert len(seen) == 2
    for hits in seen:
        by_box = {round(h.frame_box[0]): h.prior for h in hits}
        assert len(by_box) == 2
        edge, centre = by_box[0], by_box[min(k for k in by_box if k > 0)]
        assert centre == pytest.approx(1.0)
        if prior:
            assert 0.0 < edge < 0.5  # a quarter of the size side, far off the centre line
        else:
            assert edge == pytest.approx(1.0)


class _LeftIsPerson:
    """Person masks that put the presenter on the left edge box (a stand-in segmenter; the real one
    is tested in tests/engines)."""

    def __init__(self) -> None:
        self.calls = 0

    def coverage(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.array([0.9 if box[0] < image.shape[1] * 0.1 else 0.0 for box in boxes], np.float32)


@pytest.mark.parametrize("person_cue", [True, False])
def test_the_person_term_follows_the_mask_and_its_setting(world: dict[str, Any], person_cue: bool) -> None:
    """With ``pipeline.person_cue`` the stage's person masks enter the prior: the small edge box the
    mask puts on the presenter keeps its vote and the centred box off every person loses it. With
    the cue off the stage asks no mask, even of one it is given."""
    clock = FakeClock()
    settings = SETTINGS.with_overrides(pipeline__person_cue=person_cue, pipeline__motion_window_s=0.0)
    person = _LeftIsPerson()
    seen: list[list[Any]] = []
    metrics = PipelineMetrics(CollectorRegistry(), clock=clock)
    stage = build_stage(_TwoBoxDetector(world["detector"]), world["embedder"], world["gallery"], settings, clock,
                        observer=lambda stream, pts, hits: seen.append(hits), person=person,
                        metrics=metrics)
    stage.process(frame_records(keyframe_packets(world["videos"]["s1"], "s1")[:2]))
    for hits in seen:
        by_box = {round(h.frame_box[0]): h.prior for h in hits}
        edge, centre = by_box[0], by_box[min(k for k in by_box if k > 0)]
        if person_cue:
            assert edge == pytest.approx(1.0) and centre == pytest.approx(0.0)
        else:
            assert centre == pytest.approx(1.0) and edge < 0.5
    assert person.calls == (2 if person_cue else 0)
    timed = metrics.registry.get_sample_value("livetag_stage_latency_seconds_count", {"stage": "person"})
    assert timed == (2 if person_cue else None)  # timed like the other model calls
