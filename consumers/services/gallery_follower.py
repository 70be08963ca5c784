"""The ``gallery`` topic (records: :mod:`consumers.messages.gallery_record`), published from a gallery
folder and followed live by inference consumers.

Because the topic is compacted, reading it from the start
gives the current gallery; :class:`GalleryFollower` does that at start-up and then keeps applying new
records to a :class:`engines.gallery.GalleryIndex` (thread-safe), so products are added and removed
without a restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from consumers.bus import Bus, Producer, Record
from consumers.bus.topic_follower import TopicFollower
from consumers.messages.gallery_record import GalleryEntry, GalleryRecordError, decode_gallery_record
from engines.gallery import GalleryIndex
from stream.errors import LiveTagError

log = logging.getLogger(__name__)

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
