"""The ``gallery`` topic: one compacted record per shop image, followed live by inference consumers.

Key = gallery image id (UTF-8, ``<item_id>/<img_name>``). Value = JSON::

    {"schema": "livetag.gallery/v1", "image_id": "...", "item_id": "...", "catalog": "shop-1" | null,
     "dim": 256, "vector": "<base64 of dim little-endian float32>", "item_box": [x1, y1, x2, y2] | null,
     "metadata": {...}}

A tombstone (null value) removes the image. Because the topic is compacted, reading it from the start
gives the current gallery; :class:`GalleryFollower` does that at start-up and then keeps applying new
records to a :class:`engines.gallery.GalleryIndex` (thread-safe), so products are added and removed
without a restart.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from consumers.bus import Bus, Producer, Record
from consumers.bus.topic_follower import TopicFollower
from engines.gallery import GalleryIndex
from stream.errors import LiveTagError

log = logging.getLogger(__name__)

SCHEMA = "livetag.gallery/v1"


class GalleryRecordError(LiveTagError):
    """A ``gallery`` record or a saved gallery folder is malformed."""


@dataclass(frozen=True)
class GalleryEntry:
    """One shop image in the gallery.

    Attributes:
        image_id: Gallery image id (record key).
        item_id: The product.
        vector: (D,) float32 L2-normalised embedding.
        catalog: Catalog the item belongs to, or None.
        item_box: ``x1, y1, x2, y2`` of the item in the shop image, or None.
        metadata: JSON-serialisable extras (``img_name``, ``box`` ...).
    """

    image_id: str
    item_id: str
    vector: np.ndarray
    catalog: str | None = None
    item_box: tuple[float, float, float, float] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> tuple[bytes, bytes]:
        """``(key, value)`` for the gallery topic."""
        vec = np.ascontiguousarray(self.vector, dtype="<f4").reshape(-1)
        doc = {
            "schema": SCHEMA,
            "image_id": self.image_id,
            "item_id": self.item_id,
            "catalog": self.catalog,
            "dim": int(vec.shape[0]),
            "vector": base64.b64encode(vec.tobytes()).decode(),
            "item_box": None if self.item_box is None else [float(v) for v in self.item_box],
            "metadata": self.metadata,
        }
        return self.image_id.encode(), json.dumps(doc, ensure_ascii=False).encode()


def decode_gallery_record(record: Record) -> GalleryEntry | str:
    """The entry of a gallery record, or the image id to remove for a tombstone.

    Raises:
        GalleryRecordError: Missing key, bad JSON, wrong schema, or a vector that does not match ``dim``.
    """
    if not record.key:
        raise GalleryRecordError(f"gallery record at offset {record.offset} has no key (image id)")
    image_id = record.key.decode("utf-8", errors="replace")
    if record.value is None:
        return image_id
    try:
        doc = json.loads(record.value)
        if doc.get("schema") != SCHEMA:
            raise ValueError(f"schema is {doc.get('schema')!r}, expected {SCHEMA!r}")
        vector = np.frombuffer(base64.b64decode(doc["vector"], validate=True), dtype="<f4").astype(np.float32)
        if vector.shape[0] != int(doc["dim"]):
            raise ValueError(f"vector has {vector.shape[0]} values, dim says {doc['dim']}")
        box = doc.get("item_box")
        return GalleryEntry(
            image_id=image_id,
            item_id=str(doc["item_id"]),
            vector=vector,
            catalog=doc.get("catalog"),
            item_box=None if box is None else (float(box[0]), float(box[1]), float(box[2]), float(box[3])),
            metadata=dict(doc.get("metadata") or {}),
        )
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise GalleryRecordError(f"gallery record {image_id!r} is malformed: {exc}") from exc


def read_gallery_folder(folder: str | Path) -> list[GalleryEntry]:
    """Entries of a gallery saved by ``GalleryIndex.save`` (``gallery.json`` + ``vectors.npz``)."""
    snap = GalleryIndex.load(Path(folder)).snapshot  # validates the folder and raises a clear error
    out = []
    for row, (image_id, item_id, meta) in enumerate(zip(snap.image_ids, snap.item_ids, snap.metadata, strict=True)):
        box = snap.boxes[row]
        out.append(
            GalleryEntry(
                image_id=str(image_id),
                item_id=str(item_id),
                vector=snap.vectors[row],
                catalog=meta.get("catalog"),
                item_box=None if np.isnan(box).any() else (float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                metadata=dict(meta),
            )
        )
    return out


def publish_gallery(
    producer: Producer, topic: str, entries: Iterable[GalleryEntry], remove: Iterable[str] = ()
) -> tuple[int, int]:
    """Publish ``entries`` and tombstones for the ``remove`` image ids; flush. Returns (added, removed)."""
    added = removed = 0
    for entry in entries:
        key, value = entry.to_record()
        producer.produce(topic, key, value)
        added += 1
    for image_id in remove:
        producer.produce(topic, image_id.encode(), None)
        removed += 1
    producer.flush()
    return added, removed


class GalleryFollower(TopicFollower):
    """Keeps a :class:`GalleryIndex` equal to the ``gallery`` topic.

    ``load`` reads the topic to the end offsets seen at start; ``start`` then follows it in a daemon
    thread. Malformed records are logged and skipped (the previous state of that image stays).

    Args:
        bus: The bus.
        topic: Gallery topic name.
        gallery: Index to fill (empty or not); may be None to create one from the first vector's size.
    """

    def __init__(self, bus: Bus, topic: str, gallery: GalleryIndex | None = None) -> None:
        super().__init__(bus, topic)
        self.gallery = gallery
        self.applied = 0
        self.malformed = 0
        #: Called with item id -> title after records changed a title (the text cues' catalog).
        self.on_titles: Callable[[dict[str, str]], None] | None = None

    def apply(self, records: Iterable[Record]) -> int:
        """Apply gallery records in order; returns how many changed the index.

        Consecutive images are added to the index in one call (each call copies the gallery once);
        a removal, or an image already waiting, first adds what waits.
        """
        added: list[GalleryEntry] = []
        removed = 0
        waiting: dict[str, GalleryEntry] = {}  # image id -> entry, in arrival order
        for record in records:
            try:
                found = decode_gallery_record(record)
            except GalleryRecordError as exc:
                self.malformed += 1
                log.warning("%s", exc)
                continue
            if isinstance(found, str) or found.image_id in waiting:
                added += self._add(list(waiting.values()))
                waiting = {}
            if isinstance(found, str):
                if self.gallery is not None:
                    self.gallery.remove_images([found])
                removed += 1
            else:
                waiting[found.image_id] = found
        added += self._add(list(waiting.values()))
        changed = len(added) + removed
        self.applied += changed
        if _titled(added) and self.on_titles is not None and self.gallery is not None:
            self.on_titles(self.gallery.item_titles())
        return changed

    def _add(self, entries: list[GalleryEntry]) -> list[GalleryEntry]:
        """Add entries to the index in one call (one by one if the batch is refused, to find the bad
        one); returns those added."""
        if not entries:
            return []
        if self.gallery is None:
            self.gallery = GalleryIndex(int(entries[0].vector.shape[0]))
        try:
            self._index(entries)
            added = entries
        except (LiveTagError, ValueError):  # ValueError: vectors of different sizes in one batch
            added = []
            for entry in entries:
                try:
                    self._index([entry])
                    added.append(entry)
                except (LiveTagError, ValueError) as exc:
                    self.malformed += 1
                    log.warning("gallery record %r rejected: %s", entry.image_id, exc)
        return added

    def _index(self, entries: list[GalleryEntry]) -> None:
        assert self.gallery is not None
        self.gallery.add(
            [e.image_id for e in entries], [e.item_id for e in entries], np.stack([e.vector for e in entries]),
            [e.item_box for e in entries], [{**e.metadata, "catalog": e.catalog} for e in entries],
        )  # fmt: skip

    def load(self, timeout_s: float = 60.0) -> int:
        """Read the topic up to the end offsets seen now; returns images in the gallery."""
        parts = self._consumer.assignment()
        ends = self._consumer.end_offsets(parts)
        deadline = time.monotonic() + timeout_s
        while any(self._consumer.position(tp) < end for tp, end in ends.items()):
            if time.monotonic() > deadline:
                raise GalleryRecordError(f"gallery topic {self.topic!r} not read to its end within {timeout_s:.0f} s")
            self.apply(self._consumer.poll(0.5, 1000))
        return 0 if self.gallery is None else len(self.gallery)


def _titled(entries: list[GalleryEntry]) -> int:
    """How many of ``entries`` carry an item title."""
    return sum(1 for e in entries if isinstance(e.metadata.get("title"), str) and e.metadata["title"])
