"""kill -9 of an inference consumer with open segments: the partition's next owner carries them on.

Owner 1 is a real ``livetag infer`` process (long idle timeout, so its segment stays open), killed with
SIGKILL once its match started; owner 2 joins the group, reads the ``segments`` topic for the
partitions it gets and ends the segment by idle eviction with the id owner 1 would have used. No
second ``match.started``, no segment left open, every frame processed by one of the two.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kafka_helpers import (
    LoopThread,
    committed_offsets,
    first_frame,
    gallery_entries,
    product_video,
    read_all,
    wait_for,
)

from consumers.bus import TopicPartition
from consumers.bus.kafka import KafkaBus
from consumers.bus.topics import TopicNames
from consumers.messages.match_event import make_event_id
from consumers.messages.payload_schemas import check_payload
from consumers.messages.segment_state import latest_states
from consumers.services.gallery_follower import publish_gallery
from consumers.services.infer import InferenceConsumer, stage_from_gallery_topic
from consumers.services.replay_to_kafka import ReplayFile, replay_to_kafka
from consumers.settings import Settings, TopicSettings, VoterSettings

pytestmark = pytest.mark.kafka
REPO = Path(__file__).resolve().parents[2]
GROUP = "infer-handover"


def test_kill_9_of_a_consumer_with_open_segments_hands_them_to_the_next_owner(
    kafka_bus: KafkaBus, kafka_bootstrap: str, kafka_topics: TopicNames, topic_settings: TopicSettings,
    topic_prefix: str, tiny_models: tuple, tiny_package_dirs: dict[str, Path], tmp_path: Path,
) -> None:
    detector, embedder = tiny_models
    settings = Settings(topics=topic_settings)
    video = product_video(tmp_path / "a.mp4", 1, seconds=8.0)
    producer = kafka_bus.producer()
    publish_gallery(producer, kafka_topics.gallery,
                    gallery_entries(detector, embedder, first_frame(video), "item-A", "shop", settings.pipeline))
    frames = replay_to_kafka(producer, kafka_topics.frames, [ReplayFile("s1", str(video), "shop")], progress=False).total
    assert frames == 16
    env = {**os.environ, "LIVETAG_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "LIVETAG_TOPICS_PREFIX": topic_prefix,
           "LIVETAG_TOPICS_PARTITIONS": "4", "LIVETAG_VOTER_IDLE_TIMEOUT_S": "600"}
    owner1 = subprocess.Popen(
        [sys.executable, "-m", "consumers.cli", "infer", "--detector", str(tiny_package_dirs["detector"]),
         "--embedder", str(tiny_package_dirs["embedder"]), "--group", GROUP],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: any(r.value for r in read_all(kafka_bus, kafka_topics.segments, 1, limit_s=2)), 90,
                 "owner 1 to write its open segment")
    finally:
        owner1.send_signal(signal.SIGKILL)
        _, log = owner1.communicate(timeout=30)
    assert owner1.returncode == -signal.SIGKILL, log[-2000:]
    events = [json.loads(r.value or b"{}") for r in read_all(kafka_bus, kafka_topics.matches, 1)]
    assert [e["event"] for e in events if e["event"] != "match.updated"] == ["match.started"], "open when killed"
    (started,) = [e for e in events if e["event"] == "match.started"]
    records = read_all(kafka_bus, kafka_topics.segments, 1)
    states, problems = latest_states(records, GROUP)
    assert problems == [] and set(states) == {"s1"}
    check_payload("segments", json.loads(records[-1].value or b"{}"))
    state = states["s1"]
    assert state.item_id == started["item_id"] == "item-A" and state.segment_start == started["segment"]["start"]

    tp = TopicPartition(kafka_topics.frames, records[-1].partition)
    committed_by_owner1 = committed_offsets(kafka_bus, GROUP, [tp])[tp] or 0
    owner2_settings = Settings(topics=topic_settings, voter=VoterSettings(idle_timeout_s=3.0))
    stage, follower = stage_from_gallery_topic(kafka_bus, owner2_settings, detector, embedder)
    assert stage.segments_topic == kafka_topics.segments
    owner2 = InferenceConsumer(kafka_bus, stage, owner2_settings, follower, group_id=GROUP)
    loop = LoopThread(owner2.run, "owner2")
    try:
        wait_for(lambda: any(json.loads(r.value or b"{}").get("event") == "match.ended"
                             for r in read_all(kafka_bus, kafka_topics.matches, 1, limit_s=1)),
                 90, "owner 2 to end the adopted segment")
    finally:
        loop.stop()
    events = [json.loads(r.value or b"{}") for r in read_all(kafka_bus, kafka_topics.matches, 2)]
    assert {e["event_id"] for e in events if e["event"] == "match.started"} == {started["event_id"]}, \
        "no second segment was started for the same product"
    (ended,) = [e for e in events if e["event"] == "match.ended"]
    assert ended["event_id"] == make_event_id("s1", state.segment_start, "item-A", "match.ended", 0, state.session)
    assert ended["segment"]["start"] == started["segment"]["start"]
    assert stage.voter.stats["adopted"] == 1 and stage.voter.stats["evicted_idle"] == 1
    final, _ = latest_states(read_all(kafka_bus, kafka_topics.segments, 1), GROUP)
    assert final == {}, "the ended segment's state is a tombstone"
    # every frame is processed by owner 1 (committed) or handed to owner 2: the uncommitted rest, at
    # least once (a rebalance of owner 2's own may deliver some again)
    assert stage.counters.records >= frames - committed_by_owner1
    assert stage.voter.stats["frames"] + stage.voter.stats["handover_skipped"] == stage.counters.frames
