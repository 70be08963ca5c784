"""What observability costs per frame: metric recording, log redaction and a /metrics scrape.

Run: ``python benchmarks/observability_overhead.py`` (a few seconds on one core). Prints the mean
cost of ``PipelineMetrics.record_poll + record_published + update_lag`` per batch and per frame,
of one redacted JSON log line, and of rendering /metrics.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest

from consumers.bus import Record, TopicSpec
from consumers.bus.in_process import InProcessBus
from consumers.observability.logging_setup import bind_stream, reset_logging, setup_logging
from consumers.observability.metrics import STAGES, PipelineMetrics
from stream.clock import SystemClock


def _mean_seconds(fn: Callable[[], object], repeat: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    clock = SystemClock()
    metrics = PipelineMetrics(CollectorRegistry(), clock=clock)
    bus = InProcessBus(clock)
    bus.create_topics([TopicSpec("frames", 4)])
    consumer = bus.consumer(["frames"], "bench")
    consumer.poll(timeout_s=0.01)
    batch = 16
    frames = [Record("frames", b"s", b"x", [("wallclock", repr(clock.now()).encode())], 0, i) for i in range(batch)]
    match = Record("matches", b"s", b"{}", [("lt-schema", b"livetag.match/v1"), ("event", b"match.updated")])

    def one_batch() -> None:
        metrics.record_poll(batch)
        for stage in STAGES:
            metrics.observe_stage(stage, 0.01)
        metrics.observe_batch(batch)
        metrics.record_published(frames, [match])
        metrics.update_lag(consumer)

    per_batch = _mean_seconds(one_batch, 2000)
    print(f"metrics: {per_batch * 1e6:.1f} us per batch of {batch} ({per_batch / batch * 1e6:.2f} us per frame)")

    sink = io.StringIO()
    setup_logging("json", "INFO", secrets=["sasl-secret-value"], stream=sink)
    log = logging.getLogger("bench")

    def one_line() -> None:
        with bind_stream("cam-1"):
            log.info("open %s failed (%s); retry %d", "rtmp://user:pass@example.com/live/x", "refused", 1)

    per_line = _mean_seconds(one_line, 5000)
    reset_logging()
    print(f"logging: {per_line * 1e6:.1f} us per redacted JSON line")
    per_scrape = _mean_seconds(lambda: generate_latest(metrics.registry), 500)
    print(f"/metrics: {per_scrape * 1e3:.2f} ms per render ({len(generate_latest(metrics.registry))} bytes)")


if __name__ == "__main__":
    main()
