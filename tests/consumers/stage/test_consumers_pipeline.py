"""The inference stage and the embedded pipeline with real (tiny) models on generated streams:
end to end, publish-then-commit, dead letters, catalog scopes, the shipped models on the demo sample."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import av
import pytest
from consumers_media import ITEMS
from stage_world import SETTINGS, bus_of, frame_records, keyframe_packets, produce_keyframes, stage_of

from consumers.bus import BusError, Record, TopicPartition
from consumers.messages.dead_letter import DeadLetter
from consumers.messages.match_event import validate_match_event
from consumers.services.embedded import EmbeddedPipeline, InFlightWindow, SourceSpec
from consumers.services.replay import file_frame_source, replay
from consumers.settings import ModelSettings
from consumers.stage.builder import build_stage
from consumers.stage.gallery_builder import build_gallery, find_shop_images, to_index
from consumers.stage.loops import run_decoupled_loop, run_stage_loop
from consumers.stage.model_loading import load_models
from stream.clock import FakeClock
from stream.packet import FramePacket
from training.evaluation.match_summary import Hit


def test_embedded_pipeline_end_to_end(world: dict[str, Any]) -> None:
    clock = FakeClock()
    events: list[dict[str, Any]] = []
    specs = [SourceSpec(sid, str(path)) for sid, path in world["videos"].items()]
    report = replay(stage_of(world, clock), specs, SETTINGS, events.append, clock=clock, progress=False)
    # 4 s at 10 fps with a keyframe every 5 frames: 8 keyframes per stream, all processed
    assert report.frames_published == 16 and report.frames_consumed == 16
    assert report.dead_letters == 0 and report.source_errors == {} and report.skipped == {}
    assert report.events == len(events) > 0
    for event in events:
        validate_match_event(event)
        assert event["stream_id"] in ("s1", "s2")
        assert event["models"]["detector"].startswith("tiny-detector@")
    for stream_id in ("s1", "s2"):
        kinds = [e["event"] for e in events if e["stream_id"] == stream_id]
        assert kinds.count("match.started") == kinds.count("match.ended") >= 1  # every segment is closed
        assert kinds[0] == "match.started" and kinds[-1] == "match.ended"
    ended = [e for e in events if e["event"] == "match.ended"]
    assert all(e["segment"]["end"] is not None and e["segment"]["end"] >= e["segment"]["start"] for e in ended)


@pytest.mark.parametrize("loop", [run_stage_loop, run_decoupled_loop], ids=["one-thread", "decode-thread"])
def test_runner_publishes_then_commits(world: dict[str, Any], loop: Any) -> None:
    clock = FakeClock()
    bus, producer = bus_of(clock)
    produce_keyframes(producer, world, "s1")
    tp = TopicPartition("frames", 0)
    stop = threading.Event()
    stop.set()  # drain what is there, then return

    # publishing fails (closed producer): the loop stops and nothing is committed
    broken = bus.producer()
    broken.close()
    consumer = bus.consumer(["frames"], "infer")
    with pytest.raises(BusError, match="closed producer"):
        loop(consumer, broken, stage_of(world, clock), stop, SETTINGS.batch)
    assert consumer.committed(tp) is None
    consumer.close()

    # the next owner reads the same records again, publishes, and only then commits
    consumer = bus.consumer(["frames"], "infer")
    seen_after_commit: list[int] = []

    def check(records: list[Record]) -> None:
        assert consumer.committed(tp) == records[-1].offset + 1
        seen_after_commit.append(len(records))

    counters = loop(consumer, bus.producer(), stage_of(world, clock), stop, SETTINGS.batch, check)
    assert counters.consumed == 8 == sum(seen_after_commit)
    assert counters.commits == len(seen_after_commit) == 2  # batches of max_batch = 4
    assert consumer.committed(tp) == 8
    matches = bus.consumer(["matches"], None)
    published = matches.poll(timeout_s=0, max_records=1000)
    assert len(published) == counters.published > 0
    assert all(r.key == b"s1" for r in published)


def test_corrupt_record_goes_to_dlq_and_other_streams_flow(world: dict[str, Any]) -> None:
    clock = FakeClock()
    bus, producer = bus_of(clock)
    good = keyframe_packets(world["videos"]["s2"], "s2")
    bad = keyframe_packets(world["videos"]["s1"], "s1")[0]
    for i, packet in enumerate(good):
        producer.produce("frames", *packet.to_record())
        if i == 2:  # a corrupt frame of stream s1, and a record that is not a frame packet at all
            key, value, headers = bad.to_record()
            producer.produce("frames", key, b"\x00\x00\x00\x01\x65" + bytes(range(256)) * 4, headers)
            producer.produce("frames", b"s3", b"not a frame", [("codec", b"h264")])
    stop = threading.Event()
    stop.set()
    stage = stage_of(world, clock)
    counters = run_decoupled_loop(bus.consumer(["frames"], "infer"), producer, stage, stop, SETTINGS.batch)
    assert counters.consumed == len(good) + 2
    letters = [DeadLetter.from_record(r) for r in bus.consumer(["dlq"], None).poll(timeout_s=0, max_records=100)]
    assert sorted(letter.key for letter in letters if letter.key) == [b"s1", b"s3"]
    reasons = {letter.key: letter.reason for letter in letters}
    assert "does not decode" in reasons[b"s1"] or "gave" in reasons[b"s1"]
    assert "lacks headers" in reasons[b"s3"]
    assert all(letter.stage == "decode" and letter.topic == "frames" for letter in letters)
    assert letters[0].value and len(letters[0].value) > 0  # the original bytes are kept
    assert stage.counters.frames == len(good)  # every good frame of s2 went through
    matches = bus.consumer(["matches"], None).poll(timeout_s=0, max_records=100)
    assert matches and {r.key for r in matches} == {b"s2"}


def test_search_is_restricted_to_the_stream_catalog(world: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    seen: dict[str, set[str]] = {}

    def observe(stream_id: str, pts: float, hits: list[Hit]) -> None:
        seen.setdefault(stream_id, set()).update(h.item_id for h in hits)

    stage = stage_of(world, clock, observer=observe)
    s1 = keyframe_packets(world["videos"]["s1"], "s1")
    s2 = keyframe_packets(world["videos"]["s2"], "s2")
    unknown = keyframe_packets(world["videos"]["s1"], "s-unknown")
    nocat = keyframe_packets(world["videos"]["s2"], "s-all")
    records = frame_records(s1, "c1") + frame_records(s2, "c2") + frame_records(unknown, "c9") + frame_records(nocat)
    events = [e for e in stage.process(records) if e.topic == "matches"]
    assert seen["s1"] and seen["s1"] <= {"A", "B"}
    assert seen["s2"] and seen["s2"] <= {"C", "D"}
    assert seen["s-unknown"] == set()  # an unknown catalog matches nothing, and says so once
    assert stage.counters.unknown_catalog >= 1
    assert [r.getMessage() for r in caplog.records if "not in the gallery" in r.getMessage()] == [
        "catalog 'c9' is not in the gallery: its streams match nothing (publish its images with 'livetag gallery publish')"
    ]
    assert seen["s-all"] and seen["s-all"] <= set(ITEMS)
    for record in events:
        assert record.key != b"s-unknown"

    # an explicit item list (replay --catalog) wins over the header
    seen.clear()
    fixed = stage_of(world, clock, observer=observe, items={"D"})
    fixed.process(frame_records(s1, "c1"))
    assert seen["s1"] == {"D"}


def test_in_flight_window_blocks_until_release() -> None:
    failed = threading.Event()
    window = InFlightWindow(2, failed)
    assert window.acquire() and window.acquire()
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(window.acquire()))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive() and not got  # third frame waits: policy "block"
    window.release(1)
    waiter.join(5)
    assert got == [True] and window.waits == 1
    failed.set()
    assert window.acquire() is False  # a failed pipeline never hangs a reader


def test_pipeline_reports_a_failing_source_and_keeps_the_others(world: dict[str, Any], tmp_path: Path) -> None:
    clock = FakeClock()
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("this is not a video\n")
    specs = [SourceSpec("good", str(world["videos"]["s1"])), SourceSpec("bad", str(not_video))]
    pipeline = EmbeddedPipeline(stage_of(world, clock), file_frame_source(SETTINGS.replay, clock),
                                batch=SETTINGS.batch, clock=clock)
    events: list[dict[str, Any]] = []
    report = pipeline.run(specs, lambda e, _pts: events.append(e))
    assert report.frames_consumed == 8
    assert set(report.source_errors) == {"bad"} and "notes.mp4" in report.source_errors["bad"]
    assert {e["stream_id"] for e in events} == {"good"}


def test_stage_isolates_a_frame_the_models_reject(world: dict[str, Any]) -> None:
    """A frame that decodes to nothing usable is dead-lettered alone; the batch's other frames go on."""
    clock = FakeClock()
    stage = stage_of(world, clock)
    packets = keyframe_packets(world["videos"]["s1"], "s1")[:3]
    records = frame_records(packets)

    class TinyFrameDecoder:
        """The real decoder, except the second frame comes out 0 pixels wide (a broken encoder)."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def decode_picture(self, packet: FramePacket) -> av.VideoFrame:
            picture = self.inner.decode_picture(packet)
            return av.VideoFrame(0, picture.height, picture.format.name) if packet.sequence == 1 else picture

        def drop(self, stream_id: str) -> None:
            self.inner.drop(stream_id)

    stage.models.decoder = TinyFrameDecoder(stage.models.decoder)
    outputs = stage.process(records)
    letters = [DeadLetter.from_record(r) for r in outputs if r.topic == "dlq"]
    assert len(letters) == 1 and letters[0].offset == 1 and letters[0].stage == "infer"
    assert "empty" in letters[0].reason
    assert stage.counters.frames == 2


REPO = Path(__file__).resolve().parents[3]
SHIPPED = ModelSettings(str(REPO / "models" / "detector"), str(REPO / "models" / "embedder"))


@pytest.mark.skipif(not (Path(SHIPPED.detector_dir) / "spec.json").is_file() or not (REPO / "samples" / "demo").is_dir(),
                    reason="the shipped models and samples/demo are not in this checkout")
def test_shipped_models_tag_the_demo_sample() -> None:
    """The real thing: shipped models, shipped sample, default settings; the middle product is found
    inside its shown segment, with a box on the frame and on a shop image of that product."""
    from consumers.commands.replay import SETTINGS_DEFAULTS
    from consumers.services.demo import find_sample
    from consumers.settings.options import load_settings

    settings = load_settings(None, {}, SETTINGS_DEFAULTS)  # what `livetag replay` runs with
    sample = find_sample(REPO / "samples" / "demo")
    detector, embedder = load_models(SHIPPED, settings.pipeline.detection_threshold, settings.pipeline.nms_iou)
    gallery = to_index(build_gallery(find_shop_images(sample.images, sample.annotations), detector, embedder,
                                     progress=False))
    clock = FakeClock()
    events: list[dict[str, Any]] = []
    times: list[float | None] = []

    def sink(event: dict[str, Any], frame_pts: float | None) -> None:
        events.append(event)
        times.append(frame_pts)

    stage = build_stage(detector, embedder, gallery, settings, clock)
    report = replay(stage, [SourceSpec("demo", str(sample.videos[0]))], settings, sink, clock=clock, progress=False)
    assert report.frames_consumed == 18 and report.dead_letters == 0
    # the sink gets the stream time of the frame that emitted each event (keyframes every second)
    assert all(t is not None and float(t).is_integer() and 0 <= t <= 18 for t in times)
    started = [e for e in events if e["event"] == "match.started"]
    # samples/demo/segments.json: i000002 is shown from 5.52 s to 11.64 s
    hit = next(e for e in started if e["item_id"] == "i000002")
    assert 5.0 <= hit["segment"]["start"] <= 11.64
    best = hit["evidence"][0]
    assert best["gallery_image_id"].startswith("i000002/") and best["item_box"] is not None
    assert best["similarity"] >= settings.voter.min_similarity


def test_a_poison_record_of_any_error_class_is_a_dead_letter_and_the_loop_goes_on(world: dict[str, Any]) -> None:
    """The 10^400 pts, an oversized frame, a non-finite wallclock, and a decoder that raises an error
    that is not the project's own: each is one dead letter; frames in = processed + dead letters."""
    clock = FakeClock()
    bus, producer = bus_of(clock)
    good = keyframe_packets(world["videos"]["s2"], "s2")
    key, value, headers = good[0].to_record()
    poison = {
        b"pts-10e400": [(n, b"1" + b"0" * 400 if n == "pts" else v) for n, v in headers],
        b"wallclock-inf": [(n, b"-inf" if n == "wallclock" else v) for n, v in headers],
    }
    for i, packet in enumerate(good):
        producer.produce("frames", *packet.to_record())
        if i == 1:
            for poison_key, poison_headers in poison.items():
                producer.produce("frames", poison_key, value, poison_headers)
            producer.produce("frames", b"oversized", b"\x00" * 8_388_308, headers)
            producer.produce("frames", b"overflow", value, headers)
    stage = stage_of(world, clock)
    decode = stage.models.decoder.decode_picture

    def fragile(packet: FramePacket) -> av.VideoFrame:
        if packet.stream_id == "overflow":
            raise OverflowError("int too large to convert to C long")
        return decode(packet)

    stage.models.decoder.decode_picture = fragile  # type: ignore[method-assign]
    stop = threading.Event()
    stop.set()
    counters = run_decoupled_loop(bus.consumer(["frames"], "infer"), producer, stage, stop, SETTINGS.batch)
    letters = {d.key: d for d in (DeadLetter.from_record(r) for r in bus.consumer(["dlq"], None).poll(0, 100))}
    assert set(letters) == {b"pts-10e400", b"wallclock-inf", b"oversized", b"overflow"}
    assert letters[b"overflow"].error_class == "OverflowError"
    assert letters[b"oversized"].value_size == 8_388_308, "its dead letter was cut to fit dlq, size and hash kept"
    assert counters.consumed == len(good) + 4 == stage.counters.frames + len(letters)
    assert bus.consumer(["matches"], None).poll(0, 100), "the good stream still matched"


def test_a_dead_letter_too_large_for_its_topic_is_cut_and_keeps_size_and_hash() -> None:
    import hashlib

    from consumers.messages.dead_letter import MAX_DEAD_LETTER_BYTES

    value = bytes(range(256)) * 32_767  # 8,388,352 bytes: fits frames (8 MiB) but not with dlq headers
    headers = [("codec", b"h264"), ("huge", b"h" * 300_000)]
    record = Record("frames", b"s1", value, headers, 0, 7)
    letter = DeadLetter.from_exception(record, ValueError("bad"), "decode", 1.0)
    key, out, out_headers = letter.to_record()
    assert len(key or b"") + len(out) + sum(len(n) + len(v) for n, v in out_headers) <= MAX_DEAD_LETTER_BYTES
    back = DeadLetter.from_record(Record("dlq", key, out, out_headers, 0, 0))
    assert back.value_size == len(value) and back.value_sha256 == hashlib.sha256(value).hexdigest()
    assert back.value == value[: len(out)] and back.headers == [] and "2 original headers" in back.reason
    small = DeadLetter.from_exception(Record("frames", b"s1", b"abc", headers[:1], 0, 8), ValueError("x"), "decode", 1.0)
    restored = DeadLetter.from_record(Record("dlq", *small.to_record(), 0, 1))
    assert restored.original() == Record("frames", b"s1", b"abc", headers[:1], 0, 8) and restored.value_size is None
