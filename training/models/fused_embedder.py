"""Two embedders in one graph: the synthetic-trained CNN and the frozen ImageNet backbone.

The two see different things. The CNN trained on synthetic crops has learned the catalog's cues of
shape, colour and pattern layout (synthetic held-out R@1 0.99) but little of real cloth; the frozen
ImageNet EfficientNet-Lite with centre-weighted pooling describes real texture and material (real
annotated-crop R@1 0.51 against 0.31) but not the fine colour variants the synthetic catalog is full
of. Their errors differ, and equal-weight fusion beats both on real crops (docs/models.md).

Input ``images`` [B, 3, 256, 256] (ImageNet mean/std, stretch of the box expanded by 10 %); the
CNN branch sees it average-pooled 2x2 to its own 128 x 128 (an exact area resize), the ImageNet branch
the full 256. Outputs:

- ``embeddings`` [B, D_a + D_b]: the two unit vectors scaled by ``sqrt(w)`` and concatenated, so the
  output has unit norm and the dot product of two outputs is the weighted mean of the branches'
  cosine similarities;
- ``garment`` [B]: the ImageNet classifier's probability that the crop shows clothing (the summed
  softmax of the clothing classes in :data:`GARMENT_CLASSES`). It comes with the ImageNet branch at
  the cost of one 1280 x 1000 product and tells a garment from the banners, lamps and overlays that
  a detector trained on renders also boxes in real footage.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from training.models.embedder import EmbedderConfig, EmbedderNet

#: ImageNet-1k classes that are garments (abaya, academic gown, apron, bikini, brassiere, bulletproof
#: vest, cardigan, cloak, feather boa, fur coat, gown, hoopskirt, jean, jersey/T-shirt, kimono, lab
#: coat, maillot x2, military uniform, miniskirt, overskirt, pajama, poncho, sarong, stole, suit,
#: sweatshirt, swimming trunks, trench coat, velvet, vestment, wool), chosen by name, not by data.
GARMENT_CLASSES = (399, 400, 411, 445, 459, 465, 474, 501, 552, 568, 578, 601, 608, 610, 614, 617, 638, 639,
                   652, 655, 689, 697, 735, 775, 824, 834, 841, 842, 869, 885, 887, 911)
#: The CNN branch's input side; the fused input is twice as large.
CNN_INPUT = 128
FUSED_INPUT = 2 * CNN_INPUT


class FusedEmbedderNet(nn.Module):
    """[B, 3, 256, 256] -> [B, D_a + D_b] unit vectors (see the module docstring).

    Args:
        cnn: config of the synthetic-trained branch (input 128).
        imagenet: config of the ImageNet branch (input 256, normally ``projection=False``).
        weights: the two branches' weights (normalised to sum 1).
    """

    def __init__(self, cnn: EmbedderConfig, imagenet: EmbedderConfig, weights: tuple[float, float] = (0.5, 0.5)) -> None:
        super().__init__()
        if not (len(weights) == 2 and all(w >= 0 and math.isfinite(w) for w in weights) and sum(weights) > 0):
            raise ValueError(f"weights must be two non-negative numbers with a positive sum, got {weights}")
        total = float(sum(weights))
        self.weights = (weights[0] / total, weights[1] / total)
        self.cnn = EmbedderNet(cnn)
        self.imagenet = EmbedderNet(imagenet)
        self.classifier = nn.Linear(self.imagenet.embedding_dim, 1000)
        self.garment_mask: torch.Tensor
        self.register_buffer("garment_mask", torch.zeros(1000), persistent=False)
        self.garment_mask[list(GARMENT_CLASSES)] = 1.0

    def load_pretrained(self) -> None:
        """ImageNet weights into the ImageNet branch and its classifier (the CNN branch is loaded apart)."""
        from training.models.pretrained import imagenet_state_dict

        self.imagenet.load_pretrained()
        weights = imagenet_state_dict(self.imagenet.config.backbone)
        self.classifier.load_state_dict({"weight": weights["classifier.weight"], "bias": weights["classifier.bias"]})

    @property
    def embedding_dim(self) -> int:
        return self.cnn.embedding_dim + self.imagenet.embedding_dim

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, 3, 256, 256] normalised float32 -> ([B, D] unit rows, [B] garment probability)."""
        small = F.avg_pool2d(images, kernel_size=2)
        a = self.cnn(small) * math.sqrt(self.weights[0])
        features = self.imagenet.backbone(self.imagenet.adapter(images))  # [B, 1280, 8, 8]
        b = F.normalize(self.imagenet.pool(features), p=2.0, dim=1, eps=1e-12) * math.sqrt(self.weights[1])
        probs = torch.softmax(self.classifier(features.mean(dim=(2, 3))), dim=1)
        return torch.cat([a, b], dim=1), (probs * self.garment_mask).sum(dim=1)


def build_fused_embedder(cnn: dict[str, Any], imagenet: dict[str, Any], weights: list[float]) -> FusedEmbedderNet:
    """Factory named in spec.json ``torch.factory``."""
    return FusedEmbedderNet(EmbedderConfig.from_dict(cnn), EmbedderConfig.from_dict(imagenet),
                            (float(weights[0]), float(weights[1])))
