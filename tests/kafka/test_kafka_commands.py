"""The Kafka commands as a user runs them: topics create, gallery publish, replay --to-kafka, and
``livetag infer`` in its own process, stopped with SIGTERM (drain, commit, leave)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from kafka_helpers import committed_offsets, first_frame, gallery_entries, product_video, read_all, wait_for

from consumers.bus import TopicPartition
from consumers.bus.kafka import KafkaBus
from consumers.bus.topics import TopicNames
from consumers.settings import PipelineSettings, TopicSettings
from engines.gallery import GalleryIndex
from stream.packet import FramePacket

pytestmark = pytest.mark.kafka
REPO = Path(__file__).resolve().parents[2]


def livetag(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consumers.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_topics_create_lists_and_is_idempotent(kafka_bootstrap: str, topic_prefix: str) -> None:
    first = livetag("topics", "create", "--bootstrap", kafka_bootstrap, "--topic-prefix", topic_prefix, "--partitions", "2")
    assert first.returncode == 0, first.stderr
    rows = {line.split()[0]: line.split()[1:] for line in first.stdout.splitlines()}
    assert set(rows) == {f"{topic_prefix}{t}" for t in ("streams", "frames", "gallery", "matches", "dlq", "transcripts",
                                                          "segments")}
    assert all(r[0] == "created" and "partitions=2" in r for r in rows.values())
    compacted = {name for name, row in rows.items() if "cleanup=compact" in row}
    assert compacted == {f"{topic_prefix}{t}" for t in ("streams", "gallery", "segments")}
    again = livetag("topics", "create", "--bootstrap", kafka_bootstrap, "--topic-prefix", topic_prefix, "--partitions", "2")
    assert again.returncode == 0 and again.stdout.count(" exists ") == 7
    clash = livetag("topics", "create", "--bootstrap", kafka_bootstrap, "--topic-prefix", topic_prefix, "--partitions", "3")
    assert clash.returncode == 1
    assert clash.stderr.strip().splitlines() == [
        f"livetag: error: topic '{topic_prefix}streams' exists with 2 partitions, not 3; change the settings or recreate the topic"
    ]


def test_publish_replay_and_infer_process_drains_on_sigterm(
    kafka_bus: KafkaBus, kafka_topics: TopicNames, topic_settings: TopicSettings, tiny_models: tuple,
    tiny_package_dirs: dict[str, Path], tmp_path: Path,
) -> None:  # fmt: skip
    detector, embedder = tiny_models
    video = product_video(tmp_path / "seller-1.mp4", seed=21, seconds=12.0)
    entries = gallery_entries(detector, embedder, first_frame(video), "item-A", "shop", PipelineSettings())
    gallery = GalleryIndex(embedder.dim)
    gallery.add([e.image_id for e in entries], [e.item_id for e in entries], np.stack([e.vector for e in entries]),
                [e.item_box for e in entries], [{"img_name": "x.jpg"} for _ in entries])  # fmt: skip
    gallery.save(tmp_path / "gallery")
    kafka = ["--bootstrap", kafka_bus.bootstrap, "--topic-prefix", topic_settings.prefix]

    published = livetag("gallery", "publish", str(tmp_path / "gallery"), "--catalog", "shop", *kafka)
    assert published.returncode == 0, published.stderr
    assert f"{len(entries)} images published, 0 removed" in published.stdout
    replayed = livetag("replay", str(video), "--to-kafka", "--stream-catalog", "shop", "--speed", "max", *kafka)
    assert replayed.returncode == 0, replayed.stderr
    assert "24 frames from 1 files" in replayed.stdout
    frames = read_all(kafka_bus, kafka_topics.frames, 24)
    assert len(frames) == 24 and {r.header("catalog") for r in frames} == {b"shop"}
    assert sorted(FramePacket.from_record(r.key, r.value, r.headers).sequence for r in frames) == list(range(24))

    # First process: stopped by SIGTERM as soon as it published a match, usually mid-topic.
    first_out = _infer_until(kafka, tiny_package_dirs, lambda: bool(read_all(kafka_bus, kafka_topics.matches, 1, limit_s=1)))
    first = _consumed(first_out)
    ends = _end_offsets(kafka_bus, kafka_topics.frames)
    committed = sum(_committed(kafka_bus, "cli-infer", ends).values())
    # Second process in the same group: resumes after the committed offsets and finishes the topic.
    second_out = _infer_until(kafka, tiny_package_dirs, lambda: _committed(kafka_bus, "cli-infer", ends) == ends)
    if _refused(first_out) + _refused(second_out) == 0:
        assert committed == first, "it committed exactly what it processed"
        assert first + _consumed(second_out) == 24, "every frame processed once: no loss, no duplicate after a clean stop"
    else:  # the group rebalanced under a process (fresh topics' metadata settling): a refused commit
        # means its batch is delivered again (at least once, never lost)
        assert committed <= first
        assert committed + _consumed(second_out) >= 24, "the second process takes everything not committed"
    events = [json.loads(r.value or b"{}") for r in read_all(kafka_bus, kafka_topics.matches, 1)]
    assert events and {e["item_id"] for e in events} == {"item-A"}


def _infer_until(kafka: list[str], packages: dict[str, Path], condition: Callable[[], bool]) -> str:
    """Run ``livetag infer`` until ``condition`` holds, then SIGTERM it; returns its stdout (exit code 0)."""
    env = {**os.environ, "LIVETAG_BATCH_MAX_BATCH": "4"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "consumers.cli", "infer", *kafka, "--group", "cli-infer",
         "--detector", str(packages["detector"]), "--embedder", str(packages["embedder"])],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()  # printed once the SIGTERM handler is in place
        assert banner.startswith("inference consumer in group cli-infer"), banner
        try:
            wait_for(condition, 90, "the infer process to make progress", step=lambda: time.sleep(0.2))
        except AssertionError:
            proc.kill()
            _, err = proc.communicate(timeout=30)
            raise AssertionError(f"the infer process made no progress; its log ends with: {err[-3000:]}") from None
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        out = banner + out
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    return out


def _refused(out: str) -> int:
    found = re.search(r"\((\d+) refused by rebalances\)", out)
    assert found, out
    return int(found.group(1))


def _consumed(out: str) -> int:
    found = re.search(r"inference stopped: (\d+) frames", out)
    assert found, out
    return int(found.group(1))


def _end_offsets(bus: KafkaBus, topic: str) -> dict[TopicPartition, int]:
    probe = bus.consumer([topic], None)
    try:
        return probe.end_offsets(probe.assignment())
    finally:
        probe.close()


def _committed(bus: KafkaBus, group: str, ends: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    """The group's committed offsets (0 where none)."""
    return {tp: offset or 0 for tp, offset in committed_offsets(bus, group, ends).items()}


def test_infer_refuses_an_empty_gallery_in_one_line(
    kafka_bus: KafkaBus, kafka_topics: TopicNames, topic_settings: TopicSettings, tiny_package_dirs: dict[str, Path]
) -> None:
    result = livetag("infer", "--bootstrap", kafka_bus.bootstrap, "--topic-prefix", topic_settings.prefix,
                     "--detector", str(tiny_package_dirs["detector"]), "--embedder", str(tiny_package_dirs["embedder"]))  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"livetag: error: the gallery topic {kafka_topics.gallery} is empty"), result.stderr
