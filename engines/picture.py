"""Decoded pictures that make RGB pixels only where they are asked for.

The stage needs few pixels of a decoded frame: the whole frame at the detector's input size (320 x
180 for 1080p) and a few garment boxes at the embedder's (256 x 256). Converting the full 1080p
frame to RGB first costs about 0.8 ms of CPU, and shrinking it to the detector's input 1.5 ms more.

A :class:`PlanarPicture` keeps the decoder's YUV 4:2:0 planes instead. For each region asked for it
scales the luma plane and the two half-size chroma planes straight to the region's size, with the
same two-step area resize the engines use on RGB (:func:`engines.preprocess.resize_to`), and
converts only those pixels with the stream's colour matrix (:mod:`engines.colour`; one
``cv2.transform``). Chroma at the region's full size keeps colour edges where the RGB way has them.
Measured on a real 1080p keyframe (benchmarks/frame_cost.py, docs/benchmarks.md): the detector's
input and two garment crops cost about 2.0 ms of CPU instead of 4.0 for the RGB frame, its resize
and the crops from it. The pixels are the exact conversion, rounded; swscale's fixed-point one,
which makes the whole frame, is about 0.6-1 level darker, so the two ways differ by about 1 level
on average (tested). The whole RGB frame is made only when something asks for it (OCR, person
masks), once.

An :class:`RgbPicture` wraps pixels that are RGB already (JPEG transport, raw frames, other pixel
formats); its regions are the RGB way to the bit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import av
import cv2
import numpy as np

from engines.colour import AVCOL_RANGE_JPEG, matrix_of, yuv_to_rgb_affine
from engines.preprocess import expand_box, resize_to
from stream.decode import rgb

#: Pixel formats kept as planes: 4:2:0 with three planes (limited and full range).
PLANAR_FORMATS = ("yuv420p", "yuvj420p")
#: ``(width, height)`` of a region -> the ``(width, height)`` a model wants it at.
SizeOf = Callable[[int, int], tuple[int, int]]


class Picture(Protocol):
    """A decoded frame of ``width x height`` pixels."""

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    def rgb(self) -> np.ndarray:
        """The whole frame, (height, width, 3) RGB uint8 (made once, then kept)."""
        ...

    def region(self, box: tuple[int, int, int, int], width: int, height: int) -> np.ndarray:
        """The pixels of integer ``box`` = ``(x1, y1, x2, y2)`` at ``width x height``: (height, width, 3)
        RGB uint8, shrunk by area averaging or grown bilinearly (:func:`engines.preprocess.resize_to`)."""
        ...


class RgbPicture:
    """A frame whose pixels are RGB already.

    Args:
        image: (H, W, 3) RGB uint8.
    """

    def __init__(self, image: np.ndarray) -> None:
        self.image = image

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    def rgb(self) -> np.ndarray:
        return self.image

    def region(self, box: tuple[int, int, int, int], width: int, height: int) -> np.ndarray:
        x1, y1, x2, y2 = box
        return resize_to(np.ascontiguousarray(self.image[y1:y2, x1:x2]), width, height)


class PlanarPicture:
    """A YUV 4:2:0 frame from the decoder, kept as its three planes.

    Args:
        frame: A decoded picture whose format is one of :data:`PLANAR_FORMATS`; it is kept (its
            buffers belong to it), so the planes stay valid.
    """

    def __init__(self, frame: av.VideoFrame) -> None:
        if frame.format.name not in PLANAR_FORMATS:
            raise ValueError(f"a planar picture needs one of {PLANAR_FORMATS}, got {frame.format.name}")
        self.frame = frame
        self.planes = tuple(_plane(p) for p in frame.planes)  # Y (H, W), U and V (ceil(H/2), ceil(W/2))
        self._affine = yuv_to_rgb_affine(matrix_of(frame.colorspace), frame.color_range == AVCOL_RANGE_JPEG)
        self._rgb: np.ndarray | None = None

    @property
    def width(self) -> int:
        return int(self.frame.width)

    @property
    def height(self) -> int:
        return int(self.frame.height)

    def rgb(self) -> np.ndarray:
        if self._rgb is None:
            self._rgb = rgb(self.frame)
        return self._rgb

    def region(self, box: tuple[int, int, int, int], width: int, height: int) -> np.ndarray:
        x1, y1, x2, y2 = box
        cx1, cy1 = x1 // 2, y1 // 2  # the chroma samples under the box (each covers 2 x 2 pixels)
        cx2, cy2 = max(cx1 + 1, (x2 + 1) // 2), max(cy1 + 1, (y2 + 1) // 2)
        luma, u, v = self.planes
        samples = cv2.merge([resize_to(luma[y1:y2, x1:x2], width, height),
                             resize_to(u[cy1:cy2, cx1:cx2], width, height),
                             resize_to(v[cy1:cy2, cx1:cx2], width, height)])
        return cv2.transform(samples, self._affine)  # (height, width, 3) RGB, rounded and clipped


def _plane(plane: av.video.plane.VideoPlane) -> np.ndarray:
    """A plane's pixels as a (height, width) uint8 view of its buffer (its row padding left out)."""
    return np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]


def picture_of(frame: av.VideoFrame) -> Picture:
    """A decoded frame as a :class:`PlanarPicture` when its format allows, else an :class:`RgbPicture`
    (an empty frame, 0 pixels wide or high, becomes an empty RGB array: the detector refuses it)."""
    if frame.width == 0 or frame.height == 0:
        return RgbPicture(np.zeros((frame.height, frame.width, 3), np.uint8))
    if frame.format.name in PLANAR_FORMATS:
        return PlanarPicture(frame)
    return RgbPicture(rgb(frame))


def as_picture(image: np.ndarray | Picture) -> Picture:
    """``image`` as a picture: an (H, W, 3) RGB uint8 array is wrapped in an :class:`RgbPicture`."""
    return RgbPicture(image) if isinstance(image, np.ndarray) else image


def crops(picture: Picture, boxes: np.ndarray, ratio: float, size_of: SizeOf | None) -> list[np.ndarray]:
    """The embedder's crops of ``boxes``, each expanded by ``ratio`` (:func:`engines.preprocess.expand_box`).

    Args:
        picture: The frame.
        boxes: (N, 4) ``x1, y1, x2, y2`` boxes in frame pixels.
        ratio: Expansion before cropping.
        size_of: The size the embedder scales a crop of a given size to (its ``scaled_size``), so a
            planar picture converts only that many pixels; None gives the crops at their own size.

    Returns:
        N (h, w, 3) RGB uint8 arrays.
    """
    out = []
    for box in boxes:
        region = expand_box(box, ratio, picture.width, picture.height)
        width, height = region[2] - region[0], region[3] - region[1]
        out.append(picture.region(region, *(size_of(width, height) if size_of is not None else (width, height))))
    return out
