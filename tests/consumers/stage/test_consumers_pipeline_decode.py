"""The stage's decoding: decoder settings, parallel decode workers, newest-frame-wins, the split
loop, frames scaled in the decoder."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from stage_world import SETTINGS, bus_of, frame_records, keyframe_packets, stage_of

from consumers.bus import Record
from consumers.messages.dead_letter import DeadLetter
from consumers.stage.builder import build_stage
from consumers.stage.loops import run_consumer_loop
from consumers.stage.motion_cue import thumbnail
from stream.clock import FakeClock


def test_the_stage_decodes_with_the_decoder_settings(world: dict[str, Any]) -> None:
    settings = SETTINGS.with_overrides(pipeline__decoder_threads=2, pipeline__skip_loop_filter=True)
    stage = build_stage(world["detector"], world["embedder"], world["gallery"], settings, FakeClock())
    try:
        assert stage.models.decoder.threads == 2 and stage.models.decoder.skip_loop_filter is True
        packet = keyframe_packets(world["videos"]["s1"], "s1")[0]
        frames, letters = stage.decode_records([Record("frames", *packet.to_record())])
        assert letters == [] and frames[0].image.ndim == 3
    finally:
        stage.close()


def test_decode_workers_decode_a_batch_in_parallel_like_one_thread(world: dict[str, Any]) -> None:
    """Several streams' frames decode on the decode threads: the same pixels, the same order, the
    same events, and a frame that does not decode is a dead letter in its place."""
    s1 = frame_records(keyframe_packets(world["videos"]["s1"], "s1"))
    s2 = frame_records(keyframe_packets(world["videos"]["s2"], "s2"))
    bad = Record("frames", s1[0].key, b"\x00\x00\x00\x01\x65" + bytes(range(256)) * 4, s1[0].headers)
    batch = [r for pair in zip(s1, s2, strict=False) for r in pair] + [bad]
    serial = stage_of(world, FakeClock())
    parallel = build_stage(world["detector"], world["embedder"], world["gallery"],
                           SETTINGS.with_overrides(pipeline__decode_workers=4), FakeClock())
    try:
        assert parallel.models._decode_pool is not None and serial.models._decode_pool is None
        one, one_letters = serial.decode_records(batch)
        many, many_letters = parallel.decode_records(batch)
        assert [f.record for f in many] == [f.record for f in one] and len(many) == len(batch) - 1
        assert all(np.array_equal(a.image, b.image) for a, b in zip(one, many, strict=True))
        assert len(many_letters) == len(one_letters) == 1
        assert DeadLetter.from_record(many_letters[0]).stage == "decode"
        events = [(r.key, r.header("event")) for r in serial.infer_frames(one)]
        assert events and [(r.key, r.header("event")) for r in parallel.infer_frames(many)] == events
    finally:
        serial.close()
        parallel.close()


def test_newest_frame_wins_decodes_only_each_streams_last_frame_of_a_batch(world: dict[str, Any]) -> None:
    """A consumer behind live streams analyses each stream's newest frame; the others are counted drops."""
    s1 = frame_records(keyframe_packets(world["videos"]["s1"], "s1"))[:3]
    s2 = frame_records(keyframe_packets(world["videos"]["s2"], "s2"))[:2]
    batch = [s1[0], s2[0], s1[1], s2[1], s1[2]]
    drops: list[tuple[str, str, int]] = []
    live = build_stage(world["detector"], world["embedder"], world["gallery"],
                      SETTINGS.with_overrides(pipeline__newest_frame_wins=True), FakeClock())
    live.on_drop = lambda queue, reason, count: drops.append((queue, reason, count))
    replaying = stage_of(world, FakeClock())
    try:
        frames, letters = live.decode_records(batch)
        assert letters == [] and [f.record for f in frames] == [s2[1], s1[2]]
        assert live.counters.superseded == 3 and drops == [("frames", "superseded", 3)]
        assert live.counters.records == 5  # consumed (and so committed) all the same
        everything, _ = replaying.decode_records(batch)
        assert len(everything) == 5 and replaying.counters.superseded == 0
    finally:
        live.close()
        replaying.close()


@pytest.mark.parametrize(("decoupled", "expected"), [(True, "decode_records"), (False, "process")])
def test_the_one_loop_splits_decoding_from_inference_when_the_stage_can(decoupled: bool, expected: str) -> None:
    calls: list[str] = []

    class Split:
        def process(self, records: Any) -> list[Record]:
            calls.append("process")
            return []

        def decode_records(self, records: Any) -> tuple[list[Any], list[Record]]:
            calls.append("decode_records")
            return [], []

        def infer_frames(self, frames: Any) -> list[Record]:
            return []

    bus, producer = bus_of(FakeClock())
    producer.produce("frames", b"s1", b"x", [])
    stop = threading.Event()
    stop.set()
    counters = run_consumer_loop(bus.consumer(["frames"], "infer"), bus.producer(), Split(), stop, SETTINGS.batch,
                                 decoupled=decoupled)
    assert counters.consumed == 1 and calls == [expected]


def test_frames_scaled_in_the_decoder_detect_like_frames_resized_by_the_engine(world: dict[str, Any]) -> None:
    records = frame_records(keyframe_packets(world["videos"]["s1"], "s1"), catalog="c1")
    settings = SETTINGS.with_overrides(pipeline__scale_in_decoder=True)
    scaled = build_stage(world["detector"], world["embedder"], world["gallery"], settings, FakeClock())
    plain = stage_of(world, FakeClock())
    frames, letters = scaled.decode_records(records)
    assert not letters and all(f.scaled is not None for f in frames)
    expected = world["detector"].scaled_size(frames[0].image.shape[1], frames[0].image.shape[0])
    assert frames[0].scaled.shape == (expected[1], expected[0], 3)
    assert all(f.scaled is not None for f in plain.decode_records(records)[0])  # made on the decoding thread
    detector = world["detector"]
    sizes = [(f.image.shape[1], f.image.shape[0]) for f in frames]
    by_decoder = detector.pre_process_scaled([f.scaled for f in frames], sizes)[0]
    by_engine = detector.pre_process([f.image for f in frames])[0]
    # the same model input but for the two area resizes (swscale from YUV, OpenCV from RGB)
    assert by_decoder.shape == by_engine.shape and np.abs(by_decoder - by_engine).mean() < 0.05
    assert len(scaled.models.detect([f.picture for f in frames], [f.scaled for f in frames])) == len(frames)
    assert all(r.topic != "dlq" for r in scaled.infer_frames(frames))


def test_frames_scaled_on_the_decoding_thread_come_from_the_yuv_planes_close_to_the_rgb_way(world: dict[str, Any]) -> None:
    """Without ``scale_in_decoder`` the decoding thread shrinks each picture's YUV planes with the
    detector's own resize and converts only the result (engines.picture), so the model thread only
    pads it and nobody converts the whole frame: close to the engine resizing the RGB frame (the
    effect on the shipped models is measured end to end: docs/benchmarks.md)."""
    from engines.picture import PlanarPicture
    from engines.preprocess import resize_to

    records = frame_records(keyframe_packets(world["videos"]["s1"], "s1"), catalog="c1")
    # the motion cue off: this world's detector input is narrower than its thumbnail, so it would convert
    settings = SETTINGS.with_overrides(pipeline__motion_window_s=0.0)
    stage = build_stage(world["detector"], world["embedder"], world["gallery"], settings, FakeClock())
    frames, letters = stage.decode_records(records)
    assert not letters and all(f.scaled is not None for f in frames)
    assert all(isinstance(f.picture, PlanarPicture) for f in frames)
    assert all(r.topic != "dlq" for r in stage.infer_frames(frames))
    assert all(f.picture._rgb is None for f in frames), "detected, cropped and voted without the whole RGB frame"
    detector = world["detector"]
    pictures = [f.picture for f in frames]
    sizes = [(p.width, p.height) for p in pictures]
    assert all(np.array_equal(f.scaled, f.picture.region((0, 0, *size), *detector.scaled_size(*size)))
               for f, size in zip(frames, sizes, strict=True))
    by_rgb = [resize_to(f.image, *detector.scaled_size(*size)) for f, size in zip(frames, sizes, strict=True)]
    # saturated flat renders: averaging before the conversion clips differently from averaging after
    # it (about 1 grey level on average here, 0.2 on real 1080p footage: benchmarks/frame_cost.py)
    assert np.mean([np.abs(f.scaled.astype(int) - r).mean() for f, r in zip(frames, by_rgb, strict=True)]) < 2.0
    stage.close()


@pytest.mark.parametrize("window_s", [2.0, 0.0])
def test_the_motion_thumbnail_is_made_on_the_decoding_thread_when_the_cue_is_on(world: dict[str, Any],
                                                                               window_s: float) -> None:
    records = frame_records(keyframe_packets(world["videos"]["s1"], "s1"), catalog="c1")
    settings = SETTINGS.with_overrides(pipeline__motion_window_s=window_s)
    stage = build_stage(world["detector"], world["embedder"], world["gallery"], settings, FakeClock())
    frames, letters = stage.decode_records(records)
    assert frames and not letters
    if window_s:
        assert all(f.thumb is not None and np.array_equal(f.thumb, thumbnail(f.image)) for f in frames)
    else:
        assert all(f.thumb is None for f in frames)  # no cue, no thumbnail
    assert all(r.topic != "dlq" for r in stage.infer_frames(frames))
