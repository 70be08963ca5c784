"""Training batches of embedder crops: P x K class-balanced sampling and batch augmentation in torch.

* :class:`PKBatchSampler` yields batches of P products x K crops (class-balanced), split across DDP
  ranks;
* :class:`CropAugmenter` augments a whole uint8 batch at once: a random crop around the
  10 %-expanded box (one affine resample that also flips), colour jitter, Gaussian blur and random
  erasing, then the spec normalisation;
* :class:`AugmentedBatches` ties the two to the cached crops of ``training.embedding_data``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Sampler

from training.models.embedder import INPUT_SIZE, normalise_batch


class PKBatchSampler(Sampler[list[int]]):
    """Class-balanced batches: P distinct labels, K indices of each.

    Labels with fewer than K samples are sampled with replacement. One epoch holds
    ``len(labels) // (P * K)`` batches in total (at least 1, rounded up to a multiple of the world
    size so every rank runs the same number of steps), shared round-robin between DDP ranks;
    call :meth:`set_epoch` before each epoch to reshuffle (the same on every rank).
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray,
        p: int,
        k: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        batches_per_epoch: int | None = None,
    ) -> None:
        self.labels = np.asarray(labels, dtype=np.int64)
        self.by_label = {int(lab): np.flatnonzero(self.labels == lab) for lab in np.unique(self.labels)}
        if p < 2 or k < 1:
            raise ValueError("a P x K batch needs P >= 2 labels and K >= 1 samples")
        if len(self.by_label) < p:
            raise ValueError(f"P={p} labels per batch but the data has only {len(self.by_label)} labels")
        self.p, self.k = p, k
        self.seed, self.rank, self.world_size = seed, rank, world_size
        total = batches_per_epoch or max(1, len(self.labels) // (p * k))
        self.total_batches = math.ceil(total / world_size) * world_size  # equal length on every rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.total_batches // self.world_size

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        keys = np.array(sorted(self.by_label))
        label_order: list[int] = []
        for batch_index in range(self.total_batches):
            # Walk through a fresh permutation of labels so every label appears about equally often.
            while len(label_order) < self.p:
                label_order.extend(int(x) for x in rng.permutation(keys))
            chosen, label_order = label_order[: self.p], label_order[self.p :]
            if len(set(chosen)) < self.p:  # a permutation boundary repeated a label: redraw distinct ones
                chosen = [int(x) for x in rng.choice(keys, size=self.p, replace=False)]
            batch: list[int] = []
            for label in chosen:
                pool = self.by_label[label]
                picks = rng.choice(pool, size=self.k, replace=pool.size < self.k)
                batch.extend(int(i) for i in picks)
            if batch_index % self.world_size == self.rank:
                yield batch


@dataclass(frozen=True)
class AugmentConfig:
    """Strength of each augmentation (probabilities and ranges).

    Attributes:
        crop_scale: range of the crop side relative to the 10 %-expanded box.
        crop_aspect_jitter: max relative change of the crop aspect ratio.
        shift: max shift of the crop centre, as a fraction of the box side (a detector's box is
            rarely centred on the garment: 10 % off-centre crops were misread before this was 0.1).
        flip_p: probability of a horizontal flip.
        brightness, contrast, saturation: max relative change (factor drawn in [1 - x, 1 + x]).
        channel_gain: max per-channel gain change (a cheap white-balance / hue shift).
        blur_p: probability of a Gaussian blur; sigma drawn from ``blur_sigma``.
        erase_p: probability of erasing one rectangle covering ``erase_area`` of the crop.
    """

    crop_scale: tuple[float, float] = (0.8, 1.2)
    crop_aspect_jitter: float = 0.15
    shift: float = 0.1
    flip_p: float = 0.5
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.25
    channel_gain: float = 0.06
    blur_p: float = 0.3
    blur_sigma: tuple[float, float] = (0.3, 1.5)
    erase_p: float = 0.4
    erase_area: tuple[float, float] = (0.02, 0.15)


class CropAugmenter:
    """Batch augmentation of cached crops, all in torch on the CPU (or the training device).

    The cached crops are wider than the model input (they include extra context), and for each crop
    the position of its 10 %-expanded box is known, so the random crop is drawn around that box.
    """

    def __init__(self, config: AugmentConfig | None = None, out_size: int = INPUT_SIZE, seed: int = 0) -> None:
        self.config = config or AugmentConfig()
        self.out_size = out_size
        self.generator = torch.Generator().manual_seed(seed)

    def _uniform(self, n: int, low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=self.generator)

    def __call__(self, images: np.ndarray, inner_boxes: np.ndarray) -> torch.Tensor:
        """Augment a batch.

        Args:
            images: [B, S, S, 3] uint8 RGB cached crops.
            inner_boxes: [B, 4] float32, the 10 %-expanded box inside each crop as fractions
                ``x1, y1, x2, y2`` in [0, 1].

        Returns:
            [B, 3, out, out] float32, normalised for the network.
        """
        cfg = self.config
        batch = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
        n = batch.shape[0]
        boxes = torch.from_numpy(np.asarray(inner_boxes, dtype=np.float32)) * 2.0 - 1.0  # to [-1, 1]
        half_w = (boxes[:, 2] - boxes[:, 0]) / 2.0
        half_h = (boxes[:, 3] - boxes[:, 1]) / 2.0
        centre_x = (boxes[:, 0] + boxes[:, 2]) / 2.0
        centre_y = (boxes[:, 1] + boxes[:, 3]) / 2.0
        scale = self._uniform(n, *cfg.crop_scale)
        aspect = self._uniform(n, 1.0 - cfg.crop_aspect_jitter, 1.0 + cfg.crop_aspect_jitter)
        crop_w = (half_w * scale * aspect.sqrt()).clamp(max=1.0)
        crop_h = (half_h * scale / aspect.sqrt()).clamp(max=1.0)
        # Shift the centre at random by up to ``shift`` of the box side, as a detector's box would be.
        shift_x = self._uniform(n, -1.0, 1.0) * (2.0 * cfg.shift) * half_w
        shift_y = self._uniform(n, -1.0, 1.0) * (2.0 * cfg.shift) * half_h
        cx = (centre_x + shift_x).clamp(-1.0 + crop_w, 1.0 - crop_w)
        cy = (centre_y + shift_y).clamp(-1.0 + crop_h, 1.0 - crop_h)
        flip = torch.where(torch.rand(n, generator=self.generator) < cfg.flip_p, -1.0, 1.0)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = crop_w * flip
        theta[:, 0, 2] = cx
        theta[:, 1, 1] = crop_h
        theta[:, 1, 2] = cy
        grid = F.affine_grid(theta, [n, 3, self.out_size, self.out_size], align_corners=False)
        out = F.grid_sample(batch, grid, mode="bilinear", padding_mode="border", align_corners=False)
        out = self._colour(out)
        out = self._blur(out)
        out = normalise_batch(out.clamp(0.0, 1.0))
        return self._erase(out)

    def _colour(self, x: torch.Tensor) -> torch.Tensor:
        """Brightness, contrast, saturation and channel gain as one per-image affine colour map.

        Brightness ``b``, contrast ``c`` (around the mean grey level ``g``), saturation ``s`` (blend
        with grey ``w . x``) and gains ``D`` compose to ``x' = c b D S x + (1 - c) b g D 1`` with
        ``S = (1 - s) 1 w^T + s I``; applying it with one batched matmul keeps the cost low on a CPU.
        """
        cfg = self.config
        n = x.shape[0]
        luma = torch.tensor([0.299, 0.587, 0.114])
        bright = self._uniform(n, 1 - cfg.brightness, 1 + cfg.brightness)
        contrast = self._uniform(n, 1 - cfg.contrast, 1 + cfg.contrast)
        sat = self._uniform(n, 1 - cfg.saturation, 1 + cfg.saturation)
        gain = 1.0 + cfg.channel_gain * (2.0 * torch.rand(n, 3, generator=self.generator) - 1.0)  # [n, 3]
        grey_level = torch.einsum("c,nc->n", luma, x.mean(dim=(2, 3)))  # [n]
        saturation = (1 - sat)[:, None, None] * luma[None, None, :].expand(n, 3, 3) + sat[:, None, None] * torch.eye(3)
        matrix = (contrast * bright)[:, None, None] * gain[:, :, None] * saturation  # [n, 3, 3]
        offset = ((1 - contrast) * bright * grey_level)[:, None] * gain  # [n, 3]
        flat = torch.baddbmm(offset[:, :, None], matrix, x.reshape(n, 3, -1))
        return flat.reshape(x.shape)

    def _blur(self, x: torch.Tensor) -> torch.Tensor:
        """Separable 5x5 Gaussian blur of a random subset of the batch, sigma drawn per image."""
        cfg = self.config
        n, _, h, w = x.shape
        chosen = torch.nonzero(torch.rand(n, generator=self.generator) < cfg.blur_p).flatten()
        if chosen.numel() == 0:
            return x
        sigma = self._uniform(chosen.numel(), *cfg.blur_sigma)
        offsets = torch.arange(-2, 3, dtype=torch.float32)
        kernel = torch.exp(-(offsets[None, :] ** 2) / (2 * sigma[:, None] ** 2))
        kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(3, dim=0)  # [3m, 5]
        groups = kernel.shape[0]
        sub = F.pad(x[chosen].reshape(1, groups, h, w), (2, 2, 2, 2), mode="replicate")
        sub = F.conv2d(sub, kernel.view(groups, 1, 1, 5), groups=groups)
        sub = F.conv2d(sub, kernel.view(groups, 1, 5, 1), groups=groups)
        x = x.clone()
        x[chosen] = sub.reshape(-1, 3, h, w)
        return x

    def _erase(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        n, _, h, w = x.shape
        chosen = torch.nonzero(torch.rand(n, generator=self.generator) < cfg.erase_p).flatten().tolist()
        for i in chosen:
            area = float(self._uniform(1, *cfg.erase_area)) * h * w
            aspect = math.exp(float(self._uniform(1, math.log(0.3), math.log(3.3))))
            eh = min(h, max(1, round(math.sqrt(area * aspect))))
            ew = min(w, max(1, round(math.sqrt(area / aspect))))
            top = int(torch.randint(0, h - eh + 1, (1,), generator=self.generator))
            left = int(torch.randint(0, w - ew + 1, (1,), generator=self.generator))
            x[i, :, top : top + eh, left : left + ew] = torch.randn(3, eh, ew, generator=self.generator)
        return x


class AugmentedBatches:
    """Iterable of ``(images [B, 3, 128, 128] float32, labels [B] int64)`` over a P x K sampler."""

    def __init__(
        self,
        images: np.ndarray,
        inner_boxes: np.ndarray,
        labels: np.ndarray,
        sampler: PKBatchSampler,
        augmenter: CropAugmenter,
    ) -> None:
        self.images, self.inner_boxes, self.labels = images, inner_boxes, labels
        self.sampler, self.augmenter = sampler, augmenter

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch in self.sampler:
            index = np.asarray(batch, dtype=np.int64)
            images = self.augmenter(self.images[index], self.inner_boxes[index])
            images = images.contiguous(memory_format=torch.channels_last)
            yield images, torch.from_numpy(self.labels[index].astype(np.int64))
