"""Validated array containers passed between engines and consumers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detections:
    """Detections of one frame, in that frame's pixel coordinates.

    Attributes:
        boxes: (N, 4) float32 ``x1, y1, x2, y2`` in frame pixels.
        scores: (N,) float32 objectness in [0, 1].
        class_probs: (N, C) float32 category distribution (rows sum to 1).
        sold: (N,) float32 probability that the box is the item being sold.
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_probs: np.ndarray
    sold: np.ndarray

    def __post_init__(self) -> None:
        n = self.boxes.shape[0] if self.boxes.ndim == 2 else -1
        if self.boxes.ndim != 2 or self.boxes.shape[1] != 4:
            raise ValueError(f"boxes must be (N, 4), got {self.boxes.shape}")
        if self.scores.shape != (n,):
            raise ValueError(f"scores must be ({n},), got {self.scores.shape}")
        if self.sold.shape != (n,):
            raise ValueError(f"sold must be ({n},), got {self.sold.shape}")
        if self.class_probs.ndim != 2 or self.class_probs.shape[0] != n:
            raise ValueError(f"class_probs must be ({n}, C), got {self.class_probs.shape}")

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @classmethod
    def empty(cls, num_classes: int) -> Detections:
        """No detections, with the right shapes."""
        return cls(
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros((0,), np.float32),
            class_probs=np.zeros((0, num_classes), np.float32),
            sold=np.zeros((0,), np.float32),
        )

    def top_categories(self, k: int) -> np.ndarray:
        """(N, k) int64 indices of the k most likely categories, best first."""
        k = min(k, self.class_probs.shape[1])
        return np.argsort(-self.class_probs, axis=1)[:, :k]

    def select(self, mask: np.ndarray) -> Detections:
        """The subset where ``mask`` (N,) bool is true, or an index array."""
        return Detections(self.boxes[mask], self.scores[mask], self.class_probs[mask], self.sold[mask])
