"""Metrics facade, readiness / liveness and the health HTTP server, over real sockets and a real bus."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import numpy as np
import pytest
from local_ports import free_port
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from consumers.bus import Record, TopicPartition, TopicSpec
from consumers.bus.in_process import InProcessBus
from consumers.messages.dead_letter import send_to_dlq
from consumers.messages.match_event import SCHEMA_NAME
from consumers.observability.health import (
    HealthServer,
    HealthServerError,
    Liveness,
    Readiness,
    serve_from_settings,
)
from consumers.observability.metrics import PipelineMetrics
from consumers.settings import ObservabilitySettings
from stream.clock import FakeClock
from stream.errors import LiveTagError


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _frame(offset: int, wallclock: float) -> Record:
    return Record("frames", b"s1", b"x", [("wallclock", repr(wallclock).encode())], 0, offset, 0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_800_000_000.0)


@pytest.fixture
def metrics(clock: FakeClock) -> PipelineMetrics:
    return PipelineMetrics(CollectorRegistry(), clock=clock)


def test_stage_timer_records_the_block_duration_even_when_it_raises(metrics: PipelineMetrics, clock: FakeClock) -> None:
    with metrics.time_stage("detect"):
        clock.advance(0.03)
    with pytest.raises(RuntimeError), metrics.time_stage("embed"):
        clock.advance(0.2)
        raise RuntimeError("boom")
    reg = metrics.registry
    assert reg.get_sample_value("livetag_stage_latency_seconds_count", {"stage": "detect"}) == 1
    assert reg.get_sample_value("livetag_stage_latency_seconds_sum", {"stage": "detect"}) == pytest.approx(0.03)
    assert reg.get_sample_value("livetag_stage_latency_seconds_bucket", {"stage": "detect", "le": "0.025"}) == 0
    assert reg.get_sample_value("livetag_stage_latency_seconds_bucket", {"stage": "detect", "le": "0.05"}) == 1
    assert reg.get_sample_value("livetag_stage_latency_seconds_sum", {"stage": "embed"}) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="unknown stage"):
        metrics.observe_stage("resize", 0.1)


def test_published_batch_counts_frames_latency_matches_and_dead_letters(metrics: PipelineMetrics, clock: FakeClock) -> None:
    now = clock.now()
    inputs = [_frame(i, now - lag) for i, lag in enumerate((0.3, 0.8, 3.0))]
    bus = InProcessBus(clock)
    bus.create_topics([TopicSpec("dlq", 1)])
    producer = bus.producer()
    send_to_dlq(producer, inputs[0], ValueError("bad pts"), "decode", clock)
    consumer = bus.consumer(["dlq"], None)
    (dead,) = consumer.poll(timeout_s=0.1)
    match = Record("matches", b"s1", b"{}", [("lt-schema", SCHEMA_NAME.encode()), ("event", b"match.started")], 0, 0, 0)
    metrics.record_consumed(len(inputs))
    metrics.record_published(inputs, [match, dead])
    reg = metrics.registry
    assert reg.get_sample_value("livetag_frames_in_total") == 3
    assert reg.get_sample_value("livetag_frames_out_total") == 3
    assert reg.get_sample_value("livetag_end_to_end_latency_seconds_count") == 3
    assert reg.get_sample_value("livetag_end_to_end_latency_seconds_sum") == pytest.approx(4.1)
    assert reg.get_sample_value("livetag_end_to_end_latency_seconds_bucket", {"le": "1.0"}) == 2
    assert reg.get_sample_value("livetag_matches_published_total", {"event": "match.started"}) == 1
    assert reg.get_sample_value("livetag_dead_letters_total", {"stage": "decode", "reason": "ValueError"}) == 1


def test_lag_follows_the_assignment_and_forgets_revoked_partitions(metrics: PipelineMetrics, clock: FakeClock) -> None:
    bus = InProcessBus(clock)
    bus.create_topics([TopicSpec("frames", 2)])
    producer = bus.producer()
    for i in range(40):
        producer.produce("frames", f"stream-{i}".encode(), b"v")
    consumer = bus.consumer(["frames"], "g")
    tps = [TopicPartition("frames", 0), TopicPartition("frames", 1)]
    ends = consumer.end_offsets(tps)
    assert min(ends.values()) > 0 and sum(ends.values()) == 40
    assert metrics.update_lag(consumer) == ends
    reg = metrics.registry
    assert reg.get_sample_value("livetag_consumer_lag", {"topic": "frames", "partition": "0"}) == ends[tps[0]]
    assert len(consumer.poll(timeout_s=0.1, max_records=15)) == 15
    consumer.commit()
    assert sum((metrics.update_lag(consumer) or {}).values()) == 25
    assert len(consumer.poll(timeout_s=0.1, max_records=100)) == 25
    assert sum((metrics.update_lag(consumer) or {}).values()) == 0
    metrics.forget_partitions([tps[1]])
    assert reg.get_sample_value("livetag_consumer_lag", {"topic": "frames", "partition": "1"}) is None
    metrics.set_lag({tps[0]: 7})
    assert reg.get_sample_value("livetag_consumer_lag", {"topic": "frames", "partition": "0"}) == 7
    metrics.set_lag({})
    assert reg.get_sample_value("livetag_consumer_lag", {"topic": "frames", "partition": "0"}) is None
    producer.produce("frames", b"late", b"v")
    assert metrics.update_lag(consumer, min_interval_s=5.0) is None  # read moments ago: skipped
    clock.advance(5.0)
    assert sum((metrics.update_lag(consumer, min_interval_s=5.0) or {}).values()) == 1


def test_throttled_lag_settles_on_a_later_poll_and_a_failing_read_is_skipped(clock: FakeClock) -> None:
    metrics = PipelineMetrics(CollectorRegistry(), clock=clock, lag_interval_s=5.0)
    bus = InProcessBus(clock)
    bus.create_topics([TopicSpec("frames", 1)])
    producer = bus.producer()
    consumer = bus.consumer(["frames"], "g")
    producer.produce("frames", b"k", b"v")
    assert metrics.update_lag(consumer) == {TopicPartition("frames", 0): 1}
    consumer.poll(timeout_s=0.1)
    assert metrics.update_lag(consumer) is None  # within the interval: remembered, not read
    metrics.record_poll(0)
    assert metrics.registry.get_sample_value("livetag_consumer_lag", {"topic": "frames", "partition": "0"}) == 1
    clock.advance(5.0)
    metrics.record_poll(0)  # the interval passed: the remembered reading is done now
    assert metrics.registry.get_sample_value("livetag_consumer_lag", {"topic": "frames", "partition": "0"}) == 0
    consumer.close()
    clock.advance(5.0)
    assert metrics.update_lag(consumer) is None  # a closed consumer raises inside: logged, skipped
    assert metrics.registry.get_sample_value("livetag_consumer_lag", {"topic": "frames", "partition": "0"}) == 0


def test_gauges_drops_reconnects_and_model_info(metrics: PipelineMetrics) -> None:
    metrics.set_queue_depth("batcher", 12)
    metrics.record_drops("batcher", "drop_oldest", 4)
    metrics.record_drops("batcher", "drop_oldest", 0)
    metrics.set_active_streams(9)
    metrics.record_reconnects(2)
    metrics.set_gallery_size(1500)
    metrics.observe_batch(16)
    metrics.set_models({"detector": "livetag-detector@2026.01.01-1", "embedder": "livetag-embedder@2026.01.02-1"})
    reg = metrics.registry
    assert reg.get_sample_value("livetag_queue_depth", {"queue": "batcher"}) == 12
    assert reg.get_sample_value("livetag_dropped_total", {"queue": "batcher", "policy": "drop_oldest"}) == 4
    assert reg.get_sample_value("livetag_active_streams") == 9
    assert reg.get_sample_value("livetag_source_reconnects_total") == 2
    assert reg.get_sample_value("livetag_gallery_vectors") == 1500
    assert reg.get_sample_value("livetag_batch_size_bucket", {"le": "16.0"}) == 1
    assert reg.get_sample_value("livetag_batch_size_bucket", {"le": "8.0"}) == 0
    assert reg.get_sample_value(
        "livetag_model_info",
        {"detector": "livetag-detector@2026.01.01-1", "embedder": "livetag-embedder@2026.01.02-1"},
    ) == 1


def test_readiness_requires_every_named_condition() -> None:
    readiness = Readiness()
    assert readiness.names == ("engines_loaded", "gallery_bootstrapped", "partitions_assigned")
    assert not readiness.ready()
    readiness.set("engines_loaded", True, "detector@1 embedder@1")
    readiness.set("gallery_bootstrapped", True)
    assert not readiness.ready()
    readiness.set("partitions_assigned", True, "frames[0,1]")
    assert readiness.ready()
    assert readiness.snapshot()["conditions"]["engines_loaded"] == {"ok": True, "detail": "detector@1 embedder@1"}
    with pytest.raises(KeyError, match="unknown readiness condition"):
        readiness.set("gpu_warm", True)


def test_liveness_fails_when_the_loop_goes_silent_or_a_fatal_error_is_recorded(clock: FakeClock) -> None:
    liveness = Liveness(clock, max_silence_s=30.0)
    assert liveness.snapshot()["alive"]
    liveness.beat()
    clock.advance(29.0)
    assert liveness.snapshot()["alive"]
    clock.advance(2.0)
    doc = liveness.snapshot()
    assert not doc["alive"] and "silent for 31.0s" in doc["detail"]
    liveness.beat()
    assert liveness.snapshot()["alive"]
    liveness.fail("engine lost")
    assert liveness.snapshot() == {"alive": False, "detail": "fatal: engine lost"}


def test_health_server_serves_probes_and_metrics_then_releases_its_port(metrics: PipelineMetrics, clock: FakeClock) -> None:
    readiness = Readiness(("engines_loaded", "partitions_assigned"))
    liveness = Liveness(clock, max_silence_s=10.0)
    metrics.record_consumed(5)
    server = HealthServer(metrics.registry, readiness, liveness, host="127.0.0.1", port=0).start()
    try:
        base = server.url
        status, body = _get(base + "/readyz")
        assert status == 503 and json.loads(body)["ready"] is False
        readiness.set("engines_loaded", True)
        readiness.set("partitions_assigned", True)
        status, body = _get(base + "/readyz")
        assert status == 200 and json.loads(body)["ready"] is True
        assert _get(base + "/healthz")[0] == 200
        liveness.beat()
        clock.advance(11.0)
        status, body = _get(base + "/healthz")
        assert status == 503 and json.loads(body)["alive"] is False
        status, body = _get(base + "/metrics")
        assert status == 200
        assert _samples(body.decode())[("livetag_frames_in_total", ())] == 5
        assert _get(base + "/nope")[0] == 404
        with pytest.raises(HealthServerError, match="cannot serve health and metrics"):
            HealthServer(metrics.registry, readiness, host="127.0.0.1", port=server.port).start()
        port = server.port
    finally:
        server.stop()
    server.stop()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    assert issubclass(HealthServerError, LiveTagError)


def test_server_from_settings_is_off_at_port_zero(metrics: PipelineMetrics) -> None:
    assert serve_from_settings(ObservabilitySettings(port=0), metrics.registry, Readiness()) is None
    port = free_port()
    server = serve_from_settings(ObservabilitySettings(bind_host="127.0.0.1", port=port), metrics.registry, Readiness())
    assert server is not None
    try:
        assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    finally:
        server.stop()


def test_service_bundle_serves_probes_beats_on_polls_and_masks_settings_secrets(clock: FakeClock) -> None:
    from consumers.observability.health import INFERENCE_CONDITIONS
    from consumers.observability.service import ServiceObservability
    from consumers.settings import KafkaSettings, SecretStr, Settings

    port = free_port()
    kafka = KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                          sasl_username="u", sasl_password=SecretStr("pw-0123456789"))
    settings = Settings().with_overrides(kafka=kafka, observability__bind_host="127.0.0.1", observability__port=port)
    obs = ServiceObservability.start(settings, INFERENCE_CONDITIONS, clock=clock, max_silence_s=5.0)
    try:
        assert obs.server is not None and obs.server.port == port
        assert obs.redactor("password is pw-0123456789") == "password is ***"
        obs.metrics.record_poll(4)
        obs.metrics.record_poll(0)
        assert obs.metrics.registry.get_sample_value("livetag_frames_in_total") == 4
        assert obs.metrics.registry.get_sample_value("livetag_last_poll_timestamp_seconds") == clock.now()
        clock.advance(6.0)
        assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 503
        obs.metrics.record_poll(0)
        assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        for name in INFERENCE_CONDITIONS:
            obs.readiness.set(name, True)
        assert _get(f"http://127.0.0.1:{port}/readyz")[0] == 200
    finally:
        obs.close()
    off = ServiceObservability.start(settings.with_overrides(observability__port=0), INFERENCE_CONDITIONS, clock=clock)
    assert off.server is None
    off.close()


class _Spec:
    def __init__(self, label: str) -> None:
        self.label = label


class _ConstantDetector:
    """Stands in for a detector engine: its output is irrelevant to timing and delegation."""

    spec = _Spec("det@1")

    def detect(self, frames: list[np.ndarray]) -> list[str]:
        return ["dets"] * len(frames)


class _IdentityEmbedder:
    spec = _Spec("emb@2")

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        return np.stack([c.reshape(-1)[:4].astype(np.float32) for c in crops])


def test_model_calls_time_each_stage_and_record_sizes(metrics: PipelineMetrics) -> None:
    from consumers.stage.model_calls import ModelCalls
    from engines.gallery import GalleryIndex
    from engines.picture import RgbPicture
    from stream.decode import PacketDecoder

    gallery = GalleryIndex(4)
    gallery.add(["g1", "g2"], ["A", "B"], np.eye(4, dtype=np.float32)[:2])
    calls = ModelCalls(_ConstantDetector(), _IdentityEmbedder(), gallery, PacketDecoder(), metrics)  # type: ignore[arg-type]
    frames = [RgbPicture(np.zeros((8, 8, 3), np.uint8))] * 3
    assert calls.detect(frames) == ["dets"] * 3
    vectors, garment = calls.embed([np.ones((2, 2, 3), np.uint8)])
    assert garment is None  # an embedder without the garment output
    hits = calls.search(vectors, 1, None)
    assert len(hits) == 1 and hits[0][0].item_id in ("A", "B")
    assert calls.search(vectors, 1, frozenset({"B"}))[0][0].item_id == "B"
    with calls.timed("vote"):
        pass
    reg = metrics.registry
    for name in ("detect", "embed", "search", "vote"):
        assert reg.get_sample_value("livetag_stage_latency_seconds_count", {"stage": name}) == (2 if name == "search" else 1)
    assert reg.get_sample_value("livetag_batch_size_sum") == 3
    assert reg.get_sample_value("livetag_gallery_vectors") == 2
    assert reg.get_sample_value("livetag_model_info", {"detector": "det@1", "embedder": "emb@2"}) == 1
    gallery.remove_items(["A", "B"])  # an emptied gallery answers no hits instead of failing the batch
    assert calls.search(vectors, 1, None) == [[]]
    quiet = ModelCalls(_ConstantDetector(), _IdentityEmbedder(), gallery, PacketDecoder())  # type: ignore[arg-type]
    assert quiet.detect(frames) == ["dets"] * 3 and quiet.embed([])[0].shape == (0, 0)


def test_source_meter_turns_cumulative_reader_counters_into_increments(metrics: PipelineMetrics) -> None:
    from consumers.observability.instrument import SourceMeter
    from stream.frames import SamplingCounters
    from stream.source import SourceCounters

    class Reader:  # the two counter objects a stream.frames.FrameReader carries
        def __init__(self) -> None:
            self.source = type("Source", (), {"counters": SourceCounters()})()
            self.counters = SamplingCounters()

    reader, meter = Reader(), SourceMeter(metrics)
    meter.update(reader)
    reader.source.counters.reconnects = 2
    reader.counters.dropped_rate = 5
    meter.update(reader)
    meter.update(reader)
    reader.source.counters.reconnects = 3
    meter.update(reader)
    reg = metrics.registry
    assert reg.get_sample_value("livetag_source_reconnects_total") == 3
    assert reg.get_sample_value("livetag_dropped_total", {"queue": "source_rate", "policy": "max_rate"}) == 5


def test_a_non_finite_wallclock_does_not_poison_the_latency_histogram(metrics: PipelineMetrics, clock: FakeClock) -> None:
    """A record with wallclock -inf (it becomes a dead letter) is counted out but not observed."""
    inputs = [_frame(0, clock.now() - 0.5), _frame(1, float("-inf")), _frame(2, float("nan"))]
    metrics.record_published(inputs, [])
    reg = metrics.registry
    assert reg.get_sample_value("livetag_frames_out_total") == 3
    assert reg.get_sample_value("livetag_end_to_end_latency_seconds_count") == 1
    assert reg.get_sample_value("livetag_end_to_end_latency_seconds_sum") == pytest.approx(0.5)


def test_group_lag_counts_from_the_committed_offset_as_keda_does(metrics: PipelineMetrics) -> None:
    bus = InProcessBus(FakeClock())
    bus.create_topics([TopicSpec("frames", 1)])
    producer = bus.producer()
    for i in range(30):
        producer.produce("frames", b"k", str(i).encode())
    consumer = bus.consumer(["frames"], "g")
    tp = TopicPartition("frames", 0)
    reg = metrics.registry
    labels = {"topic": "frames", "partition": "0"}
    metrics.update_lag(consumer)
    assert reg.get_sample_value("livetag_consumer_group_lag", labels) == 30  # nothing committed: the position
    assert len(consumer.poll(timeout_s=0.1, max_records=20)) == 20
    consumer.commit({tp: 12})
    assert metrics.update_lag(consumer) == {tp: 10}
    assert reg.get_sample_value("livetag_consumer_lag", labels) == 10
    assert reg.get_sample_value("livetag_consumer_group_lag", labels) == 18
    metrics.forget_partitions([tp])
    assert reg.get_sample_value("livetag_consumer_group_lag", labels) is None


def test_frame_drops_are_counted_by_reason(metrics: PipelineMetrics) -> None:
    metrics.record_drops("frames", "stale", 3)
    metrics.record_drops("source_rate", "max_rate", 2)
    metrics.record_drops("ocr", "drop_oldest", 4)  # not a frame queue
    reg = metrics.registry
    assert reg.get_sample_value("livetag_dropped_frames_total", {"reason": "stale"}) == 3
    assert reg.get_sample_value("livetag_dropped_frames_total", {"reason": "max_rate"}) == 2
    assert reg.get_sample_value("livetag_dropped_frames_total", {"reason": "drop_oldest"}) is None
    assert reg.get_sample_value("livetag_dropped_total", {"queue": "ocr", "policy": "drop_oldest"}) == 4
