"""The ``gallery`` topic's record: one compacted record per shop image.

Key = gallery image id (UTF-8, ``<item_id>/<img_name>``). Value = JSON::

    {"schema": "livetag.gallery/v1", "image_id": "...", "item_id": "...", "catalog": "shop-1" | null,
     "dim": 256, "vector": "<base64 of dim little-endian float32>", "item_box": [x1, y1, x2, y2] | null,
     "metadata": {...}}

A tombstone (null value) removes the image (schema: ``schemas/gallery_record.v1.json``).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from consumers.bus import Record
from stream.errors import LiveTagError

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
