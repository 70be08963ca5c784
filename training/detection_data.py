"""Detector training data: annotated stream frames and shop images, letterboxed once and cached.

Decoding H.264 on every epoch would cost more than training on a CPU, so the annotated frames are
decoded once, letterboxed to the network input (top-left, pad 114, as at inference) and stored in
a cache folder next to the data::

    DATA/cache/detector-<split>-<size>-<options hash>-<catalog sha256>/
        images.npy     (N, S, S, 3) uint8, read with mmap so workers share the page cache
        labels.npz     boxes (M, 4) float32 input pixels, classes (M,) int64, sold (M,) uint8,
                       offsets (N + 1,) int64 (boxes of sample i are offsets[i]:offsets[i+1]),
                       kinds (N,) uint8 (0 stream frame, 1 shop image), sizes (N, 2) int32
                       width and height of the image inside the letterbox canvas
        manifest.json  what was cached and from where

``DetectionSamples`` serves augmented samples with their encoded training targets.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from engines.preprocess import letterbox
from stream.errors import LiveTagError
from training.camera_effects import camera_effects
from training.categories import category_index
from training.detection_losses import encode_targets
from training.random_convolution import random_convolution

CACHE_VERSION = 2
PAD_VALUE = 114
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
KIND_FRAME = 0
KIND_SHOP = 1
#: Default (low, high) zoom factor of :func:`augment`.
TRAIN_ZOOM = (0.6, 1.3)


class DetectionDataError(LiveTagError):
    """The detection data set is missing, empty or inconsistent."""


@dataclass(frozen=True)
class CacheOptions:
    """What to cache from one split.

    Attributes:
        input_size: Square network input S (letterbox target).
        frame_step: Keep annotated frames whose index is a multiple of this.
        max_frames_per_video: Cap per video after the step (0 = no cap).
        max_shop_images: Cap on shop images (0 = none); every k-th image is taken to stay spread.
    """

    input_size: int = 256
    frame_step: int = 5
    max_frames_per_video: int = 0
    max_shop_images: int = 0

    def key(self) -> str:
        """Short hash of the options, part of the cache folder name."""
        text = json.dumps([CACHE_VERSION, self.input_size, self.frame_step, self.max_frames_per_video,
                           self.max_shop_images])
        return hashlib.sha256(text.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class DetectionCache:
    """A loaded cache (images memory-mapped).

    Attributes:
        images: (N, S, S, 3) uint8 letterboxed samples.
        boxes: (M, 4) float32 x1, y1, x2, y2 in input pixels.
        classes: (M,) int64 category indices.
        sold: (M,) uint8, 1 for the sold item.
        offsets: (N + 1,) int64 box ranges per sample.
        kinds: (N,) uint8 sample kind (0 stream frame, 1 shop image).
        sizes: (N, 2) int32 width and height of the image content at the canvas' top-left.
        path: The cache folder.
    """

    images: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    sold: np.ndarray
    offsets: np.ndarray
    kinds: np.ndarray
    sizes: np.ndarray
    path: Path

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def targets(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes (n, 4), classes (n,) and sold (n,) of sample ``index``."""
        lo, hi = int(self.offsets[index]), int(self.offsets[index + 1])
        return self.boxes[lo:hi], self.classes[lo:hi], self.sold[lo:hi]

    def subset(self, kind: int) -> np.ndarray:
        """Indices of the samples of one kind."""
        return np.flatnonzero(self.kinds == kind)


def data_fingerprint(data_root: Path) -> str:
    """sha256 of the data set's ``catalog.json`` (it changes whenever the data is regenerated)."""
    catalog = Path(data_root) / "catalog.json"
    if not catalog.is_file():
        raise DetectionDataError(f"{data_root} has no catalog.json; point --data at a data set in the Tianchi layout")
    return hashlib.sha256(catalog.read_bytes()).hexdigest()


def generator_version(data_root: Path) -> str:
    """The ``generator`` that wrote the data set (``livetag-synth/N`` from ``catalog.json``), or ``unknown``."""
    try:
        value = json.loads((Path(data_root) / "catalog.json").read_text(encoding="utf-8")).get("generator")
    except (OSError, ValueError, AttributeError):
        return "unknown"
    return value if isinstance(value, str) else "unknown"


def _letterbox_sample(image: np.ndarray, boxes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    canvas, scale = letterbox(image, size, size, PAD_VALUE)
    out = (boxes * scale).astype(np.float32).reshape(-1, 4)
    content = (min(size, max(1, round(image.shape[1] * scale))), min(size, max(1, round(image.shape[0] * scale))))
    return canvas, np.clip(out, 0, size), content


def _annotations(items: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    boxes = np.asarray([a.box for a in items], np.float32).reshape(-1, 4)
    classes = np.asarray([category_index(a.label) for a in items], np.int64)
    sold = np.asarray([1 if a.instance_id > 0 else 0 for a in items], np.uint8)
    return boxes, classes, sold


def _pick_frames(indices: list[int], options: CacheOptions) -> list[int]:
    kept = [i for i in sorted(indices) if i % options.frame_step == 0]
    if options.max_frames_per_video and len(kept) > options.max_frames_per_video:
        picks = np.linspace(0, len(kept) - 1, options.max_frames_per_video).round().astype(int)
        kept = [kept[i] for i in picks]
    return kept


def build_cache(data_root: Path, split: str, options: CacheOptions, *, progress: bool = True) -> Path:
    """Decode and letterbox one split into a cache folder (reused when it already exists).

    Args:
        data_root: The data set root (holding ``catalog.json`` and ``train/`` / ``test/``).
        split: ``train`` or ``test``.
        options: What to cache.
        progress: Show tqdm bars.

    Returns:
        The cache folder.

    Raises:
        DetectionDataError: The split is missing or holds no annotated boxes.
    """
    from training.tianchi import TianchiDataset, read_frames

    split_dir = Path(data_root) / split
    if not split_dir.is_dir():
        raise DetectionDataError(f"{split_dir} not found; generate data with 'livetag data synth --out {data_root}'")
    out = Path(data_root) / "cache" / f"detector-{split}-{options.input_size}-{options.key()}-{data_fingerprint(data_root)[:12]}"
    if (out / "manifest.json").is_file():
        return out
    reader = TianchiDataset(split_dir)
    size = options.input_size
    images: list[np.ndarray] = []
    labels: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    kinds: list[int] = []
    sizes: list[tuple[int, int]] = []
    videos = reader.videos()
    for video in tqdm(videos, desc=f"decode {split} frames", disable=not progress):
        by_index = {f.frame_index: f.annotations for f in video.frames if f.annotations}
        wanted = _pick_frames(list(by_index), options)
        if not wanted:
            continue
        frames = read_frames(video.path, wanted)
        for index in wanted:
            if index not in frames:
                continue
            boxes, classes, sold = _annotations(by_index[index])
            canvas, scaled, content = _letterbox_sample(frames[index], boxes, size)
            images.append(canvas)
            sizes.append(content)
            labels.append((scaled, classes, sold))
            kinds.append(KIND_FRAME)
    shops = [s for s in reader.shop_images() if s.annotations]
    if options.max_shop_images and len(shops) > options.max_shop_images:
        picks = np.linspace(0, len(shops) - 1, options.max_shop_images).round().astype(int)
        shops = [shops[i] for i in picks]
    for shop in tqdm(shops, desc=f"read {split} shop images", disable=not progress):
        bgr = cv2.imread(str(shop.path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DetectionDataError(f"{shop.path} is not a readable image; regenerate the data set")
        boxes, classes, sold = _annotations(shop.annotations)
        canvas, scaled, content = _letterbox_sample(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), boxes, size)
        images.append(canvas)
        sizes.append(content)
        labels.append((scaled, classes, sold))
        kinds.append(KIND_SHOP)
    if not images:
        raise DetectionDataError(f"{split_dir} holds no annotated frames or shop images to train a detector on")
    _write_cache(out, images, labels, kinds, sizes, {"split": split, "source": str(split_dir), **options.__dict__})
    return out


def _write_cache(
    out: Path,
    images: list[np.ndarray],
    labels: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    kinds: list[int],
    sizes: list[tuple[int, int]],
    manifest: dict[str, Any],
) -> None:
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.save(tmp / "images.npy", np.stack(images))
    counts = [len(b) for b, _, _ in labels]
    np.savez(
        tmp / "labels.npz",
        boxes=np.concatenate([b for b, _, _ in labels]).astype(np.float32).reshape(-1, 4),
        classes=np.concatenate([c for _, c, _ in labels]).astype(np.int64),
        sold=np.concatenate([s for _, _, s in labels]).astype(np.uint8),
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        kinds=np.asarray(kinds, np.uint8),
        sizes=np.asarray(sizes, np.int32).reshape(-1, 2),
    )
    manifest = {**manifest, "samples": len(images), "boxes": int(sum(counts)),
                "frames": int(sum(k == KIND_FRAME for k in kinds)), "shop_images": int(sum(k == KIND_SHOP for k in kinds))}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)


def load_cache(path: Path) -> DetectionCache:
    """Open a cache folder written by ``build_cache`` (images memory-mapped, read-only)."""
    path = Path(path)
    if not (path / "manifest.json").is_file():
        raise DetectionDataError(f"{path} is not a detector cache (no manifest.json); rebuild it")
    with np.load(path / "labels.npz") as labels:
        parts = {name: labels[name] for name in ("boxes", "classes", "sold", "offsets", "kinds", "sizes")}
    images = np.load(path / "images.npy", mmap_mode="r")
    if images.shape[0] != parts["kinds"].shape[0] or parts["offsets"].shape[0] != images.shape[0] + 1:
        raise DetectionDataError(f"{path}: images and labels disagree; delete the folder and rebuild")
    return DetectionCache(images=images, path=path, **parts)


def normalise_images(images: np.ndarray) -> torch.Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float32 ``(x / 255 - MEAN) / STD``."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8, copy=True)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def augment(
    image: np.ndarray,
    boxes: np.ndarray,
    keep: np.ndarray,
    rng: np.random.Generator,
    *,
    content: tuple[int, int] | None = None,
    out_size: int | None = None,
    camera: bool = False,
    zoom: tuple[float, float] = TRAIN_ZOOM,
    rand_conv: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random zoom and shift (or crop), horizontal flip and colour jitter of a letterboxed sample.

    Args:
        image: (S, S, 3) uint8 letterbox canvas.
        boxes: (n, 4) float32 input pixels.
        keep: (n,) int64 indices carried along with the boxes (into the class and sold arrays).
        rng: Random source.
        content: (width, height) of the image at the canvas' top-left (default the whole canvas);
            shifts are drawn so that the zoomed content and the output window overlap.
        out_size: Side T of the output window (default S). With T < S every sample is zoomed
            (``zoom``) and cut to a T x T window over its content: cheaper training at the same
            object scale as inference.
        camera: Also apply :func:`training.camera_effects.camera_effects` (shading, noise, blur,
            white balance, JPEG), which keeps the geometry.
        zoom: (low, high) of the uniform zoom factor; below 1 the frame shrinks inside the window,
            so garments appear smaller than the renders draw them (a wide, full-body shot).
        rand_conv: Probability of :func:`training.random_convolution.random_convolution` (random
            colours and local textures, same shapes), after the colour jitter and before the camera
            effects; 0 draws nothing, so the other augmentations repeat a run without it.

    Returns:
        The new image (T, T, 3) uint8, boxes (m, 4) and the kept indices (m,); boxes left less
        than 40 % visible are dropped.
    """
    size = image.shape[0]
    window = out_size or size
    content_w, content_h = content or (size, size)
    out = image
    if window != size or rng.random() < 0.7:
        scale = float(rng.uniform(zoom[0], zoom[1]))
        free_x, free_y = window - content_w * scale, window - content_h * scale
        shift = window != size or rng.random() < 0.8
        tx = float(rng.uniform(min(free_x, 0.0), max(free_x, 0.0))) if shift else 0.0
        ty = float(rng.uniform(min(free_y, 0.0), max(free_y, 0.0))) if shift else 0.0
        matrix = np.array([[scale, 0.0, tx], [0.0, scale, ty]], np.float32)
        out = cv2.warpAffine(image, matrix, (window, window), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=(PAD_VALUE,) * 3)
        moved = boxes * scale + np.array([tx, ty, tx, ty], np.float32)
        clipped = np.clip(moved, 0, window)
        area = np.prod(np.clip(moved[:, 2:] - moved[:, :2], 1e-6, None), axis=1)
        visible = np.prod(np.clip(clipped[:, 2:] - clipped[:, :2], 0, None), axis=1) / area
        sides = np.min(clipped[:, 2:] - clipped[:, :2], axis=1) if len(boxes) else np.zeros(0)
        ok = (visible >= 0.4) & (sides >= 4)
        boxes, keep = clipped[ok], keep[ok]
    if rng.random() < 0.5:
        out = out[:, ::-1]
        boxes = np.stack([window - boxes[:, 2], boxes[:, 1], window - boxes[:, 0], boxes[:, 3]], axis=1)
    if rng.random() < 0.8:
        contrast = float(rng.uniform(0.7, 1.3))
        brightness = float(rng.uniform(-30, 30))
        gains = rng.uniform(0.9, 1.1, size=3).astype(np.float32)
        pixels = out.astype(np.float32)
        pixels = (pixels - 128.0) * contrast + 128.0 + brightness
        out = np.clip(pixels * gains, 0, 255).astype(np.uint8)
    if rand_conv > 0.0 and rng.random() < rand_conv:
        out = random_convolution(np.ascontiguousarray(out), rng)
    if camera:
        out = camera_effects(np.ascontiguousarray(out), rng)
    return np.ascontiguousarray(out), boxes.astype(np.float32).reshape(-1, 4), keep


class DetectionSamples(Dataset[dict[str, torch.Tensor]]):
    """Samples of a cache with their encoded targets, optionally augmented.

    Each item is a dict: ``image`` (3, S, S) float32 normalised, and the targets of
    ``encode_targets`` (``heat`` (1, h, w), ``weight`` (h, w), ``box`` (4, h, w), ``cls`` (h, w),
    ``sold`` (h, w)), h = w = S / stride (S = ``train_size`` when augmenting with it).

    Args:
        cache: The loaded cache.
        indices: Which samples to serve (default all).
        augment_data: Apply ``augment``.
        stride: Output stride of the detector.
        seed: Base seed; each (epoch, item) gets its own stream through ``set_epoch``.
        train_size: Side of the augmented training window (see ``augment``); default the cache's S.
        camera: Add the photographic degradations of ``training.camera_effects`` when augmenting.
        zoom: (low, high) zoom factor of ``augment``.
        rand_conv: Probability of the random-convolution augmentation (``augment``).
    """

    def __init__(self, cache: DetectionCache, indices: Sequence[int] | None = None, *, augment_data: bool,
                 stride: int = 8, seed: int = 0, train_size: int | None = None, camera: bool = False,
                 zoom: tuple[float, float] = TRAIN_ZOOM, rand_conv: float = 0.0) -> None:
        self.cache = cache
        self.indices = np.arange(len(cache)) if indices is None else np.asarray(indices, np.int64)
        self.augment_data = augment_data
        self.stride = stride
        self.seed = seed
        self.train_size = train_size
        self.camera = camera
        self.zoom = zoom
        self.rand_conv = rand_conv
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation stream (call before each epoch; workers are re-created)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        index = int(self.indices[item])
        image = np.asarray(self.cache.images[index])
        boxes, classes, sold = self.cache.targets(index)
        keep = np.arange(len(boxes))
        if self.augment_data:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            content = (int(self.cache.sizes[index, 0]), int(self.cache.sizes[index, 1]))
            image, boxes, keep = augment(image, boxes.copy(), keep, rng, content=content, out_size=self.train_size,
                                         camera=self.camera, zoom=self.zoom, rand_conv=self.rand_conv)
        size = image.shape[0]
        targets = encode_targets(boxes, classes[keep], sold[keep], size, size, self.stride)
        sample = {name: torch.from_numpy(value) for name, value in targets.items()}
        sample["image"] = normalise_images(image[None])[0]
        return sample
