"""Shop images -> product crops -> embeddings -> a gallery index.

Layout of the input: ``IMAGES/<item_id>/<name>.jpg`` (one folder per item) and, optionally,
``ANNOTATIONS/<item_id>/<stem>.json`` in the Tianchi format. The crop is the annotated box of the
product (an annotation with ``instance_id > 0``, the largest if several) when annotations are given,
else the detector's most confident box; with neither, the whole image. Crops are expanded by 10 %
before embedding, as at inference time; other views of the crop (mirrored, tighter, looser) can be
averaged in (:mod:`engines.gallery_views`).

Gallery image ids are ``<item_id>/<img_name>``; each entry's metadata holds ``item_id``,
``img_name``, ``box`` (the crop box in the shop image, for the evidence's ``item_box``),
``catalog``, ``category`` (index in the detector's classes, from the annotation's label in any
official spelling, else the detector's) and ``title`` (the item's catalog title, when given).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from engines.base import Detector, Embedder
from engines.gallery import EmptyGalleryError, GalleryIndex
from stream.errors import LiveTagError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
Box = tuple[float, float, float, float]


class ShopImageError(LiveTagError):
    """The shop image folder is missing or unusable."""


@dataclass(frozen=True)
class ShopImage:
    """One shop image to embed.

    Attributes:
        item_id: The catalog item (the image's folder name, or the annotation's ``item_id``).
        img_name: File name inside the item folder.
        path: The image file.
        box: Annotated product box ``[x1, y1, x2, y2]`` in image pixels, or None.
    """

    item_id: str
    img_name: str
    path: Path
    box: Box | None = None
    label: str | None = None

    @property
    def image_id(self) -> str:
        """The gallery id ``<item_id>/<img_name>``."""
        return f"{self.item_id}/{self.img_name}"


@dataclass
class GalleryBuild:
    """What a build produced.

    Attributes:
        ids: Gallery image ids, one per row of ``vectors``.
        vectors: (N, D) float32 unit-norm embeddings.
        metadata: One dict per id (``item_id``, ``img_name``, ``box``, ``catalog``).
        skipped: ``(path, reason)`` of images that could not be used.
    """

    ids: list[str] = field(default_factory=list)
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    metadata: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def items(self) -> set[str]:
        """Distinct item ids in the gallery."""
        return {m["item_id"] for m in self.metadata}


def _annotated_box(path: Path) -> tuple[str | None, Box | None, str | None]:
    """``(item_id, box, label)`` of a shop image's annotation file; all None (the image is then
    treated as unannotated, its box found by the detector) when the file is not a readable
    annotation, with the reason in the log."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        item = doc.get("item_id")
        anns = [a for a in doc.get("annotations", []) if isinstance(a.get("box"), list) and len(a["box"]) == 4]
        products = [a for a in anns if int(a.get("instance_id", 0) or 0) > 0] or anns
        boxed = [(tuple(float(v) for v in a["box"]), a.get("label")) for a in products]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError, TypeError, ValueError) as exc:
        log.warning("ignoring annotation %s (%s: %s); the image's box comes from the detector", path,
                    type(exc).__name__, exc)
        return None, None, None
    item_id = str(item) if item else None
    if not boxed:
        return item_id, None, None
    box, label = max(boxed, key=lambda b: (b[0][2] - b[0][0]) * (b[0][3] - b[0][1]))  # the largest product box
    x1, y1, x2, y2 = box
    return item_id, (x1, y1, x2, y2), str(label) if label else None


def find_shop_images(images_dir: Path, annotations_dir: Path | None = None) -> list[ShopImage]:
    """List ``images_dir/<item_id>/*.jpg`` with their annotated boxes.

    Raises:
        ShopImageError: The folder is missing or holds no image.
    """
    if not images_dir.is_dir():
        raise ShopImageError(f"shop image folder {images_dir} not found; pass --images DIR holding <item_id>/<n>.jpg")
    if annotations_dir is not None and not annotations_dir.is_dir():
        raise ShopImageError(f"annotation folder {annotations_dir} not found; pass an existing --annotations DIR")
    found: list[ShopImage] = []
    for path in sorted(images_dir.rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        rel = path.relative_to(images_dir)
        item_id = rel.parts[0] if len(rel.parts) > 1 else path.stem
        box: Box | None = None
        label: str | None = None
        if annotations_dir is not None:
            ann = annotations_dir / rel.with_suffix(".json")
            if ann.is_file():
                ann_item, box, label = _annotated_box(ann)
                item_id = str(ann_item or item_id)
        found.append(ShopImage(item_id, path.name, path, box, label))
    if not found:
        raise ShopImageError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {images_dir}; expected <item_id>/<n>.jpg")
    return found


def read_rgb(path: Path) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3); raises ShopImageError when it does not decode."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise ShopImageError(f"{path} is not a readable image ({exc})") from exc


def _most_confident(detections: Any) -> tuple[Box | None, int | None]:
    """The most confident box and its most likely category index, or (None, None)."""
    if len(detections) == 0:
        return None, None
    best = int(np.argmax(detections.scores))
    x1, y1, x2, y2 = (float(v) for v in detections.boxes[best])
    return (x1, y1, x2, y2), int(np.argmax(detections.class_probs[best]))


def _label_index(classes: Sequence[str]) -> dict[str, int]:
    """Annotation label (canonical, English or official Tianchi spelling) -> index in ``classes``."""
    from engines.categories import OFFICIAL_SPELLINGS, UnknownCategoryError, canonical

    index = {name: i for i, name in enumerate(classes)}
    for label in [*classes, *OFFICIAL_SPELLINGS]:
        try:
            name = canonical(label)
        except UnknownCategoryError:
            continue
        if name in index:
            index[label] = index[name]
    return index


def build_gallery(
    images: Sequence[ShopImage],
    detector: Detector,
    embedder: Embedder,
    catalog: str | None = None,
    batch_size: int = 16,
    progress: bool = True,
    titles: Mapping[str, str] | None = None,
    views: Sequence[str] = ("box",),
) -> GalleryBuild:
    """Embed shop images.

    Args:
        images: The shop images (see :func:`find_shop_images`).
        detector: A Detector, used for images without an annotated box.
        embedder: An Embedder.
        catalog: Catalog id written into every entry's metadata.
        titles: item id -> catalog title, written into its entries' metadata (for text cues).
        views: Views of each image averaged into its vector (:mod:`engines.gallery_views`;
            ``box``: the product box + 10 %, the whole image where there is no box).
        batch_size: Images per detector / embedder call.
        progress: Show a tqdm bar.

    Returns:
        The vectors (N, D) and their ids and metadata; unreadable images are listed in ``skipped``.

    Raises:
        EmptyGalleryError: Not one image could be embedded.
    """
    from engines.gallery_views import embed_views, view_crops

    build = GalleryBuild()
    class_index = _label_index(tuple(getattr(detector.spec, "classes", ())))
    titles = titles or {}
    chunks: list[np.ndarray] = []
    bar = tqdm(total=len(images), desc="gallery", unit="img", disable=None if progress else True)
    for start in range(0, len(images), batch_size):
        group = images[start : start + batch_size]
        loaded: list[tuple[ShopImage, np.ndarray]] = []
        for shop in group:
            try:
                loaded.append((shop, read_rgb(shop.path)))
            except ShopImageError as exc:
                log.warning("skipping %s", exc)
                build.skipped.append((str(shop.path), str(exc)))
        need_detect = [i for i, (shop, _) in enumerate(loaded) if shop.box is None]
        detected: dict[int, tuple[Box | None, int | None]] = {}
        if need_detect:
            results = detector.detect([loaded[i][1] for i in need_detect])
            detected = {i: _most_confident(d) for i, d in zip(need_detect, results, strict=True)}
        crops: list[list[np.ndarray]] = []
        for i, (shop, rgb) in enumerate(loaded):
            box, category = (shop.box, class_index.get(shop.label or "")) if shop.box is not None else detected[i]
            crops.append(view_crops(rgb, box, views))
            height, width = rgb.shape[:2]
            box = box if box is not None else (0.0, 0.0, float(width), float(height))
            build.ids.append(shop.image_id)
            build.metadata.append(
                {
                    "item_id": shop.item_id,
                    "img_name": shop.img_name,
                    "box": [round(v, 2) for v in box],
                    "catalog": catalog,
                    "category": category,
                    **({"title": titles[shop.item_id]} if titles.get(shop.item_id) else {}),
                }
            )
        if crops:
            chunks.append(embed_views(embedder, crops))
        bar.update(len(group))
    bar.close()
    if not build.ids:
        raise EmptyGalleryError("no shop image could be embedded; check the --images folder holds readable images")
    build.vectors = np.concatenate(chunks, axis=0)
    return build


def gallery_refs(gallery: GalleryIndex) -> dict[str, tuple[str, str]]:
    """gallery image id -> (item id, shop image name), from the images' metadata ``img_name``."""
    snap = gallery.snapshot
    return {
        str(image_id): (str(item_id), str(meta.get("img_name", str(image_id).rsplit("/", 1)[-1])))
        for image_id, item_id, meta in zip(snap.image_ids, snap.item_ids, snap.metadata, strict=True)
    }


def to_index(build: GalleryBuild) -> GalleryIndex:
    """Put a build into a gallery index (exact flat search); catalogs, categories and titles come
    with the metadata."""
    index = GalleryIndex(int(build.vectors.shape[1]))
    item_ids = [m["item_id"] for m in build.metadata]
    index.add(build.ids, item_ids, build.vectors, [m["box"] for m in build.metadata], build.metadata)
    return index


def load_gallery(folder: Path) -> GalleryIndex:
    """Load a gallery written by ``livetag gallery build``.

    Raises:
        EmptyGalleryError: The folder holds no gallery, or a gallery without images.
    """
    if not folder.is_dir():
        raise EmptyGalleryError(f"gallery {folder} not found; build one with 'livetag gallery build --images DIR --out {folder}'")
    index = GalleryIndex.load(folder)
    if len(index) == 0:
        raise EmptyGalleryError(f"gallery {folder} holds no images; rebuild it from a folder of shop images")
    return index
