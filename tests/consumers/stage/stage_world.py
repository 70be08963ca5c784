"""Shared world of the stage tests: tiny real models, a two-catalog gallery, two generated videos."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from consumers_media import ITEMS, LOOSE_SETTINGS, export_tiny_models, make_shop_images, make_video

from consumers.bus import Record
from consumers.bus.in_process import InProcessBus, InProcessProducer
from consumers.bus.topics import topic_specs
from consumers.settings import ModelSettings
from consumers.stage.builder import build_stage
from consumers.stage.gallery_builder import build_gallery, find_shop_images, to_index
from consumers.stage.inference_stage import InferenceStage
from consumers.stage.model_loading import load_models
from engines.gallery import GalleryIndex
from stream.clock import FakeClock
from stream.frames import iter_frame_packets
from stream.packet import FramePacket

SETTINGS = LOOSE_SETTINGS


def build_world(root: Path) -> dict[str, Any]:
    """Tiny models, a gallery of items A-D (A, B in catalog c1; C, D in c2) and videos s1, s2 under ``root``."""
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


def stage_of(world: dict[str, Any], clock: FakeClock, **kw: Any) -> InferenceStage:
    """A stage on the world's models and gallery with the tests' settings."""
    gallery: GalleryIndex = world["gallery"]
    return build_stage(world["detector"], world["embedder"], gallery, SETTINGS, clock, **kw)


def keyframe_packets(path: Path, stream_id: str) -> list[FramePacket]:
    """The video's keyframes as frame packets of ``stream_id``."""
    return list(iter_frame_packets(stream_id, path, "keyframes"))


def frame_records(packets: list[FramePacket], catalog: str | None = None) -> list[Record]:
    """The packets as records of partition 0 of ``frames`` (offsets 0..n-1), with a catalog header if given."""
    out = []
    for offset, packet in enumerate(packets):
        key, value, headers = packet.to_record()
        if catalog is not None:
            headers = [*headers, ("catalog", catalog.encode())]
        out.append(Record("frames", key, value, headers, 0, offset))
    return out


def bus_of(clock: FakeClock) -> tuple[InProcessBus, InProcessProducer]:
    """An in-process bus with the tests' topics, and a producer on it."""
    bus = InProcessBus(clock)
    bus.create_topics(topic_specs(SETTINGS.topics))
    return bus, bus.producer()


def produce_keyframes(producer: InProcessProducer, world: dict[str, Any], stream_id: str) -> int:
    """Publish the keyframes of the world's video ``stream_id`` to ``frames``; returns how many."""
    packets = keyframe_packets(world["videos"][stream_id], stream_id)
    for packet in packets:
        producer.produce("frames", *packet.to_record())
    return len(packets)
