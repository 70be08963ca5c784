"""The gallery topic: records round-trip, a follower loads it and applies adds and removals live."""

from __future__ import annotations

import numpy as np
import pytest
from kafka_helpers import wait_for

from consumers.bus import Record
from consumers.kafka.bus import KafkaBus
from consumers.kafka.gallery_topic import (
    GalleryEntry,
    GalleryFollower,
    GalleryRecordError,
    decode_gallery_record,
    publish_gallery,
)
from consumers.kafka.topics import TopicNames
from engines.gallery import GalleryIndex


def _entry(image_id: str, item_id: str, catalog: str, seed: int, dim: int = 8) -> GalleryEntry:
    vector = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return GalleryEntry(image_id, item_id, vector / np.linalg.norm(vector), catalog, (1.0, 2.0, 30.0, 40.0), {"category": 3})


def test_record_round_trip_and_malformed_records() -> None:
    entry = _entry("i1/0.jpg", "i1", "shop", 1)
    key, value = entry.to_record()
    back = decode_gallery_record(Record("g", key, value))
    assert isinstance(back, GalleryEntry)
    assert back.image_id == "i1/0.jpg" and back.item_id == "i1" and back.catalog == "shop"
    assert np.array_equal(back.vector, entry.vector) and back.item_box == (1.0, 2.0, 30.0, 40.0)
    assert decode_gallery_record(Record("g", key, None)) == "i1/0.jpg", "a tombstone names the image to remove"
    for bad, reason in ((b"{", "malformed"), (b'{"schema": "other/v9"}', "schema"), (value.replace(b'"dim": 8', b'"dim": 9'), "dim says 9")):
        with pytest.raises(GalleryRecordError, match=reason):
            decode_gallery_record(Record("g", key, bad))
    with pytest.raises(GalleryRecordError, match="no key"):
        decode_gallery_record(Record("g", None, value))


@pytest.mark.kafka
def test_follower_loads_then_follows_adds_and_removals(kafka_bus: KafkaBus, kafka_topics: TopicNames) -> None:
    producer = kafka_bus.producer()
    publish_gallery(producer, kafka_topics.gallery, [_entry(f"a/{n}", "item-a", "shop", n) for n in range(3)])
    producer.produce(kafka_topics.gallery, b"junk", b"not json")
    producer.flush(10)
    follower = GalleryFollower(kafka_bus, kafka_topics.gallery, GalleryIndex(8))
    assert follower.load(30) == 3
    assert follower.malformed == 1, "a malformed record is skipped, the rest is loaded"
    assert follower.catalog_items("shop") == {"item-a"} and follower.item_categories("item-a") == {3}
    follower.start()
    try:
        publish_gallery(producer, kafka_topics.gallery, [_entry("b/0", "item-b", "shop", 9)], remove=["a/0", "a/1", "a/2"])
        gallery = follower.gallery
        assert gallery is not None
        wait_for(lambda: set(gallery.image_ids()) == {"b/0"}, 20, "the follower to apply the add and the removals")
        assert follower.catalog_items("shop") == {"item-b"}
        hits = gallery.search(_entry("q", "-", "-", 9).vector, k=1, catalog=follower.catalog_items("shop"))
        assert hits[0][0].item_id == "item-b" and hits[0][0].score == pytest.approx(1.0, abs=1e-5)
    finally:
        follower.close()
        producer.close()
