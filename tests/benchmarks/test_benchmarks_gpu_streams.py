"""The GPU capacity benchmark runs end to end at its tiny CPU size, so it is ready when a GPU is lent."""

from __future__ import annotations

import json
import threading

import pytest
from benchmark_scripts import load_benchmark


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("gpu") / "gpu.json"
    args = ["--device", "cpu", "--tiny", "--quiet", "--decode-workers", "2", "--json", str(out)]
    assert load_benchmark("gpu_streams").main(args) == 0
    return json.loads(out.read_text())


def test_every_part_reports(result: dict) -> None:
    assert result["size"] == "320x180" and result["keyframes_in_clip"] == 16
    for name in ("software_1_thread", "software_auto_threads", "software_1_thread_skip_loop_filter"):
        assert result["decode"][name]["keyframes_per_s"] > 0
    workers = result["decode"]["workers"]
    assert workers == 2
    assert result["decode"][f"software_{workers}_streams"]["keyframes_per_s"] > 0
    for streams in (1, workers):  # the device path's torch code, run on the CPU's pictures
        assert result["decode"][f"software_device_input_{streams}_streams"]["keyframes_per_s"] > 0
    for name in ("nvdec_h264_cuvid", "nvdec_hwaccel", "nvdec_hwaccel_frames_on_gpu", "nvdec_hwaccel_device_input"):
        for streams in (1, workers):  # no NVDEC on a CPU machine: said, not hidden
            nvdec = result["decode"][f"{name}_{streams}_streams"]
            assert "keyframes_per_s" in nvdec or nvdec["unavailable"]
    for role in ("detector", "embedder"):
        for batch in (1, 2):
            assert result["engines"][f"{role}_batch{batch}_per_s"] > 0


def test_streams_part_measures_latency_of_every_analysed_frame(result: dict) -> None:
    runs = result["streams"]["runs"]
    assert result["streams"]["decode_workers"] >= 1
    assert [r["streams"] for r in runs][0] == 2
    for run in runs:
        assert run["frames"] >= run["streams"]  # each stream sent one keyframe a second for 2 s
        assert 0 < run["p50_s"] <= run["p99_s"]
        assert run["stage_ms_per_frame"]["decode"] > 0 and run["stage_ms_per_frame"]["detect"] > 0
    passing = [r["streams"] for r in runs if r["p99_s"] <= result["streams"]["p99_target_s"]]
    assert result["streams"]["max_streams_within_target"] == (max(passing) if passing else 0)


def test_live_feed_keeps_only_the_newest_frame_of_a_stream() -> None:
    module = load_benchmark("gpu_streams")
    from consumers.services.demo import DEFAULT_SAMPLE, find_sample
    from stream.clock import SystemClock
    from stream.frames import iter_frame_packets

    video = find_sample(DEFAULT_SAMPLE).videos[0]
    packets = list(iter_frame_packets(video.stem, video, "keyframes"))[:2]
    feed = module.LiveFeed(packets, streams=3, period_s=0.05, clock=SystemClock())
    thread = threading.Thread(target=feed.run, daemon=True)
    thread.start()
    feed.stop.wait(0.32)  # about six rounds of three streams, none taken
    feed.stop.set()
    thread.join()
    taken = feed.take(10)
    assert sorted(r.key for r in taken) == [b"live00000", b"live00001", b"live00002"]
    assert feed.replaced == feed.published - 3 and feed.published >= 9
