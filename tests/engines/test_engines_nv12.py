"""NV12 -> RGB -> model input on a torch device, checked on the CPU against swscale and the stage's resize."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from engines.colour import AVCOL_RANGE_JPEG, matrix_of
from engines.nv12 import nv12_to_rgb, scaled_input
from engines.preprocess import area_resize

DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "demo" / "video" / "v000000.mp4"
#: BT.601 limited range (bottle, car; the car clip says so), full range (again.mkv: yuvj420p), portrait 540x960.
CLIPS = [DATA / "bottle-detection.mp4", DATA / "car-detection-14s.mp4", DATA / "again.mkv", SAMPLE]


def _first_frame(path: Path) -> av.VideoFrame:
    with av.open(str(path)) as container:
        return next(container.decode(video=0))


@pytest.mark.parametrize("path", CLIPS, ids=lambda p: p.name)
def test_nv12_planes_by_dlpack_convert_as_swscale_does(path: Path) -> None:
    frame = _first_frame(path)
    nv12 = frame.reformat(format="nv12")  # what NVDEC would hand over; here in host memory
    y, uv = torch.from_dlpack(nv12.planes[0]), torch.from_dlpack(nv12.planes[1])
    assert y.shape == (frame.height, frame.width) and uv.shape == (frame.height // 2, frame.width // 2, 2)
    ours = nv12_to_rgb(y, uv, matrix_of(frame.colorspace), frame.color_range == AVCOL_RANGE_JPEG)
    assert ours.dtype == torch.uint8 and ours.shape == (frame.height, frame.width, 3)
    difference = np.abs(ours.numpy().astype(int) - frame.to_ndarray(format="rgb24").astype(int))
    assert difference.max() <= 3 and difference.mean() < 1.5


def test_the_wrong_matrix_or_range_is_visibly_wrong() -> None:
    """The checks above can fail: BT.709 or full range on the demo's colourful BT.601 limited-range
    picture are off by far more than 3 levels."""
    frame = _first_frame(SAMPLE)
    nv12 = frame.reformat(format="nv12")
    y, uv = torch.from_dlpack(nv12.planes[0]), torch.from_dlpack(nv12.planes[1])
    reference = frame.to_ndarray(format="rgb24").astype(int)
    for matrix, full in (("bt709", False), ("bt601", True)):
        assert np.abs(nv12_to_rgb(y, uv, matrix, full).numpy().astype(int) - reference).max() > 10


@pytest.mark.parametrize("path", CLIPS, ids=lambda p: p.name)
def test_the_scaled_input_is_the_stages_area_resize_within_a_level(path: Path) -> None:
    image = _first_frame(path).to_ndarray(format="rgb24")
    height, width = image.shape[:2]
    scale = 320 / max(height, width)
    size = (round(width * scale), round(height * scale))
    ours = scaled_input(torch.from_numpy(image), *size).numpy()
    assert ours.shape == (size[1], size[0], 3)
    assert np.abs(ours.astype(int) - area_resize(image, *size).astype(int)).mean() < 0.5
    assert scaled_input(torch.from_numpy(image), width * 2, height * 2).shape == (height * 2, width * 2, 3)


def test_odd_pictures_and_unknown_matrices_are_refused() -> None:
    y, uv = torch.zeros((5, 4), dtype=torch.uint8), torch.zeros((2, 2, 2), dtype=torch.uint8)
    with pytest.raises(ValueError, match="even sides"):
        nv12_to_rgb(y, uv)
    with pytest.raises(ValueError, match="matrix"):
        nv12_to_rgb(torch.zeros((4, 4), dtype=torch.uint8), uv, matrix="bt2020")
    assert matrix_of(1) == "bt709" and matrix_of(2) == "bt601" and matrix_of(6) == "bt601"
