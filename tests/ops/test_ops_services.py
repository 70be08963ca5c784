"""``livetag infer`` and ``livetag ingest`` as deployed: real processes on a real Kafka broker, probed
over HTTP the way the kubelet and Prometheus do, with JSON logs read back from stderr."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from local_ports import free_port
from prometheus_client.parser import text_string_to_metric_families

from consumers.bus.kafka import KafkaBus
from consumers.bus.topics import TopicNames, topic_specs
from consumers.messages.stream_record import make_stream_value
from consumers.services.gallery_follower import publish_gallery, read_gallery_folder
from consumers.settings import TopicSettings
from stream.frames import iter_frame_packets

CONSUMER_TESTS = Path(__file__).resolve().parents[1] / "consumers"
if str(CONSUMER_TESTS) not in sys.path:
    sys.path.insert(0, str(CONSUMER_TESTS))
from consumers_media import export_tiny_models, make_shop_images, make_video  # noqa: E402

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
SASL_PASSWORD = "sasl-Secret-91d2"
RTMP_PASSWORD = "rtmpS3cret"


@pytest.fixture
def bootstrap(kafka_bootstrap: str) -> str:
    """The session's broker (tests/conftest.py)."""
    return kafka_bootstrap


@pytest.fixture
def topics(bootstrap: str) -> tuple[KafkaBus, TopicSettings, TopicNames]:
    settings = TopicSettings(prefix=f"ops{uuid.uuid4().hex[:8]}.", partitions=2)
    bus = KafkaBus(bootstrap)
    bus.create_topics(topic_specs(settings))
    return bus, settings, TopicNames.from_settings(settings)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _wait(condition: Callable[[], bool], what: str, limit_s: float = 90.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _all_processed_and_committed(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], frames: int) -> bool:
    """True once ``frames`` frames were processed, none is in flight (a batch delivered again after a
    refused commit is counted in before it is counted out) and the group has committed to every
    partition's end."""
    group_lags = [v for (name, _), v in samples.items() if name == "livetag_consumer_group_lag"]
    out = samples.get(("livetag_frames_out_total", ()), 0)
    return (out >= frames and samples.get(("livetag_frames_in_total", ()), 0) == out
            and bool(group_lags) and sum(group_lags) == 0)


class Service:
    """A ``livetag`` service process with its metrics port; ``stop`` sends SIGTERM and returns stderr."""

    def __init__(self, args: list[str], bootstrap: str, prefix: str) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "LIVETAG_OBSERVABILITY_BIND_HOST": "127.0.0.1",
            "LIVETAG_OBSERVABILITY_PORT": str(self.port),
            "LIVETAG_KAFKA_SASL_USERNAME": "livetag",
            "LIVETAG_KAFKA_SASL_PASSWORD": SASL_PASSWORD,  # held in settings; PLAINTEXT does not send it
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "consumers.cli", *args, "--bootstrap", bootstrap, "--topic-prefix", prefix,
             "--log-format", "json", "--log-level", "DEBUG"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        # Drain both pipes while the service runs: a DEBUG log fills a pipe's 64 KB buffer within
        # seconds on a slow machine, and a service blocked on writing its log consumes nothing.
        self._out: list[str] = []
        self._err: list[str] = []
        self._readers = [threading.Thread(target=self._drain, args=(pipe, sink), daemon=True)
                         for pipe, sink in ((self.process.stdout, self._out), (self.process.stderr, self._err))]
        for reader in self._readers:
            reader.start()

    def log_tail(self) -> list[str]:
        """The last lines the service wrote to stderr so far."""
        return self._err[-40:]

    @staticmethod
    def _drain(pipe: Any, sink: list[str]) -> None:
        for line in pipe:
            sink.append(line)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, body = _get(self.url("/metrics"))
        return _samples(body) if status == 200 else {}

    def stop(self) -> tuple[int, str, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            for reader in self._readers:
                reader.join(timeout=10)
        return self.process.returncode, "".join(self._out), "".join(self._err)


def test_infer_process_is_probed_and_scraped_while_it_consumes(
    topics: tuple[KafkaBus, TopicSettings, TopicNames], bootstrap: str, tmp_path: Path
) -> None:
    bus, settings, names = topics
    from consumers.settings import ModelSettings
    from consumers.stage.gallery_builder import build_gallery, find_shop_images, to_index
    from consumers.stage.model_loading import load_models

    packages = export_tiny_models(tmp_path / "models")
    detector, embedder = load_models(ModelSettings(str(packages["detector"]), str(packages["embedder"])), 0.05, 0.6)
    make_shop_images(tmp_path / "shop", {"A": "red", "B": "green"})
    build = build_gallery(find_shop_images(tmp_path / "shop"), detector, embedder, catalog="c1", progress=False)
    to_index(build).save(tmp_path / "gallery")
    entries = read_gallery_folder(tmp_path / "gallery")
    publish_gallery(bus.producer(), names.gallery, entries)
    producer = bus.producer()
    video = make_video(tmp_path / "cam1.mp4", ["red", "green"])
    for packet in iter_frame_packets("cam1", video, "keyframes"):
        key, value, headers = packet.to_record()
        producer.produce(names.frames, key, value, [*headers, ("catalog", b"c1")])
    producer.flush()
    frames = 8  # 4 s at 10 fps, a keyframe every 5 frames

    service = Service(["infer", "--detector", str(packages["detector"]), "--embedder", str(packages["embedder"]),
                       "--group", f"{settings.prefix}infer"], bootstrap, settings.prefix)  # fmt: skip
    try:
        _wait(lambda: _get(service.url("/healthz"))[0] == 200, "/healthz")
        _wait(lambda: _get(service.url("/readyz"))[0] == 200, "/readyz (engines, gallery, partitions)")
        ready = json.loads(_get(service.url("/readyz"))[1])
        assert set(ready["conditions"]) == {"engines_loaded", "gallery_bootstrapped", "partitions_assigned"}
        assert ready["conditions"]["engines_loaded"]["detail"].startswith("tiny-detector@")
        try:  # every frame processed and committed (a rebalance may deliver some twice: at least once)
            _wait(lambda: _all_processed_and_committed(service.metrics(), frames), "all frames processed")
        except AssertionError as exc:  # say what the service did, not only that it did not finish
            seen = {k: v for k, v in service.metrics().items() if k[0].startswith("livetag_frames")}
            raise AssertionError(f"{exc}; metrics {seen}; log tail {''.join(service.log_tail())[-3000:]}") from exc
        exposition = _get(service.url("/metrics"))[1]
        samples = _samples(exposition)
    finally:
        code, out, err = service.stop()
    assert code == 0, err[-2000:]
    processed = samples[("livetag_frames_out_total", ())]
    assert samples[("livetag_frames_in_total", ())] == processed
    assert samples[("livetag_end_to_end_latency_seconds_count", ())] == processed
    refused = int(re.search(r"\((\d+) refused by rebalances\)", out).group(1))  # type: ignore[union-attr]
    if refused == 0:  # a group that never rebalanced under the service delivers each frame once
        assert processed == frames
    else:  # a refused commit's batch may come again (fresh topics' metadata settling): at least once
        assert frames <= processed <= 2 * frames
    assert samples[("livetag_stage_latency_seconds_count", (("stage", "detect"),))] >= 1
    assert sum(v for (name, _), v in samples.items() if name == "livetag_consumer_lag") == 0
    assert samples[("livetag_gallery_vectors", ())] == len(entries)
    assert f"inference stopped: {processed:.0f} frames" in out
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert lines and all({"ts", "level", "logger", "stream_id", "message"} <= set(d) for d in lines)
    assert any(d["logger"] == "consumers.services.infer" and "partitions assigned" in d["message"] for d in lines)
    assert SASL_PASSWORD not in err and SASL_PASSWORD not in out and SASL_PASSWORD not in exposition


def test_ingest_process_masks_a_credentialed_stream_url_and_counts_its_dead_letter(
    topics: tuple[KafkaBus, TopicSettings, TopicNames], bootstrap: str
) -> None:
    bus, settings, names = topics
    url = f"rtmp://seller:{RTMP_PASSWORD}@127.0.0.1:{free_port()}/live/cam-9"
    producer = bus.producer()
    producer.produce(names.streams, b"cam-9", make_stream_value(url, "shop-9"))
    producer.flush()
    service = Service(["ingest", "--max-retries", "0", "--open-timeout", "2", "--group", f"{settings.prefix}ingest",
                       "--allow-loopback"],
                      bootstrap, settings.prefix)  # fmt: skip
    dead = ("livetag_dead_letters_total", (("reason", "SourceOpenError"), ("stage", "ingest-source")))
    try:
        _wait(lambda: _get(service.url("/readyz"))[0] == 200, "/readyz (partitions assigned)")
        _wait(lambda: service.metrics().get(dead) == 1, "the stream's dead letter")
        status, exposition = _get(service.url("/metrics"))
    finally:
        code, _, err = service.stop()
    assert code == 0 and status == 200, err[-2000:]
    for secret in (RTMP_PASSWORD, SASL_PASSWORD):
        assert secret not in err
        assert secret not in exposition
    lines: list[dict[str, Any]] = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    about = [d for d in lines if "cam-9" in d["message"]]
    assert any("rtmp://***@127.0.0.1" in d["message"] for d in about), about
    assert all(d["stream_id"] == "cam-9" for d in about if d["thread"].startswith("ingest-"))
