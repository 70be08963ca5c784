"""Several views of one shop image, embedded and averaged into its one gallery vector.

A shop image is a clean studio shot; the stream shows the same garment mirrored (a presenter facing
the camera, a selfie camera), framed tighter or looser by the detector's box. Embedding a few such
views of the shop crop and averaging them makes the gallery vector less sensitive to those changes,
as re-identification galleries do with flips and crops. The views cost embedder passes once, at
gallery build; the gallery keeps one vector per image, so search, ``top_k`` and the voter see no
difference in shape.

Views (``models.gallery_views``, comma-separated; ``box`` alone is the plain gallery):

* ``box``: the product box expanded by 10 % (what the stream's crops get);
* ``flip``: the same crop mirrored left to right;
* ``tight``: the box shrunk by 15 % (the garment without its background);
* ``wide``: the box expanded by 40 % (a loose detector box, arms and background included).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engines.base import Embedder
from engines.preprocess import crop

#: view name -> (box growth ratio, mirrored)
GALLERY_VIEWS: dict[str, tuple[float, bool]] = {
    "box": (0.1, False),
    "flip": (0.1, True),
    "tight": (-0.15, False),
    "wide": (0.4, False),
}


def parse_views(text: str) -> tuple[str, ...]:
    """``"box,flip"`` -> ``("box", "flip")``; raises ValueError naming the known views."""
    views = tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    unknown = [v for v in views if v not in GALLERY_VIEWS]
    if not views or unknown:
        raise ValueError(f"unknown view(s) {unknown or text!r}; use a comma list of {', '.join(GALLERY_VIEWS)}")
    return views


def view_crops(image: np.ndarray, box: Sequence[float] | None, views: Sequence[str]) -> list[np.ndarray]:
    """The crops of one shop image, one per view.

    Args:
        image: (H, W, 3) uint8 RGB shop image.
        box: Product box ``x1, y1, x2, y2`` in image pixels; None takes the whole image (then
            ``tight`` and ``wide`` are the whole image too).
        views: Names from :data:`GALLERY_VIEWS`.

    Returns:
        ``len(views)`` (h, w, 3) uint8 crops.
    """
    height, width = image.shape[:2]
    out = []
    for view in views:
        ratio, mirrored = GALLERY_VIEWS[view]
        piece = crop(image, box, ratio) if box is not None else crop(image, (0.0, 0.0, width, height), 0.0)
        out.append(np.ascontiguousarray(piece[:, ::-1]) if mirrored else piece)
    return out


def embed_views(embedder: Embedder, crops_per_image: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """One unit vector per image: the mean of its views' embeddings, renormalised.

    Args:
        embedder: Any Embedder.
        crops_per_image: For each of N images, its V view crops (V the same for all).

    Returns:
        (N, D) float32 unit-norm vectors; (0, 0) when N is 0.
    """
    if not crops_per_image:
        return np.zeros((0, 0), np.float32)
    count = len(crops_per_image[0])
    flat = [c for crops in crops_per_image for c in crops]
    vectors = np.asarray(embedder.embed(flat), dtype=np.float32)
    mean = vectors.reshape(len(crops_per_image), count, -1).mean(axis=1)
    return (mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)).astype(np.float32)
