"""Pre-processing and box post-processing: letterbox, stretch, normalise, expand/crop, mapping, NMS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines.package import InputSpec, Normalization
from engines.preprocess import (
    EngineInputError,
    area_resize,
    boxes_to_frame,
    check_image,
    crop,
    expand_box,
    iou_matrix,
    letterbox,
    network_batch,
    nms,
    normalise,
    stretch,
)


@pytest.mark.parametrize(
    ("h", "w", "scale", "covered"),
    [
        (100, 200, 1.28, (128, 256)),  # wide: full width, padded below
        (200, 100, 1.28, (256, 128)),  # tall: full height, padded right
        (512, 512, 0.5, (256, 256)),  # square: no padding
        (10, 1000, 0.256, (3, 256)),
    ],
)
def test_letterbox_is_top_left_with_padding(h: int, w: int, scale: float, covered: tuple[int, int]) -> None:
    image = np.full((h, w, 3), 7, np.uint8)
    canvas, s = letterbox(image, 256, 256, pad_value=114)
    assert canvas.shape == (256, 256, 3) and canvas.dtype == np.uint8
    assert s == pytest.approx(scale)
    ch, cw = covered
    assert np.all(canvas[:ch, :cw] == 7)
    assert np.all(canvas[ch:, :] == 114) and np.all(canvas[:, cw:] == 114)


def test_letterboxed_box_maps_back_to_frame_pixels() -> None:
    frame = np.zeros((360, 640, 3), np.uint8)
    frame[90:180, 320:480] = 255  # a white box at x 320..480, y 90..180
    canvas, s = letterbox(frame, 256, 256)
    ys, xs = np.nonzero(canvas[..., 0] > 128)
    net_box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    back = boxes_to_frame(net_box, s, 640, 360)
    np.testing.assert_allclose(back[0], [320, 90, 480, 180], atol=3)


def test_boxes_are_clipped_and_stretch_scales_per_axis() -> None:
    boxes = np.array([[-10, -5, 300, 20], [10, 10, 20, 20]], np.float32)
    out = boxes_to_frame(boxes, (2.0, 0.5), 100, 50)
    np.testing.assert_allclose(out, [[0, 0, 100, 40], [5, 20, 10, 40]])
    assert stretch(np.zeros((10, 30, 3), np.uint8), 32, 16).shape == (32, 16, 3)


def test_normalise_gives_nchw_float32() -> None:
    norm = Normalization(scale=1 / 255, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    images = [np.full((4, 6, 3), [255, 0, 51], np.uint8), np.zeros((4, 6, 3), np.uint8)]
    batch = normalise(images, norm)
    assert batch.shape == (2, 3, 4, 6) and batch.dtype == np.float32 and batch.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(batch[0, :, 0, 0], [1.0, -1.0, 0.2], atol=1e-6)
    np.testing.assert_allclose(batch[1, :, 2, 3], [-1.0, -1.0, 0.0], atol=1e-6)


def _real_frame() -> np.ndarray:
    """A real camera frame (the test clip's first, 432 x 768) upscaled to 1080 x 1920 RGB."""
    import av
    import cv2

    with av.open(str(Path(__file__).resolve().parents[1] / "data" / "car-detection-14s.mp4")) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    return cv2.resize(frame, (1920, 1080), interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize(
    ("box", "size"),
    [
        ((0, 0, 1920, 1080), (320, 180)),  # a 1080p frame into the detector's letterbox (6x: 2x, then 3x)
        ((0, 0, 1920, 1080), (213, 120)),  # 9x, odd: one block average
        ((700, 200, 1150, 900), (256, 256)),  # a held-up garment into the embedder (1.8 x 2.7)
        ((1300, 350, 1600, 800), (256, 256)),  # 1.2 x 1.8: bilinear alone
        ((0, 0, 1000, 999), (97, 3)),  # extreme aspect
    ],
)
def test_area_resize_is_inter_area_within_rounding(box: tuple[int, int, int, int], size: tuple[int, int]) -> None:
    import cv2

    x1, y1, x2, y2 = box
    image = np.ascontiguousarray(_real_frame()[y1:y2, x1:x2])
    fast = area_resize(image, *size)
    reference = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    assert fast.shape == reference.shape == (size[1], size[0], 3) and fast.dtype == np.uint8
    diff = np.abs(fast.astype(np.int16) - reference)
    assert diff.mean() < 0.3 and diff.max() <= 3
    if (image.shape[1] % size[0], image.shape[0] % size[1]) == (0, 0) and (image.shape[1] // size[0]) % 2:
        np.testing.assert_array_equal(fast, reference)  # an odd integer factor is the very same call
    grey = area_resize(np.ascontiguousarray(image[..., 0]), *size)
    assert grey.shape == (size[1], size[0])


@pytest.mark.parametrize(("kx", "ky"), [(1, 3), (3, 1), (1, 5), (7, 1), (1, 9)])
@pytest.mark.parametrize("channels", [1, 3])
def test_one_axis_block_means_are_inter_area_to_the_bit(kx: int, ky: int, channels: int) -> None:
    """The numpy path for 1 x k blocks (k odd) gives OpenCV's own values, saturated pixels included."""
    import cv2

    rng = np.random.default_rng(kx * 10 + ky)
    shape = (ky * 37, kx * 41) if channels == 1 else (ky * 37, kx * 41, channels)
    for image in (rng.integers(0, 256, shape, dtype=np.uint8), np.full(shape, 255, np.uint8)):
        reference = cv2.resize(image, (41, 37), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(area_resize(image, 41, 37), reference)


def test_network_batch_leaves_pixels_to_a_pixel_input_graph() -> None:
    norm = Normalization(scale=1 / 255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    images = [np.random.default_rng(i).integers(0, 256, size=(4, 6, 3), dtype=np.uint8) for i in range(2)]
    pixels = InputSpec("images", -1, 4, 6, "stretch", 114, layout="NHWC", dtype="uint8")
    planes = InputSpec("images", -1, 4, 6, "stretch", 114)
    batch = network_batch(images, pixels, norm)
    assert batch.dtype == np.uint8 and batch.shape == (2, 4, 6, 3) and pixels.shape == (-1, 4, 6, 3)
    np.testing.assert_array_equal(batch[1], images[1])
    np.testing.assert_array_equal(network_batch(images, planes, norm), normalise(images, norm))
    assert planes.shape == (-1, 3, 4, 6) and not planes.takes_pixels


def test_the_in_graph_normalisation_is_the_numpy_one_to_the_bit() -> None:
    import torch

    from engines.pixel_input import PixelInput

    norm = Normalization(scale=1 / 255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    images = [np.random.default_rng(i).integers(0, 256, size=(8, 5, 3), dtype=np.uint8) for i in range(3)]
    step = PixelInput(torch.nn.Identity(), norm)
    in_graph = step(torch.from_numpy(np.stack(images))).numpy()
    assert in_graph.dtype == np.float32 and in_graph.shape == (3, 3, 8, 5)
    np.testing.assert_array_equal(in_graph, normalise(images, norm))


@pytest.mark.parametrize(
    ("box", "ratio", "expected"),
    [
        ((10, 10, 30, 50), 0.1, (9, 8, 31, 52)),  # +1 px each side in x (20*0.05), +2 in y (40*0.05)
        ((0, 0, 100, 100), 0.1, (0, 0, 100, 100)),  # clipped to the 100x100 image
        ((40, 40, 60, 60), 0.0, (40, 40, 60, 60)),
        ((99.5, 99.5, 99.6, 99.6), 0.1, (99, 99, 100, 100)),  # degenerate box still gives 1x1
    ],
)
def test_expand_box(box: tuple[float, ...], ratio: float, expected: tuple[int, ...]) -> None:
    assert expand_box(box, ratio, 100, 100) == expected


def test_crop_returns_expanded_pixels() -> None:
    image = np.arange(100 * 100 * 3, dtype=np.uint32).reshape(100, 100, 3).astype(np.uint8)
    out = crop(image, (10, 10, 30, 50), ratio=0.1)
    assert out.shape == (44, 22, 3)
    np.testing.assert_array_equal(out, image[8:52, 9:31])


def test_nms_keeps_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10.5], [100, 100, 110, 110]], np.float32)
    scores = np.array([0.8, 0.9, 0.5, 0.7, 0.95], np.float32)
    keep = nms(boxes, scores, iou_threshold=0.6)
    assert keep.tolist() == [4, 1, 2]  # 0 and 3 overlap box 1 (IoU 0.68, 0.66) and are dropped
    assert nms(boxes, scores, iou_threshold=0.99).tolist() == [4, 1, 0, 3, 2]
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32)).tolist() == []


def test_iou_matrix_values() -> None:
    a = np.array([[0, 0, 2, 2]], np.float32)
    b = np.array([[1, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6], [1, 1, 1, 1]], np.float32)
    np.testing.assert_allclose(iou_matrix(a, b)[0], [1 / 7, 1.0, 0.0, 0.0], atol=1e-6)


def test_check_image_messages() -> None:
    check_image(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(EngineInputError, match=r"shape \(2, 2\)"):
        check_image(np.zeros((2, 2), np.uint8))
    with pytest.raises(EngineInputError, match="is empty"):
        check_image(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(EngineInputError, match="dtype float64"):
        check_image(np.zeros((2, 2, 3)))
