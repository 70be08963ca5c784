"""Pictures that convert only what is asked: YUV 4:2:0 planes against the whole-frame RGB way."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from engines.picture import PlanarPicture, RgbPicture, as_picture, crops, picture_of
from engines.preprocess import crop, expand_box, resize_to, stretch
from stream.decode import PacketDecoder, rgb
from stream.frames import iter_frame_packets

DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "demo" / "video" / "v000000.mp4"
#: Real camera footage, BT.601 limited range (yuv420p); full range (yuvj420p); the demo's 540x960 portrait.
CLIPS = [DATA / "car-detection-14s.mp4", DATA / "again.mkv", SAMPLE]


def _frame(path: Path, index: int = 0) -> av.VideoFrame:
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame
    raise AssertionError(f"{path} has no frame {index}")


def _boxes(width: int, height: int) -> np.ndarray:
    """A large, a small, an odd-placed and a sliver box in a ``width x height`` frame."""
    return np.array([[0.2 * width, 0.1 * height, 0.7 * width, 0.95 * height],
                     [0.6 * width, 0.3 * height, 0.75 * width, 0.5 * height],
                     [1.0, 3.0, 0.3 * width + 1.0, 0.3 * height + 3.0],
                     [width - 3.0, 0.0, width, height]], np.float32)


@pytest.mark.parametrize("path", CLIPS, ids=lambda p: p.name)
def test_a_planar_picture_converts_regions_close_to_the_rgb_way(path: Path) -> None:
    frame = _frame(path)
    planar = picture_of(frame)
    assert isinstance(planar, PlanarPicture) and (planar.width, planar.height) == (frame.width, frame.height)
    whole = rgb(frame)
    assert np.array_equal(planar.rgb(), whole) and planar.rgb() is planar.rgb()  # converted once
    reference = RgbPicture(whole)
    size = (round(frame.width / 6), round(frame.height / 6))
    full = (0, 0, frame.width, frame.height)
    small = planar.region(full, *size)
    assert small.shape == (size[1], size[0], 3) and small.dtype == np.uint8
    # the exact conversion against swscale's fixed-point one: about 0.8 level on real footage, mostly
    # swscale being darker; 1.3-1.5 on the demo's saturated flat renders
    assert np.abs(small.astype(int) - reference.region(full, *size)).mean() < 1.6
    ours = crops(planar, _boxes(frame.width, frame.height), 0.1, lambda w, h: (256, 256))
    theirs = crops(reference, _boxes(frame.width, frame.height), 0.1, lambda w, h: (256, 256))
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape == (256, 256, 3)
        assert np.abs(a.astype(int) - b).mean() < 1.6
    same_size = crops(planar, _boxes(frame.width, frame.height), 0.1, None)
    for box, c in zip(_boxes(frame.width, frame.height), same_size, strict=True):
        x1, y1, x2, y2 = expand_box(box, 0.1, frame.width, frame.height)
        assert c.shape == (y2 - y1, x2 - x1, 3)
        assert np.abs(c.astype(int) - whole[y1:y2, x1:x2]).mean() < 2.0  # bilinear chroma, not repeated


def test_a_wrong_region_is_visibly_wrong() -> None:
    """The closeness above can fail: the region one box-width over, or chroma from the wrong place,
    is far off."""
    frame = _frame(DATA / "car-detection-14s.mp4")
    planar, reference = PlanarPicture(frame), RgbPicture(rgb(frame))
    box = (100, 100, 300, 300)
    assert np.abs(planar.region(box, 64, 64).astype(int) - reference.region(box, 64, 64)).max() <= 6
    assert np.abs(planar.region(box, 64, 64).astype(int) - reference.region((100, 232, 300, 432), 64, 64)).mean() > 5
    colourful = _frame(SAMPLE)
    swapped, reference = PlanarPicture(colourful), RgbPicture(rgb(colourful))
    swapped.planes = (swapped.planes[0], swapped.planes[2], swapped.planes[1])  # U and V exchanged
    box = (100, 200, 400, 800)
    assert np.abs(PlanarPicture(colourful).region(box, 64, 64).astype(int) - reference.region(box, 64, 64)).mean() < 2
    assert np.abs(swapped.region(box, 64, 64).astype(int) - reference.region(box, 64, 64)).mean() > 10


def test_an_rgb_picture_is_the_old_crop_and_resize_to_the_bit() -> None:
    image = rgb(_frame(DATA / "car-detection-14s.mp4"))
    picture = as_picture(image)
    assert isinstance(picture, RgbPicture) and as_picture(picture) is picture and picture.rgb() is image
    boxes = _boxes(image.shape[1], image.shape[0])
    for box, ours in zip(boxes, crops(picture, boxes, 0.1, lambda w, h: (256, 256)), strict=True):
        assert np.array_equal(ours, stretch(crop(image, box, 0.1), 256, 256))
    assert np.array_equal(picture.region((0, 0, image.shape[1], image.shape[0]), 128, 72), resize_to(image, 128, 72))


def test_odd_boxes_and_growing_regions_have_the_asked_shape() -> None:
    planar = PlanarPicture(_frame(SAMPLE))
    for box, size in (((1, 1, 4, 4), (3, 3)), ((5, 7, 6, 8), (1, 1)), ((0, 0, 10, 10), (33, 17)),
                      ((planar.width - 1, planar.height - 1, planar.width, planar.height), (8, 8))):
        assert planar.region(box, *size).shape == (size[1], size[0], 3)


def test_picture_of_other_formats_and_empty_frames() -> None:
    frame = _frame(DATA / "car-detection-14s.mp4")
    as_rgb = picture_of(frame.reformat(format="rgb24"))
    assert isinstance(as_rgb, RgbPicture) and np.abs(as_rgb.rgb().astype(int) - rgb(frame)).mean() < 1.0
    assert isinstance(picture_of(frame.reformat(format="yuv444p")), RgbPicture)
    empty = picture_of(av.VideoFrame(0, 16, "yuv420p"))
    assert isinstance(empty, RgbPicture) and empty.rgb().shape == (16, 0, 3)
    with pytest.raises(ValueError, match="planar picture"):
        PlanarPicture(frame.reformat(format="rgb24"))


def test_a_held_picture_keeps_its_pixels_while_its_decoder_goes_on() -> None:
    """The stage keeps pictures in its queues while the stream's decoder decodes the next ones
    (and, with resumed decode chains, keeps its reference pictures): a held picture must not change."""
    packets = list(iter_frame_packets("s", SAMPLE, "fps:4"))[:12]
    decoder = PacketDecoder()
    held = [picture_of(decoder.decode_picture(p)) for p in packets[:4]]
    first = [p.region((0, 0, p.width, p.height), 90, 160) for p in held]
    for packet in packets[4:]:
        decoder.decode_picture(packet)
    assert all(np.array_equal(p.region((0, 0, p.width, p.height), 90, 160), f) for p, f in zip(held, first, strict=True))
    assert len({f.tobytes() for f in first}) > 1, "the pictures differ from each other"


@pytest.mark.parametrize(("matrix", "full_range"), [("bt601", False), ("bt709", False), ("bt601", True)])
def test_the_affine_conversion_is_the_nv12_conversion(matrix: str, full_range: bool) -> None:
    """Two ways to one formula: the CPU path's affine map and the device path's NV12 conversion."""
    import cv2
    import torch

    from engines.colour import yuv_to_rgb_affine
    from engines.nv12 import nv12_to_rgb

    frame = _frame(SAMPLE)
    y, u, v = PlanarPicture(frame).planes
    up = [np.repeat(np.repeat(c, 2, axis=0), 2, axis=1) for c in (u, v)]
    ours = cv2.transform(cv2.merge([y, *up]), yuv_to_rgb_affine(matrix, full_range))
    theirs = nv12_to_rgb(torch.from_numpy(np.ascontiguousarray(y)), torch.from_numpy(np.stack([u, v], axis=-1)),
                         matrix, full_range).numpy()
    assert np.abs(ours.astype(int) - theirs).max() <= 1


def test_a_picture_reads_its_streams_matrix() -> None:
    """A stream that says BT.709 is converted with BT.709: visibly different on a colourful picture."""
    frame = _frame(SAMPLE)
    box = (0, 0, frame.width, frame.height)
    as_601 = PlanarPicture(frame).region(box, 90, 160)
    frame.colorspace = 1  # AVCOL_SPC_BT709
    as_709 = PlanarPicture(frame).region(box, 90, 160)
    assert np.abs(as_601.astype(int) - as_709).max() > 10
