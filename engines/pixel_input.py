"""The network input step that a pixel-input package carries inside its graph (torch, imported lazily).

A pixel-input package (``spec.input.dtype`` ``uint8``, layout ``NHWC``) takes the RGB pixels as they
come out of the decoder and the resize; the graph itself casts them to float, reorders them to
planes and normalises them. On a GPU that moves the per-pixel work to the device and sends a quarter
of the bytes over the bus; on the CPU it leaves numpy only the resize and the stack. The export
(``training.export``) wraps a network in :class:`PixelInput` before writing the ONNX graph, and the
torch backend wraps the rebuilt network the same way, so both run the same arithmetic.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from engines.package import Normalization
from engines.preprocess import normalisation_constants


class PixelInput(nn.Module):
    """``(B, H, W, 3)`` uint8 RGB -> ``(x * scale - mean) / std`` as (B, 3, H, W) float -> ``network``.

    The multiply-add uses the float32 constants of :func:`engines.preprocess.normalisation_constants`,
    as :func:`engines.preprocess.normalise` does, so a float32 package and its pixel-input twin
    see the same network input (to the last bit in torch on the CPU).

    Args:
        network: The module that takes normalised (B, 3, H, W) float input.
        norm: The package's normalisation.
    """

    mul: torch.Tensor
    add: torch.Tensor

    def __init__(self, network: nn.Module, norm: Normalization) -> None:
        super().__init__()
        self.network = network
        mul, add = normalisation_constants(norm)
        self.register_buffer("mul", torch.from_numpy(mul).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("add", torch.from_numpy(add).reshape(1, 3, 1, 1), persistent=False)

    def planes(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, 3, H, W) normalised, in the dtype of the buffers (float32 or half)."""
        # Cast first: TensorRT takes a uint8 network input only into a cast to float (DataType.UINT8),
        # so the graph's first node on the pixels must be the Cast, not the Transpose.
        x = pixels.to(self.mul.dtype).permute(0, 3, 1, 2)
        return x * self.mul + self.add

    def forward(self, pixels: torch.Tensor) -> Any:
        """The network's outputs for (B, H, W, 3) uint8 pixels."""
        return self.network(self.planes(pixels))

    def raw(self, pixels: torch.Tensor) -> Any:
        """A detector's head maps before its decode (``network.raw``), for the export parity check."""
        return self.network.raw(self.planes(pixels))  # type: ignore[operator]
