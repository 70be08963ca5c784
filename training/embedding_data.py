"""Crop data for the embedder: cached uint8 crops of shop images and stream frames, and their labels.

Crops are decoded once and cached as ``.npz`` under ``DATA/cache/`` (:func:`load_or_build_crops`):
shop-image product boxes and sold-item video boxes (``instance_id > 0``, labelled by the product that
instance links to), so that frame crops and shop crops of one product share a label. Sampling and
augmentation of these crops live in ``training.embedding_batches``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from engines.preprocess import expand_box, stretch
from stream.errors import LiveTagError
from training.models.embedder import INPUT_SIZE

# --------------------------------------------------------------------------------------------------
# Crop cache: decode shop images and video frames once, keep the crops as uint8 arrays in an .npz.

TRAIN_CONTEXT = 0.3  # training crops keep 30 % extra context around the box for the random crop
TRAIN_CROP_SIZE = 144
EVAL_CONTEXT = 0.1  # the runtime contract: box expanded by 10 %, stretched to 128 x 128
SOURCE_SHOP, SOURCE_FRAME = 0, 1


class CropDataError(LiveTagError):
    """The data set holds no usable crops, or a cache file is unreadable."""


@dataclass(frozen=True)
class CropSet:
    """Crops of one split with their product labels.

    Attributes:
        images: [N, S, S, 3] uint8 RGB stretched crops.
        inner_boxes: [N, 4] float32, the 10 %-expanded box inside each crop as fractions in [0, 1].
        labels: [N] int64 index into ``item_ids``.
        item_ids: [M] product ids (str).
        sources: [N] uint8, ``SOURCE_SHOP`` or ``SOURCE_FRAME``.
    """

    images: np.ndarray
    inner_boxes: np.ndarray
    labels: np.ndarray
    item_ids: np.ndarray
    sources: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, mask: np.ndarray) -> CropSet:
        """The crops where ``mask`` [N] bool is true (labels keep their meaning)."""
        return CropSet(self.images[mask], self.inner_boxes[mask], self.labels[mask], self.item_ids, self.sources[mask])

    def save(self, path: Path, fingerprint: str) -> None:
        """Write an uncompressed .npz atomically (fast to load on every run)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, images=self.images, inner_boxes=self.inner_boxes, labels=self.labels,
                 item_ids=self.item_ids.astype(str), sources=self.sources, fingerprint=np.array(fingerprint))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, fingerprint: str) -> CropSet | None:
        """The cached crops, or ``None`` when the file is missing or was built from other data."""
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["fingerprint"]) != fingerprint:
                    return None
                return cls(data["images"], data["inner_boxes"], data["labels"], data["item_ids"], data["sources"])
        except (OSError, KeyError, ValueError) as exc:
            raise CropDataError(f"crop cache {path} is unreadable ({exc}); delete it to rebuild") from exc


def _cut(image: np.ndarray, box: Sequence[float], context: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``box`` expanded by ``context``, stretch to ``size``; also locate the 10 % box inside it."""
    h, w = image.shape[:2]
    ox1, oy1, ox2, oy2 = expand_box(box, context, w, h)
    ix1, iy1, ix2, iy2 = expand_box(box, EVAL_CONTEXT, w, h)
    patch = stretch(np.ascontiguousarray(image[oy1:oy2, ox1:ox2]), size, size)
    cw, ch = float(ox2 - ox1), float(oy2 - oy1)
    inner = np.array([(ix1 - ox1) / cw, (iy1 - oy1) / ch, (ix2 - ox1) / cw, (iy2 - oy1) / ch], np.float32)
    return patch, np.clip(inner, 0.0, 1.0)


def data_fingerprint(root: Path) -> str:
    """Short sha256 of ``catalog.json`` (it changes whenever the data set is regenerated)."""
    catalog = root / "catalog.json"
    if not catalog.is_file():
        raise CropDataError(f"{root} has no catalog.json; point --data at a data set in the Tianchi layout")
    return hashlib.sha256(catalog.read_bytes()).hexdigest()[:16]


def build_crops(
    split_root: Path, *, context: float, size: int, frames_per_instance: int, progress: bool = True
) -> CropSet:
    """Cut every shop-image product box and sampled sold-item video boxes of one split.

    Shop images give the box whose ``instance_id`` links to the image's own product (or, when no box
    is linked, the image's first box). Videos give, per (video, instance_id > 0), up to
    ``frames_per_instance`` frames spread evenly over the frames where that instance is boxed.

    Args:
        split_root: ``DATA/train`` or ``DATA/test``.
        context: box expansion ratio of the crop (see ``engines.preprocess.expand_box``).
        size: side of the stretched square crops.
        frames_per_instance: frame crops per (video, instance).
        progress: show tqdm bars.

    Returns:
        The :class:`CropSet`, labels indexing the sorted product ids found.
    """
    from training.tianchi import TianchiDataset, read_frames

    data = TianchiDataset(split_root)
    inst_to_item = data.instance_to_item()
    crops: list[np.ndarray] = []
    inners: list[np.ndarray] = []
    items: list[str] = []
    sources: list[int] = []
    for shop in tqdm(data.shop_images(), desc=f"shop crops {split_root.name}", disable=not progress):
        linked = [a for a in shop.annotations if inst_to_item.get(a.instance_id) == shop.item_id]
        chosen = linked or list(shop.annotations[:1])
        if not chosen:
            continue
        bgr = cv2.imread(str(shop.path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise CropDataError(f"shop image {shop.path} is missing or not an image; regenerate the data set")
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        for ann in chosen:
            patch, inner = _cut(image, ann.box, context, size)
            crops.append(patch)
            inners.append(inner)
            items.append(shop.item_id)
            sources.append(SOURCE_SHOP)
    for video in tqdm(data.videos(), desc=f"frame crops {split_root.name}", disable=not progress):
        wanted: dict[int, list[tuple[int, tuple[float, float, float, float]]]] = {}
        for frame in video.frames:
            for ann in frame.annotations:
                if ann.instance_id > 0 and ann.instance_id in inst_to_item:
                    wanted.setdefault(ann.instance_id, []).append((frame.frame_index, ann.box))
        picks: list[tuple[int, int, tuple[float, float, float, float]]] = []
        for instance_id, boxes in wanted.items():
            spots = np.unique(np.linspace(0, len(boxes) - 1, num=min(frames_per_instance, len(boxes))).round())
            picks.extend((instance_id, *boxes[int(s)]) for s in spots)
        if not picks:
            continue
        frames = read_frames(video.path, sorted({p[1] for p in picks}))
        for instance_id, frame_index, box in picks:
            if frame_index not in frames:
                continue
            patch, inner = _cut(frames[frame_index], box, context, size)
            crops.append(patch)
            inners.append(inner)
            items.append(inst_to_item[instance_id])
            sources.append(SOURCE_FRAME)
    if not crops:
        raise CropDataError(f"{split_root} holds no annotated shop images or sold-item video boxes")
    item_ids = np.array(sorted(set(items)))
    index = {item: i for i, item in enumerate(item_ids.tolist())}
    return CropSet(
        images=np.stack(crops), inner_boxes=np.stack(inners),
        labels=np.array([index[i] for i in items], np.int64), item_ids=item_ids,
        sources=np.array(sources, np.uint8),
    )


def load_or_build_crops(
    root: Path, split: str, *, train: bool, frames_per_instance: int, progress: bool = True,
    input_size: int = INPUT_SIZE,
) -> CropSet:
    """Crops of ``root/split`` from ``root/cache/`` when cached for this data set, else built and cached.

    ``train=True`` gives wide crops (``TRAIN_CONTEXT``, ``TRAIN_CROP_SIZE`` for a 128-pixel model,
    scaled with ``input_size``) for augmentation; ``train=False`` gives crops exactly as the runtime
    cuts them (10 %, ``input_size`` x ``input_size`` stretch).
    """
    train_size = int(round(TRAIN_CROP_SIZE * input_size / INPUT_SIZE))
    context, size = (TRAIN_CONTEXT, train_size) if train else (EVAL_CONTEXT, input_size)
    fingerprint = data_fingerprint(root)
    path = root / "cache" / f"embedder-{split}-{size}px-ctx{context:g}-f{frames_per_instance}.npz"
    cached = CropSet.load(path, fingerprint)
    if cached is not None:
        return cached
    if not (root / split).is_dir():
        raise CropDataError(f"{root / split} is missing; generate the data set with 'livetag data synth'")
    crops = build_crops(root / split, context=context, size=size, frames_per_instance=frames_per_instance,
                        progress=progress)
    crops.save(path, fingerprint)
    return crops
