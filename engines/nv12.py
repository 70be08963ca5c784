"""NV12 pictures (what NVDEC gives) to RGB and to a detector's input, on whatever device holds them.

NVDEC decodes into GPU memory as NV12: a full-resolution luma plane and one half-resolution plane of
interleaved chroma. PyAV hands each plane of such a frame over by DLPack (``torch.from_dlpack(
frame.planes[i])``) without a copy to the host; the same works for a software frame in host memory,
which is how the tests check this module against swscale. Converting and scaling there keeps the
picture on the device until the detector has read it: the host never sees the pixels.

The conversion is swscale's for 4:2:0 video: chroma repeated over each 2 x 2 block of pixels,
limited ("TV") or full range, the BT.601 or BT.709 matrix, rounded to whole levels: within 3 levels
of swscale's fixed-point conversion on real frames, about 1 on average (tested). The scaled input is
torch's area averaging: the project's two-step area resize to the level for integer factors, within
1 level on average otherwise (tested).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engines.colour import MATRICES


def nv12_to_rgb(y: torch.Tensor, uv: torch.Tensor, matrix: str = "bt601", full_range: bool = False) -> torch.Tensor:
    """One NV12 picture as RGB.

    Args:
        y: (H, W) uint8 luma, H and W even.
        uv: (H / 2, W / 2, 2) uint8 interleaved chroma (U, V), on ``y``'s device.
        matrix: ``bt601`` or ``bt709`` (:func:`engines.colour.matrix_of` reads it from a frame).
        full_range: Samples span 0-255 (JPEG range) rather than 16-235 / 16-240.

    Returns:
        (H, W, 3) uint8 RGB on the same device.
    """
    if matrix not in MATRICES:
        raise ValueError(f"matrix must be one of {', '.join(MATRICES)}, got {matrix!r}")
    height, width = y.shape
    if height % 2 or width % 2 or tuple(uv.shape) != (height // 2, width // 2, 2):
        raise ValueError(f"an NV12 picture needs even sides and (H/2, W/2, 2) chroma, got {tuple(y.shape)} and {tuple(uv.shape)}")
    kr, kb = MATRICES[matrix]
    kg = 1.0 - kr - kb
    luma = y.float()
    chroma = uv.float() - 128.0
    if not full_range:
        luma = (luma - 16.0) * (255.0 / 219.0)
        chroma = chroma * (255.0 / 224.0)
    chroma = chroma.repeat_interleave(2, dim=0).repeat_interleave(2, dim=1)  # (H, W, 2): each sample on its 2 x 2 block
    u, v = chroma[..., 0], chroma[..., 1]
    red = luma + 2.0 * (1.0 - kr) * v
    blue = luma + 2.0 * (1.0 - kb) * u
    green = luma - (2.0 * kb * (1.0 - kb) / kg) * u - (2.0 * kr * (1.0 - kr) / kg) * v
    return torch.stack((red, green, blue), dim=-1).round_().clamp_(0.0, 255.0).to(torch.uint8)


def scaled_input(rgb: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """An RGB picture shrunk to a model's input by area averaging (bilinear when it grows).

    Args:
        rgb: (H, W, 3) uint8.
        width: Target width w.
        height: Target height h.

    Returns:
        (h, w, 3) uint8 on ``rgb``'s device: the layout the pixel-input packages take.
    """
    batch = rgb.permute(2, 0, 1).unsqueeze(0).float()
    shrinking = width <= rgb.shape[1] and height <= rgb.shape[0]
    if shrinking:
        out = F.interpolate(batch, size=(height, width), mode="area")
    else:
        out = F.interpolate(batch, size=(height, width), mode="bilinear", align_corners=False)
    return out.squeeze(0).permute(1, 2, 0).round_().clamp_(0.0, 255.0).to(torch.uint8)
