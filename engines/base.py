"""Detector and Embedder: one Protocol per role and the template method every backend shares.

``detect`` / ``embed`` run ``pre_process -> forward -> post_process``. Pre- and post-processing live
here once; a backend (ONNX Runtime, torch, TensorRT: one small module each) implements only
``forward(batch) -> dict[str, ndarray]`` and says how large a batch it takes. The batch is what the
package's input names: (B, 3, H, W) float32 normalised here, or (B, H, W, 3) uint8 pixels that the
graph normalises itself (``spec.input.takes_pixels``). Inputs larger than a batch are split into chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from engines.package import ModelSpec
from engines.preprocess import (
    EngineInputError,
    box_area,
    boxes_to_frame,
    check_image,
    letterbox,
    network_batch,
    nms,
    scaled_size,
    stretch,
)
from engines.types import Detections
from stream.errors import LiveTagError


class BackendError(LiveTagError):
    """A backend cannot be created here or returned something the spec does not describe."""


@runtime_checkable
class InferenceBackend(Protocol):
    """What a backend provides: a forward pass on batches in the package's input format."""

    name: str
    max_batch: int

    def forward(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run the network.

        Args:
            batch: (B, 3, H, W) float32, or (B, H, W, 3) uint8 for a pixel-input package, with
                ``1 <= B <= max_batch``.

        Returns:
            Output name -> array with leading dimension B (float32).
        """
        ...


@runtime_checkable
class Detector(Protocol):
    """Finds garments in frames."""

    spec: ModelSpec

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        """One :class:`Detections` per RGB uint8 (H, W, 3) frame, in frame pixels."""
        ...


@runtime_checkable
class Embedder(Protocol):
    """Turns crops into unit vectors."""

    spec: ModelSpec
    dim: int

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(N, dim) float32 unit-norm rows for N RGB uint8 (h, w, 3) crops."""
        ...


@dataclass(frozen=True)
class Letterboxed:
    """What post-processing needs to map boxes back: the frame size and the letterbox/stretch scale."""

    width: int
    height: int
    scale: float | tuple[float, float]


class _Engine:
    """Template-method base: subclasses define ``pre_process`` and ``post_process``."""

    def __init__(self, spec: ModelSpec, backend: InferenceBackend) -> None:
        if backend.max_batch < 1:
            raise BackendError(f"backend {backend.name} reports max_batch {backend.max_batch}; it must be >= 1")
        self.spec = spec
        self.backend = backend

    def forward(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run the backend over ``batch`` (N, ...) in chunks of at most ``backend.max_batch``.

        Returns:
            Output name -> (N, ...) float32, the chunks concatenated.
        """
        names = self.spec.output_names
        parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
        step = self.backend.max_batch
        for start in range(0, batch.shape[0], step):
            chunk = batch[start : start + step]
            produced = self.backend.forward(chunk)
            for name in names:
                value = produced.get(name)
                if value is None or value.shape[0] != chunk.shape[0]:
                    got = None if value is None else value.shape
                    raise BackendError(f"backend {self.backend.name} returned {name} with shape {got} for a batch of {chunk.shape[0]}")
                parts[name].append(np.asarray(value, dtype=np.float32))
        return {name: np.concatenate(chunks) for name, chunks in parts.items()}


class DetectorEngine(_Engine):
    """A :class:`Detector` over any backend.

    Args:
        spec: The detector's validated spec.
        backend: The forward pass.
        score_threshold: Detections with a lower objectness are dropped.
        iou_threshold: Class-agnostic NMS threshold.
    """

    def __init__(self, spec: ModelSpec, backend: InferenceBackend, score_threshold: float = 0.3, iou_threshold: float = 0.6) -> None:
        if spec.role != "detector":
            raise BackendError(f"a detector engine needs a detector package, got role {spec.role!r}")
        if not 0.0 <= score_threshold <= 1.0 or not 0.0 < iou_threshold <= 1.0:
            raise BackendError(f"score_threshold must be in [0, 1] and iou_threshold in (0, 1], got {score_threshold}, {iou_threshold}")
        super().__init__(spec, backend)
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)

    @property
    def classes(self) -> tuple[str, ...]:
        """Category names, index-aligned with ``Detections.class_probs`` columns."""
        return self.spec.classes

    def pre_process(self, frames: Sequence[np.ndarray]) -> tuple[np.ndarray, list[Letterboxed]]:
        """Resize frames into the network input (normalised here unless the graph does it).

        Returns:
            ``(batch, geometry)``: (N, 3, H, W) float32 or (N, H, W, 3) uint8
            (:func:`engines.preprocess.network_batch`) and, per frame, what maps boxes back.
        """
        inp = self.spec.input
        canvases, geometry = [], []
        for frame in frames:
            check_image(frame)
            h, w = frame.shape[:2]
            if inp.resize == "letterbox":
                canvas, s = letterbox(frame, inp.height, inp.width, inp.pad_value)
                geometry.append(Letterboxed(w, h, s))
            else:
                canvas = stretch(frame, inp.height, inp.width)
                geometry.append(Letterboxed(w, h, (inp.width / w, inp.height / h)))
            canvases.append(canvas)
        return network_batch(canvases, inp, self.spec.normalization), geometry

    def scaled_size(self, width: int, height: int) -> tuple[int, int]:
        """``(w, h)`` a ``width x height`` frame is scaled to before it is padded into the input (the
        letterbox fit; the whole input for a stretching model)."""
        return scaled_size(self.spec.input, width, height)

    def pre_process_scaled(self, images: Sequence[np.ndarray], sizes: Sequence[tuple[int, int]]) -> tuple[np.ndarray, list[Letterboxed]]:
        """:meth:`pre_process` for frames already scaled to :meth:`scaled_size` (e.g. by swscale while
        converting from YUV): only the pad (and, for a float32 input, the normalisation) is left.

        Args:
            images: N (h, w, 3) RGB uint8, each the ``scaled_size`` of its frame.
            sizes: N ``(width, height)`` of the frames before scaling.

        Raises:
            EngineInputError: An image is not RGB uint8 or not its frame's scaled size.
        """
        inp = self.spec.input
        canvases, geometry = [], []
        for image, (width, height) in zip(images, sizes, strict=True):
            check_image(image)
            w, h = self.scaled_size(width, height)
            if image.shape[:2] != (h, w):
                raise EngineInputError(f"a frame of {width}x{height} scales to {w}x{h}, got {image.shape[1]}x{image.shape[0]}")
            if inp.resize == "letterbox":
                canvas = np.full((inp.height, inp.width, 3), inp.pad_value, dtype=np.uint8)
                canvas[:h, :w] = image
                geometry.append(Letterboxed(width, height, min(inp.width / width, inp.height / height)))
            else:
                canvas = image
                geometry.append(Letterboxed(width, height, (inp.width / width, inp.height / height)))
            canvases.append(canvas)
        return network_batch(canvases, inp, self.spec.normalization), geometry

    def post_process(self, outputs: dict[str, np.ndarray], geometry: Sequence[Letterboxed]) -> list[Detections]:
        """Threshold, NMS, map to frame pixels and clip.

        Args:
            outputs: ``boxes`` (N, K, 4), ``scores`` (N, K), ``class_probs`` (N, K, C), ``sold`` (N, K).
            geometry: Per-frame size and scale from :meth:`pre_process`.

        Returns:
            One :class:`Detections` per frame, scores descending.
        """
        results = []
        for i, geo in enumerate(geometry):
            scores = outputs["scores"][i]
            keep = np.flatnonzero(scores >= self.score_threshold)
            boxes = boxes_to_frame(outputs["boxes"][i][keep], geo.scale, geo.width, geo.height)
            visible = box_area(boxes) > 0
            keep, boxes = keep[visible], boxes[visible]
            order = nms(boxes, scores[keep], self.iou_threshold)
            keep, boxes = keep[order], boxes[order]
            results.append(
                Detections(
                    boxes=boxes.astype(np.float32),
                    scores=scores[keep].astype(np.float32),
                    class_probs=outputs["class_probs"][i][keep].astype(np.float32),
                    sold=outputs["sold"][i][keep].astype(np.float32),
                )
            )
        return results

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        """Detect garments in RGB uint8 (H, W, 3) frames (sizes may differ); one result per frame."""
        if len(frames) == 0:
            return []
        batch, geometry = self.pre_process(frames)
        return self.post_process(self.forward(batch), geometry)

    def detect_scaled(self, images: Sequence[np.ndarray], sizes: Sequence[tuple[int, int]]) -> list[Detections]:
        """:meth:`detect` for frames already scaled to :meth:`scaled_size`; boxes in the frames' pixels."""
        if len(images) == 0:
            return []
        batch, geometry = self.pre_process_scaled(images, sizes)
        return self.post_process(self.forward(batch), geometry)


#: Optional embedder output: [N] probability that the crop shows a garment.
GARMENT_OUTPUT = "garment"


class EmbedderEngine(_Engine):
    """An :class:`Embedder` over any backend.

    Args:
        spec: The embedder's validated spec.
        backend: The forward pass.
    """

    def __init__(self, spec: ModelSpec, backend: InferenceBackend) -> None:
        if spec.role != "embedder":
            raise BackendError(f"an embedder engine needs an embedder package, got role {spec.role!r}")
        super().__init__(spec, backend)
        self.dim = spec.embedding_dim

    def pre_process(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Resize each (h, w, 3) crop to the input size; returns the network batch (N, 3, H, W) float32
        or (N, H, W, 3) uint8 (:func:`engines.preprocess.network_batch`)."""
        inp = self.spec.input
        resized = []
        for crop in crops:
            check_image(crop, "crop")
            if inp.resize == "letterbox":
                resized.append(letterbox(crop, inp.height, inp.width, inp.pad_value)[0])
            else:
                resized.append(stretch(crop, inp.height, inp.width))
        return network_batch(resized, inp, self.spec.normalization)

    def scaled_size(self, width: int, height: int) -> tuple[int, int]:
        """``(w, h)`` a ``width x height`` crop is scaled to before it is padded into the input (the
        letterbox fit; the whole input for a stretching model). A crop handed over at that size is
        not resized again (e.g. one converted from YUV at that size: :mod:`engines.picture`)."""
        return scaled_size(self.spec.input, width, height)

    def post_process(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        """(N, D) float32 rows re-normalised to unit L2 norm (a zero row stays zero)."""
        vectors = outputs["embeddings"].astype(np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Embed RGB uint8 crops (sizes may differ) into (N, dim) float32 unit vectors."""
        return self.embed_scored(crops)[0]

    def embed_scored(self, crops: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """Embed crops, and give the package's ``garment`` output when it has one.

        Returns:
            ``(vectors, garment)``: (N, dim) float32 unit vectors and (N,) float32 probabilities
            that each crop shows a garment, or None when the package has no ``garment`` output.
        """
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32), (np.zeros(0, np.float32) if self.has_garment else None)
        outputs = self.forward(self.pre_process(crops))
        garment = outputs.get(GARMENT_OUTPUT)
        return self.post_process(outputs), (None if garment is None else garment.reshape(-1).astype(np.float32))

    @property
    def has_garment(self) -> bool:
        """Whether the package gives a garment probability per crop (``garment`` output)."""
        return GARMENT_OUTPUT in self.spec.output_names
