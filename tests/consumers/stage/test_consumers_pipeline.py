"""The inference stage and the embedded pipeline with real (tiny) models on generated streams."""

from __future__ import annotations

import threading
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from consumers_media import ITEMS, LOOSE_SETTINGS, export_tiny_models, make_shop_images, make_video

from consumers.bus import BusError, Record, TopicPartition
from consumers.bus.in_process import InProcessBus
from consumers.bus.topics import topic_specs
from consumers.messages.dead_letter import DeadLetter
from consumers.messages.match_event import validate_match_event
from consumers.services.embedded import EmbeddedPipeline, InFlightWindow, SourceSpec
from consumers.services.replay import file_frame_source, replay
from consumers.settings import ModelSettings
from consumers.stage.builder import build_stage
from consumers.stage.gallery_builder import build_gallery, find_shop_images, to_index
from consumers.stage.inference_stage import InferenceStage
from consumers.stage.loops import run_consumer_loop, run_decoupled_loop, run_stage_loop
from consumers.stage.model_loading import load_models
from engines.gallery import GalleryIndex
from stream.clock import FakeClock
from stream.frames import iter_frame_packets
from stream.packet import FramePacket
from training.evaluation.match_summary import Hit

SETTINGS = LOOSE_SETTINGS


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("pipeline")
    packages = export_tiny_models(root / "models")
    detector, embedder = load_models(ModelSettings(str(packages["detector"]), str(packages["embedder"])), 0.05, 0.6)
    make_shop_images(root / "shop", ITEMS)
    build = build_gallery(find_shop_images(root / "shop"), detector, embedder, catalog="c1", progress=False)
    for meta in build.metadata:  # two catalogs: A, B in c1; C, D in c2
        meta["catalog"] = "c1" if meta["item_id"] in ("A", "B") else "c2"
    videos = {
        "s1": make_video(root / "s1.mp4", ["red", "green"]),
        "s2": make_video(root / "s2.mp4", ["blue", "yellow"]),
    }
    return {"root": root, "detector": detector, "embedder": embedder, "gallery": to_index(build), "videos": videos}


def _stage(world: dict[str, Any], clock: FakeClock, **kw: Any) -> InferenceStage:
    gallery: GalleryIndex = world["gallery"]
    return build_stage(world["detector"], world["embedder"], gallery, SETTINGS, clock, **kw)


def _packets(path: Path, stream_id: str) -> list[FramePacket]:
    return list(iter_frame_packets(stream_id, path, "keyframes"))


def _records(packets: list[FramePacket], catalog: str | None = None) -> list[Record]:
    out = []
    for offset, packet in enumerate(packets):
        key, value, headers = packet.to_record()
        if catalog is not None:
            headers = [*headers, ("catalog", catalog.encode())]
        out.append(Record("frames", key, value, headers, 0, offset))
    return out


def test_embedded_pipeline_end_to_end(world: dict[str, Any]) -> None:
    clock = FakeClock()
    events: list[dict[str, Any]] = []
    specs = [SourceSpec(sid, str(path)) for sid, path in world["videos"].items()]
    report = replay(_stage(world, clock), specs, SETTINGS, events.append, clock=clock, progress=False)
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
    bus = InProcessBus(clock)
    bus.create_topics(topic_specs(SETTINGS.topics))
    producer = bus.producer()
    for packet in _packets(world["videos"]["s1"], "s1"):
        producer.produce("frames", *packet.to_record())
    tp = TopicPartition("frames", 0)
    stop = threading.Event()
    stop.set()  # drain what is there, then return

    # publishing fails (closed producer): the loop stops and nothing is committed
    broken = bus.producer()
    broken.close()
    consumer = bus.consumer(["frames"], "infer")
    with pytest.raises(BusError, match="closed producer"):
        loop(consumer, broken, _stage(world, clock), stop, SETTINGS.batch)
    assert consumer.committed(tp) is None
    consumer.close()

    # the next owner reads the same records again, publishes, and only then commits
    consumer = bus.consumer(["frames"], "infer")
    seen_after_commit: list[int] = []

    def check(records: list[Record]) -> None:
        assert consumer.committed(tp) == records[-1].offset + 1
        seen_after_commit.append(len(records))

    counters = loop(consumer, bus.producer(), _stage(world, clock), stop, SETTINGS.batch, check)
    assert counters.consumed == 8 == sum(seen_after_commit)
    assert counters.commits == len(seen_after_commit) == 2  # batches of max_batch = 4
    assert consumer.committed(tp) == 8
    matches = bus.consumer(["matches"], None)
    published = matches.poll(timeout_s=0, max_records=1000)
    assert len(published) == counters.published > 0
    assert all(r.key == b"s1" for r in published)


def test_corrupt_record_goes_to_dlq_and_other_streams_flow(world: dict[str, Any]) -> None:
    clock = FakeClock()
    bus = InProcessBus(clock)
    bus.create_topics(topic_specs(SETTINGS.topics))
    producer = bus.producer()
    good = _packets(world["videos"]["s2"], "s2")
    bad = _packets(world["videos"]["s1"], "s1")[0]
    for i, packet in enumerate(good):
        producer.produce("frames", *packet.to_record())
        if i == 2:  # a corrupt frame of stream s1, and a record that is not a frame packet at all
            key, value, headers = bad.to_record()
            producer.produce("frames", key, b"\x00\x00\x00\x01\x65" + bytes(range(256)) * 4, headers)
            producer.produce("frames", b"s3", b"not a frame", [("codec", b"h264")])
    stop = threading.Event()
    stop.set()
    stage = _stage(world, clock)
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

    stage = _stage(world, clock, observer=observe)
    s1 = _packets(world["videos"]["s1"], "s1")
    s2 = _packets(world["videos"]["s2"], "s2")
    unknown = _packets(world["videos"]["s1"], "s-unknown")
    nocat = _packets(world["videos"]["s2"], "s-all")
    records = _records(s1, "c1") + _records(s2, "c2") + _records(unknown, "c9") + _records(nocat)
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
    fixed = _stage(world, clock, observer=observe, items={"D"})
    fixed.process(_records(s1, "c1"))
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
    pipeline = EmbeddedPipeline(_stage(world, clock), file_frame_source(SETTINGS.replay, clock),
                                batch=SETTINGS.batch, clock=clock)
    events: list[dict[str, Any]] = []
    report = pipeline.run(specs, lambda e, _pts: events.append(e))
    assert report.frames_consumed == 8
    assert set(report.source_errors) == {"bad"} and "notes.mp4" in report.source_errors["bad"]
    assert {e["stream_id"] for e in events} == {"good"}


def test_stage_isolates_a_frame_the_models_reject(world: dict[str, Any]) -> None:
    """A frame that decodes to nothing usable is dead-lettered alone; the batch's other frames go on."""
    clock = FakeClock()
    stage = _stage(world, clock)
    packets = _packets(world["videos"]["s1"], "s1")[:3]
    records = _records(packets)

    class TinyFrameDecoder:
        """The real decoder, except the second frame comes out 0 pixels wide (a broken encoder)."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def decode_scaled(self, packet: FramePacket, size_of: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
            image, scaled = self.inner.decode_scaled(packet, size_of)
            return (image[:, :0], None) if packet.sequence == 1 else (image, scaled)

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
    bus = InProcessBus(clock)
    bus.create_topics(topic_specs(SETTINGS.topics))
    producer = bus.producer()
    good = _packets(world["videos"]["s2"], "s2")
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
    stage = _stage(world, clock)
    decode = stage.models.decoder.decode_scaled

    def fragile(packet: FramePacket, size_of: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
        if packet.stream_id == "overflow":
            raise OverflowError("int too large to convert to C long")
        return decode(packet, size_of)

    stage.models.decoder.decode_scaled = fragile  # type: ignore[method-assign]
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


@pytest.mark.parametrize("loop_name", ["run_stage_loop", "run_decoupled_loop"])
def test_a_stream_that_stops_ends_its_segment_on_the_idle_timer(world: dict[str, Any], loop_name: str) -> None:
    """No frame arrives after the stream stops; the loop still calls the stage when idle, so the
    voter's idle eviction (injected clock) publishes ``match.ended``."""
    import time

    from consumers.stage import loops as runners

    clock = FakeClock()
    bus = InProcessBus(clock)
    bus.create_topics(topic_specs(SETTINGS.topics))
    producer = bus.producer()
    for packet in _packets(world["videos"]["s2"], "s2"):
        producer.produce("frames", *packet.to_record())
    stage = _stage(world, clock)
    stop = threading.Event()
    loop = getattr(runners, loop_name)
    thread = threading.Thread(target=loop, args=(bus.consumer(["frames"], "infer"), producer, stage, stop, SETTINGS.batch))
    thread.start()
    reader = bus.consumer(["matches"], None)
    seen: list[Record] = []

    def kinds() -> list[bytes | None]:
        seen.extend(reader.poll(timeout_s=0.1, max_records=100))
        return [r.header("event") for r in seen]

    packets = len(_packets(world["videos"]["s2"], "s2"))
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
    packets = _packets(world["videos"]["s2"], "s2")
    fresh = [replace(p, wallclock=clock.now() - 0.5) for p in packets[:4]]
    stale = [replace(p, wallclock=clock.now() - 30.0) for p in packets[4:10]]
    outputs = stage.process(_records(stale + fresh))
    assert stage.counters.dropped_stale == len(stale) and drops == [("frames", "stale", len(stale))]
    assert stage.counters.frames == len(fresh) and not [r for r in outputs if r.topic == "dlq"]
    off = _stage(world, clock)  # the default (0) never drops: replays and evaluation
    off.process(_records(stale))
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
    bus = InProcessBus(clock)
    bus.create_topics(topic_specs(SETTINGS.topics))
    producer, consumer = bus.producer(), bus.consumer(["frames"], "infer")
    source = _packets(world["videos"]["s2"], "s2")
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
    stage = _stage(world, clock)
    s2 = [Record("frames", *p.to_record(), 0, i) for i, p in enumerate(_packets(world["videos"]["s2"], "s2"))]
    s1 = [Record("frames", *p.to_record(), 1, i) for i, p in enumerate(_packets(world["videos"]["s1"], "s1"))]
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
    stage = _stage(world, clock)
    s1 = [Record("frames", *p.to_record(), 1, i) for i, p in enumerate(_packets(world["videos"]["s1"], "s1"))]
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


def test_the_stage_decodes_with_the_decoder_settings(world: dict[str, Any]) -> None:
    settings = SETTINGS.with_overrides(pipeline__decoder_threads=2, pipeline__skip_loop_filter=True)
    stage = build_stage(world["detector"], world["embedder"], world["gallery"], settings, FakeClock())
    try:
        assert stage.models.decoder.threads == 2 and stage.models.decoder.skip_loop_filter is True
        packet = _packets(world["videos"]["s1"], "s1")[0]
        frames, letters = stage.decode_records([Record("frames", *packet.to_record())])
        assert letters == [] and frames[0].image.ndim == 3
    finally:
        stage.close()


def test_decode_workers_decode_a_batch_in_parallel_like_one_thread(world: dict[str, Any]) -> None:
    """Several streams' frames decode on the decode threads: the same pixels, the same order, the
    same events, and a frame that does not decode is a dead letter in its place."""
    s1 = _records(_packets(world["videos"]["s1"], "s1"))
    s2 = _records(_packets(world["videos"]["s2"], "s2"))
    bad = Record("frames", s1[0].key, b"\x00\x00\x00\x01\x65" + bytes(range(256)) * 4, s1[0].headers)
    batch = [r for pair in zip(s1, s2, strict=False) for r in pair] + [bad]
    serial = _stage(world, FakeClock())
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
    s1 = _records(_packets(world["videos"]["s1"], "s1"))[:3]
    s2 = _records(_packets(world["videos"]["s2"], "s2"))[:2]
    batch = [s1[0], s2[0], s1[1], s2[1], s1[2]]
    drops: list[tuple[str, str, int]] = []
    live = build_stage(world["detector"], world["embedder"], world["gallery"],
                      SETTINGS.with_overrides(pipeline__newest_frame_wins=True), FakeClock())
    live.on_drop = lambda queue, reason, count: drops.append((queue, reason, count))
    replaying = _stage(world, FakeClock())
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

    bus = InProcessBus(FakeClock())
    bus.create_topics(topic_specs(SETTINGS.topics))
    bus.producer().produce("frames", b"s1", b"x", [])
    stop = threading.Event()
    stop.set()
    counters = run_consumer_loop(bus.consumer(["frames"], "infer"), bus.producer(), Split(), stop, SETTINGS.batch,
                                 decoupled=decoupled)
    assert counters.consumed == 1 and calls == [expected]


def test_frames_scaled_in_the_decoder_detect_like_frames_resized_by_the_engine(world: dict[str, Any]) -> None:
    records = _records(_packets(world["videos"]["s1"], "s1"), catalog="c1")
    settings = SETTINGS.with_overrides(pipeline__scale_in_decoder=True)
    scaled = build_stage(world["detector"], world["embedder"], world["gallery"], settings, FakeClock())
    plain = _stage(world, FakeClock())
    frames, letters = scaled.decode_records(records)
    assert not letters and all(f.scaled is not None for f in frames)
    expected = world["detector"].scaled_size(frames[0].image.shape[1], frames[0].image.shape[0])
    assert frames[0].scaled.shape == (expected[1], expected[0], 3)
    assert all(f.scaled is None for f in plain.decode_records(records)[0])
    detector = world["detector"]
    sizes = [(f.image.shape[1], f.image.shape[0]) for f in frames]
    by_decoder = detector.pre_process_scaled([f.scaled for f in frames], sizes)[0]
    by_engine = detector.pre_process([f.image for f in frames])[0]
    # the same model input but for the two area resizes (swscale from YUV, OpenCV from RGB)
    assert by_decoder.shape == by_engine.shape and np.abs(by_decoder - by_engine).mean() < 0.05
    assert len(scaled.models.detect([f.image for f in frames], [f.scaled for f in frames])) == len(frames)
    assert all(r.topic != "dlq" for r in scaled.infer_frames(frames))
