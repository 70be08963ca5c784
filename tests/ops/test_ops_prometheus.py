"""A real Prometheus server scrapes a running inference pipeline during a replay.

The embedded pipeline (inference stage with tiny real models, in-process bus) replays two generated
videos at real-time pace while its metrics are served on /metrics; Debian's Prometheus, started with
a temporary config (1 s scrape interval), scrapes it. Queries through /api/v1/query must return the
frame counters and the end-to-end latency histogram with the values the run produced.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_server import PrometheusServer

from consumers.observability.health import INFERENCE_CONDITIONS, HealthServer, Liveness, Readiness
from consumers.observability.metrics import STAGES, PipelineMetrics
from consumers.services.embedded import SourceSpec
from consumers.services.replay import replay
from consumers.settings import ModelSettings
from consumers.stage.builder import build_stage
from consumers.stage.gallery_builder import build_gallery, find_shop_images, to_index
from consumers.stage.model_loading import load_models
from stream.clock import SystemClock

CONSUMER_TESTS = Path(__file__).resolve().parents[1] / "consumers"
if str(CONSUMER_TESTS) not in sys.path:
    sys.path.insert(0, str(CONSUMER_TESTS))
from consumers_media import ITEMS, LOOSE_SETTINGS, export_tiny_models, make_shop_images, make_video  # noqa: E402

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

SETTINGS = LOOSE_SETTINGS


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not PrometheusServer.available():
        pytest.fail("Debian's prometheus is not installed (apt-get install prometheus; scripts/test.sh does it)")
    root = tmp_path_factory.mktemp("prometheus-world")
    packages = export_tiny_models(root / "models")
    detector, embedder = load_models(ModelSettings(str(packages["detector"]), str(packages["embedder"])), 0.05, 0.6)
    make_shop_images(root / "shop", ITEMS)
    build = build_gallery(find_shop_images(root / "shop"), detector, embedder, catalog="c1", progress=False)
    videos = {
        "s1": make_video(root / "s1.mp4", ["red", "green"]),
        "s2": make_video(root / "s2.mp4", ["blue", "yellow"]),
    }
    return {"root": root, "detector": detector, "embedder": embedder, "gallery": to_index(build), "videos": videos}


def test_prometheus_scrapes_frame_counters_and_end_to_end_latency_during_a_replay(world: dict[str, Any]) -> None:
    clock = SystemClock()
    liveness = Liveness(clock, max_silence_s=60.0)
    metrics = PipelineMetrics(CollectorRegistry(), clock=clock, liveness=liveness)
    readiness = Readiness(INFERENCE_CONDITIONS)
    # the person-mask option on, so that every stage of STAGES is timed and scraped
    stage = build_stage(world["detector"], world["embedder"], world["gallery"],
                        SETTINGS.with_overrides(pipeline__person_cue=True), clock, metrics=metrics)
    readiness.set("engines_loaded", True, f"{world['detector'].spec.label} {world['embedder'].spec.label}")
    readiness.set("gallery_bootstrapped", True, f"{len(world['gallery'])} images")
    readiness.set("partitions_assigned", True, "frames[0]")
    specs = [SourceSpec(sid, str(path)) for sid, path in world["videos"].items()]
    events: list[dict[str, Any]] = []

    with HealthServer(metrics.registry, readiness, liveness, host="127.0.0.1", port=0) as server, \
            PrometheusServer.start(world["root"] / "prom", [f"127.0.0.1:{server.port}"], scrape_interval_s=1) as prom:
        # Prometheus applies a new target after its discovery debounce; replay once it scraped us.
        prom.wait_for('up{job="livetag-inference"}', lambda v: v == 1, timeout_s=30.0)
        assert prom.scalar("livetag_frames_in_total") == 0
        report = replay(stage, specs, SETTINGS.with_overrides(replay__speed="realtime"), events.append,
                        clock=clock, progress=False, metrics=metrics)
        frames = report.frames_published
        assert frames == report.frames_consumed == 16  # 2 streams x 4 s x 10 fps, a keyframe every 5 frames
        assert report.events == len(events) > 0

        # Prometheus keeps scraping after the replay ended: wait for a scrape that started later,
        # which holds the final values of the run.
        ended = clock.now()
        prom.wait_for('timestamp(up{job="livetag-inference"})', lambda t: t > ended)
        assert prom.scalar("livetag_frames_in_total") == frames
        reg = metrics.registry
        assert prom.scalar("livetag_frames_out_total") == frames
        assert prom.scalar("livetag_end_to_end_latency_seconds_count") == frames
        assert prom.scalar('livetag_end_to_end_latency_seconds_bucket{le="+Inf"}') == frames
        e2e_sum = prom.scalar("livetag_end_to_end_latency_seconds_sum")
        assert e2e_sum is not None and e2e_sum > 0
        assert e2e_sum == pytest.approx(reg.get_sample_value("livetag_end_to_end_latency_seconds_sum"))
        buckets = {r["metric"]["le"]: float(r["value"][1]) for r in prom.query("livetag_end_to_end_latency_seconds_bucket")}
        assert buckets == {
            le: reg.get_sample_value("livetag_end_to_end_latency_seconds_bucket", {"le": le}) for le in buckets
        }
        ordered = [buckets[le] for le in sorted(buckets, key=float)]
        assert ordered == sorted(ordered) and ordered[-1] == frames  # cumulative, ending at +Inf
        median = prom.scalar("histogram_quantile(0.5, livetag_end_to_end_latency_seconds_bucket)")
        assert median is not None and 0 < median <= 120.0

        published = prom.query("livetag_matches_published_total")
        assert sum(float(r["value"][1]) for r in published) == report.events
        assert {r["metric"]["event"] for r in published} <= {"match.started", "match.updated", "match.ended"}
        for stage_name in STAGES:
            expected = reg.get_sample_value("livetag_stage_latency_seconds_count", {"stage": stage_name})
            assert expected is not None and expected > 0
            got = prom.scalar(f'livetag_stage_latency_seconds_count{{stage="{stage_name}"}}')
            assert got == expected
        assert prom.scalar("sum(livetag_batch_size_sum)") == frames
        assert prom.scalar('livetag_consumer_lag{topic="frames",partition="0"}') == 0
        assert prom.scalar("livetag_gallery_vectors") == len(world["gallery"])
        (model,) = prom.query("livetag_model_info")
        assert model["metric"]["detector"] == world["detector"].spec.label
        assert prom.scalar("min_over_time(livetag_frames_in_total[1m])") == 0  # scraped before, during, after
        assert (prom.scalar('count_over_time(up{job="livetag-inference"}[1m])') or 0) >= 3
        assert all(t["health"] == "up" for t in prom.targets_up())
