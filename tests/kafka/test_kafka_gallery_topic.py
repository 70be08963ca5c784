"""The gallery topic: records round-trip, a follower loads it and applies adds and removals live."""

from __future__ import annotations

import numpy as np
import pytest
from kafka_helpers import wait_for

from consumers.bus import Record
from consumers.bus.kafka import KafkaBus
from consumers.bus.topics import TopicNames
from consumers.messages.gallery_record import GalleryEntry, GalleryRecordError, decode_gallery_record
from consumers.services.gallery_follower import GalleryFollower, publish_gallery
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
    assert follower.gallery.catalog_items("shop") == {"item-a"} and follower.gallery.item_categories("item-a") == {3}
    follower.start()
    try:
        publish_gallery(producer, kafka_topics.gallery, [_entry("b/0", "item-b", "shop", 9)], remove=["a/0", "a/1", "a/2"])
        gallery = follower.gallery
        assert gallery is not None
        wait_for(lambda: set(gallery.image_ids()) == {"b/0"}, 20, "the follower to apply the add and the removals")
        assert follower.gallery.catalog_items("shop") == {"item-b"}
        hits = gallery.search(_entry("q", "-", "-", 9).vector, k=1, catalog=follower.gallery.catalog_items("shop"))
        assert hits[0][0].item_id == "item-b" and hits[0][0].score == pytest.approx(1.0, abs=1e-5)
    finally:
        follower.close()
        producer.close()


def test_apply_adds_runs_of_images_in_one_call_and_isolates_a_bad_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each add copies the gallery once: a run of records is one add; a removal splits the runs; an
    image whose vector does not fit is found by retrying its run one by one, and only it is lost."""
    from consumers.bus import TopicSpec
    from consumers.bus.in_process import InProcessBus
    from stream.clock import FakeClock

    bus = InProcessBus(FakeClock())
    bus.create_topics([TopicSpec("g", 1)])
    gallery = GalleryIndex(8)
    sizes: list[int] = []
    add = gallery.add

    def counted(image_ids: list[str], *rest: object, **opts: object) -> None:
        sizes.append(len(image_ids))
        add(image_ids, *rest, **opts)  # type: ignore[arg-type]

    monkeypatch.setattr(gallery, "add", counted)
    follower = GalleryFollower(bus, "g", gallery)
    records = [Record("g", *_entry(f"a/{n}", "item-a", "shop", n).to_record()) for n in range(40)]
    records.insert(20, Record("g", b"a/3", None))  # a removal between two runs
    records.insert(30, Record("g", *_entry("bad/0", "item-x", "shop", 99, dim=9).to_record()))
    assert follower.apply(records) == 41  # 40 images + the removal; the bad one is not counted
    assert follower.malformed == 1
    assert len(gallery) == 39 and "a/3" not in gallery.image_ids() and "bad/0" not in gallery.image_ids()
    # one add for the first run; the second run holds the bad image (its vectors do not even stack):
    # it is retried image by image
    assert sizes == [20] + [1] * 21
    assert follower.gallery.catalog_items("shop") == {"item-a"}
