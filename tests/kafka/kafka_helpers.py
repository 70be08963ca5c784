"""Shared helpers of the Kafka tests: read a topic to the end, run a worker loop in a thread."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from consumers.bus import Record, TopicPartition
from consumers.bus.kafka import KafkaBus
from stream.encode import write_video


def read_all(bus: KafkaBus, topic: str, want: int = 0, limit_s: float = 15.0) -> list[Record]:
    """Every record of ``topic`` (all partitions, from the start); waits up to ``limit_s`` for ``want``."""
    reader = bus.consumer([topic], None)
    out: list[Record] = []
    deadline = time.monotonic() + limit_s
    try:
        while time.monotonic() < deadline:
            batch = reader.poll(0.3, 500)
            out.extend(batch)
            if not batch and len(out) >= want:
                break
    finally:
        reader.close()
    return out


def wait_for(condition: Callable[[], bool], limit_s: float, what: str, step: Callable[[], object] | None = None) -> None:
    """Call ``step`` (or sleep) until ``condition`` holds; fail naming ``what`` after ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        if step is not None:
            step()
        else:
            time.sleep(0.1)


class LoopThread:
    """Runs ``target(stop_event)`` in a daemon thread; ``stop()`` sets the event and joins."""

    def __init__(self, target: Callable[[threading.Event], object], name: str) -> None:
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

        def body() -> None:
            try:
                target(self.stop_event)
            except BaseException as exc:  # surfaced by stop()
                self.error = exc

        self.thread = threading.Thread(target=body, name=name, daemon=True)
        self.thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self.stop_event.set()
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), f"{self.thread.name} did not stop"
        if self.error is not None:
            raise self.error


def collect_until_match_started(bus: KafkaBus, topic: str, group_id: str, limit_s: float, what: str) -> list[dict]:
    """Read match events from ``topic`` (a new consumer group) until one is ``match.started``.

    Returns:
        Every event read, in order. Fails the test naming ``what`` after ``limit_s`` seconds.
    """
    subscriber = bus.consumer([topic], group_id)
    events: list[dict] = []
    try:
        wait_for(
            lambda: any(e["event"] == "match.started" for e in events),
            limit_s,
            what,
            step=lambda: events.extend(json.loads(r.value or b"{}") for r in subscriber.poll(0.5, 100)),
        )
    finally:
        subscriber.close()
    return events


def moving_square_video(path: Path, seconds: float = 4.0, fps: int = 10, gop: int = 5, size: int = 64) -> Path:
    """A small H.264 file: a square moving over a grey background, a keyframe every ``gop`` frames."""
    frames = []
    for i in range(int(seconds * fps)):
        frame = np.full((size, size, 3), 90, np.uint8)
        x = (i * 3) % (size - 16)
        frame[20:36, x : x + 16] = (200, 40, 40)
        frames.append(frame)
    write_video(path, frames, fps=fps, codec="h264", gop=gop)
    return path


def product_image(seed: int, size: int = 128) -> np.ndarray:
    """A made-up product: coloured blocks on a light background, the same for the same seed. (H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), 200, np.uint8)
    for _ in range(6):
        x, y = rng.integers(0, size - 32, 2)
        w, h = rng.integers(size // 8, size // 3, 2)
        image[y : y + h, x : x + w] = rng.integers(0, 255, 3)
    return image


def product_video(path: Path, seed: int, seconds: float, fps: int = 10, gop: int = 5) -> Path:
    """An H.264 file showing ``product_image(seed)`` still, a keyframe every ``gop`` frames."""
    image = product_image(seed)
    write_video(path, (image for _ in range(int(seconds * fps))), fps=fps, codec="h264", gop=gop)
    return path


def first_frame(path: Path) -> np.ndarray:
    """The first decoded frame of a video file, (H, W, 3) RGB uint8."""
    import av

    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            return frame.to_ndarray(format="rgb24")
    raise AssertionError(f"{path} has no frame")


def gallery_entries(detector: object, embedder: object, image: np.ndarray, item_id: str, catalog: str, settings: object) -> list:
    """Gallery entries for ``item_id`` made from the detections of ``image``, the way the stage embeds them."""
    from consumers.messages.gallery_record import GalleryEntry
    from engines.preprocess import crop

    dets = detector.detect([image])[0]  # type: ignore[attr-defined]
    keep = np.flatnonzero(dets.sold >= settings.sold_threshold)  # type: ignore[attr-defined]
    keep = keep[np.argsort(-dets.sold[keep], kind="stable")][: settings.max_detections_per_frame]  # type: ignore[attr-defined]
    crops = [crop(image, dets.boxes[i], settings.crop_expand) for i in keep.tolist()]  # type: ignore[attr-defined]
    assert crops, "the detector found nothing to put in the gallery"
    vectors = embedder.embed(crops)  # type: ignore[attr-defined]
    return [
        GalleryEntry(f"{item_id}/{n}", item_id, vectors[n], catalog, _box(dets.boxes[i]), {"img_name": f"{n}.jpg"})
        for n, i in enumerate(keep.tolist())
    ]


def _box(row: np.ndarray) -> tuple[float, float, float, float]:
    return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))


def committed_offsets(bus: KafkaBus, group: str, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
    """The group's committed offset of each partition (None: none), read by a client that does not join."""
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KafkaTopicPartition

    inspector = KafkaConsumer(bootstrap_servers=bus.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {tp: inspector.committed(KafkaTopicPartition(tp.topic, tp.partition)) for tp in partitions}
    finally:
        inspector.close(autocommit=False)
