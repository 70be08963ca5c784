"""TensorRT build settings that need no TensorRT: batch profiles, engine cache keys, calibration batches.

A serialized TensorRT engine only runs on the GPU model and TensorRT version it was built for, so the
on-disk cache is keyed by GPU name + compute capability, TensorRT version, the model's sha256 and the
build settings (precision, batch profile). Kept apart from the builder so it is tested everywhere.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from engines.package import ModelSpec
from stream.errors import LiveTagError

PRECISIONS = ("fp32", "fp16", "int8")


class TensorRTConfigError(LiveTagError):
    """TensorRT build settings that cannot work."""


@dataclass(frozen=True)
class BatchProfile:
    """The optimisation profile of the dynamic batch axis: ``min <= opt <= max``."""

    min: int
    opt: int
    max: int

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise TensorRTConfigError(f"batch profile needs 1 <= min <= opt <= max, got min={self.min} opt={self.opt} max={self.max}")

    def shapes(self, sample: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) input shapes ``(B, *sample)`` for ``IOptimizationProfile.set_shape``.

        Args:
            sample: One input's shape without the batch: ``(3, H, W)``, or ``(H, W, 3)`` for pixels.
        """
        return tuple((b, *sample) for b in (self.min, self.opt, self.max))  # type: ignore[return-value]


def batch_profile(spec: ModelSpec, max_batch: int, opt_batch: int | None = None, min_batch: int = 1) -> BatchProfile:
    """The profile for a package: a fixed batch in the spec pins all three; else ``opt`` defaults to
    half of ``max`` (live traffic rarely fills the largest batch)."""
    if spec.input.batch > 0:
        b = spec.input.batch
        return BatchProfile(b, b, b)
    opt = opt_batch if opt_batch is not None else max(min_batch, (max_batch + 1) // 2)
    return BatchProfile(min_batch, opt, max_batch)


@dataclass(frozen=True)
class EngineCacheKey:
    """Everything a serialized engine depends on.

    Attributes:
        gpu_name: e.g. ``NVIDIA H100 80GB HBM3``.
        compute_capability: ``(major, minor)``, e.g. ``(9, 0)``.
        tensorrt_version: ``tensorrt.__version__``.
        model_sha256: ``spec.onnx_sha256``.
        precision: ``fp32``, ``fp16`` or ``int8``.
        profile: The batch profile.
        input_hw: Input ``(H, W)``.
        calibration_sha256: Digest of the INT8 calibration data ("" otherwise).
    """

    gpu_name: str
    compute_capability: tuple[int, int]
    tensorrt_version: str
    model_sha256: str
    precision: str
    profile: BatchProfile
    input_hw: tuple[int, int]
    calibration_sha256: str = ""

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise TensorRTConfigError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")

    def digest(self) -> str:
        """Hex sha256 over every field."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def filename(self) -> str:
        """A readable, filesystem-safe engine file name ending in the digest."""
        gpu = re.sub(r"[^A-Za-z0-9]+", "-", self.gpu_name).strip("-").lower() or "gpu"
        major, minor = self.compute_capability
        p = self.profile
        return f"{self.model_sha256[:12]}-{self.precision}-b{p.min}-{p.opt}-{p.max}-{gpu}-sm{major}{minor}-trt{self.tensorrt_version}-{self.digest()[:16]}.engine"


def engine_cache_path(cache_dir: Path, key: EngineCacheKey) -> Path:
    """Where the engine for ``key`` lives (``cache_dir / key.filename()``)."""
    return Path(cache_dir) / key.filename()


def calibration_batches(data: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Split INT8 calibration inputs into equal batches (TensorRT feeds a fixed batch size).

    Args:
        data: (N, 3, H, W) float32, already pre-processed like inference inputs, or (N, H, W, 3)
            uint8 pixels for a pixel-input package.
        batch_size: Calibration batch size (within the profile).

    Returns:
        ``N // batch_size`` arrays of (batch_size, ...) in the data's dtype; a remainder is dropped.

    Raises:
        TensorRTConfigError: Fewer than ``batch_size`` samples, or not an image batch.
    """
    pixels = data.dtype == np.uint8
    if data.ndim != 4 or data.shape[3 if pixels else 1] != 3:
        raise TensorRTConfigError(f"calibration data must be (N, 3, H, W) float32 or (N, H, W, 3) uint8, got {data.shape} {data.dtype}")
    if batch_size < 1 or data.shape[0] < batch_size:
        raise TensorRTConfigError(f"INT8 calibration needs at least one full batch of {batch_size}, got {data.shape[0]} samples")
    count = data.shape[0] // batch_size
    arr = np.ascontiguousarray(data[: count * batch_size], dtype=np.uint8 if pixels else np.float32)
    return [arr[i * batch_size : (i + 1) * batch_size] for i in range(count)]


def array_digest(data: np.ndarray | None) -> str:
    """Hex sha256 of an array's bytes and shape ("" for None), for the cache key."""
    if data is None:
        return ""
    digest = hashlib.sha256(str(data.shape).encode())
    digest.update(np.ascontiguousarray(data, dtype=np.float32).tobytes())
    return digest.hexdigest()
