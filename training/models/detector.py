"""The garment detector: a compact anchor-free CenterNet-style network with in-graph decoding.

Layout (input 256x256, output stride 8):

* backbone: five stride-2 stages of conv-BN-ReLU blocks with residual blocks (``widths``, ``blocks``),
  strides 2..32;
* neck: a small FPN that adds the stride-32 and stride-16 maps, upsampled, to the stride-8 map;
* head: shared 3x3 conv(s), then 1x1 convs giving, per stride-8 cell, an objectness (center)
  logit, 4 log-distances to the box sides (left, top, right, bottom, in units of the stride),
  23 category logits and a sold-item logit.

``forward`` decodes inside the graph, so the ONNX export needs no Python post-processing:
objectness = sigmoid(center logit); a 3x3 max-pool keeps local peaks; the top-K peaks (K = 100)
give boxes in input pixels, their scores, category softmax and sold-item probability. There are
no Python loops in ``forward``; every operation is a batched tensor op.

In train mode ``forward`` returns the undecoded maps of ``raw`` instead, for the losses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from training.categories import NUM_CATEGORIES

OUTPUT_NAMES = ["boxes", "scores", "class_probs", "sold"]
RANK_RANGE = 124.0  # ranks span [-30, 94]: clamped logits plus 64 for peaks
FLOAT32_EXACT = 2**24  # integers below this are exact in float32 (TensorRT has no float64)
MAX_LOG_DISTANCE = 6.0  # exp(6) * 8 px ~ 3200 px: far beyond any box in a 256 input


@dataclass(frozen=True)
class DetectorConfig:
    """Everything needed to rebuild the module (stored in checkpoints and spec.json).

    Attributes:
        widths: Channels of the five backbone stages (strides 2, 4, 8, 16, 32).
        blocks: Residual blocks after the stride-2 conv of stages 2..5.
        neck_channels: Channels of the FPN and the head.
        head_convs: 3x3 conv layers shared by the heads.
        num_classes: Number of garment categories.
        max_detections: K, the number of peaks kept by the in-graph decoder.
        backbone: ``scratch`` (the stages above) or a name of ``training.models.pretrained.BACKBONES``,
            whose stride-8/16/32 maps feed the FPN (``widths`` and ``blocks`` are then unused).
        trainable_blocks: pretrained backbones only: how many of the last blocks are trained; the
            stem and the blocks before them stay frozen with their ImageNet BatchNorm statistics.
        flip_test: eval mode only: decode the mean of the maps of the image and of its mirror
            (``flip_averaged``), at twice the network's cost. Training is unchanged.
    """

    widths: tuple[int, int, int, int, int] = (16, 24, 48, 80, 112)
    blocks: tuple[int, int, int, int] = (0, 1, 1, 1)
    neck_channels: int = 64
    head_convs: int = 1
    num_classes: int = NUM_CATEGORIES
    max_detections: int = 100
    backbone: str = "scratch"
    trainable_blocks: int = 0
    flip_test: bool = False

    @property
    def stride(self) -> int:
        """Pixels of input per output cell."""
        return 8


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class _Stage(nn.Sequential):
    """A stride-2 conv followed by ``blocks`` residual 3x3 blocks."""

    def __init__(self, cin: int, cout: int, blocks: int) -> None:
        layers: list[nn.Module] = [_conv(cin, cout, 2)]
        layers.extend(_Residual(cout) for _ in range(blocks))
        super().__init__(*layers)


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class GarmentDetector(nn.Module):
    """CenterNet-style detector with boxes, category, and sold-item score.

    Args:
        config: Widths and sizes (``DetectorConfig``).
    """

    def __init__(self, config: DetectorConfig | None = None) -> None:
        super().__init__()
        self.config = config or DetectorConfig()
        w = self.config.widths
        c = self.config.neck_channels
        self.frozen: list[nn.Module] = []
        self.trunk: nn.Module | None = None
        if self.config.backbone == "scratch":
            self.stem = _conv(3, w[0], 2)
            b = self.config.blocks
            self.stage2 = _Stage(w[0], w[1], b[0])
            self.stage3 = _Stage(w[1], w[2], b[1])
            self.stage4 = _Stage(w[2], w[3], b[2])
            self.stage5 = _Stage(w[3], w[4], b[3])
            c3, c4, c5 = w[2], w[3], w[4]
        else:
            from training.models.detection_trunk import PretrainedPyramid

            self.trunk = PretrainedPyramid(self.config.backbone)
            c3, c4, c5 = self.trunk.channels
        self.lateral3 = nn.Conv2d(c3, c, 1)
        self.lateral4 = nn.Conv2d(c4, c, 1)
        self.lateral5 = nn.Conv2d(c5, c, 1)
        self.head = nn.Sequential(*[_conv(c, c) for _ in range(self.config.head_convs)])
        self.center = nn.Conv2d(c, 1, 1)
        self.distances = nn.Conv2d(c, 4, 1)
        self.classes = nn.Conv2d(c, self.config.num_classes, 1)
        self.sold = nn.Conv2d(c, 1, 1)
        with torch.no_grad():
            self.center.bias.fill_(-4.6)  # type: ignore[union-attr]  # prior 0.01: most cells are background
            self.distances.bias.fill_(1.0)  # type: ignore[union-attr]

    def load_pretrained(self) -> None:
        """Load the ImageNet weights into a pretrained trunk and freeze all but its last blocks."""
        if self.trunk is not None:
            self.frozen = self.trunk.load_and_freeze(self.config.trainable_blocks)  # type: ignore[operator]

    def train(self, mode: bool = True) -> GarmentDetector:
        """Train mode everywhere except the frozen trunk parts (their BatchNorm keeps ImageNet stats)."""
        super().train(mode)
        for module in self.frozen:
            module.eval()
        return self

    def raw(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Undecoded head maps.

        Args:
            images: (B, 3, H, W) normalised input; H and W multiples of 32.

        Returns:
            ``center`` (B, 1, h, w) logits, ``distances`` (B, 4, h, w) log-distances in strides,
            ``classes`` (B, C, h, w) logits, ``sold`` (B, 1, h, w) logits; h = H / 8, w = W / 8.
        """
        if self.trunk is not None:
            x3, x4, x5 = self.trunk(images)
        else:
            x3 = self.stage3(self.stage2(self.stem(images)))
            x4 = self.stage4(x3)
            x5 = self.stage5(x4)
        p4 = self.lateral4(x4) + F.interpolate(self.lateral5(x5), size=x4.shape[-2:], mode="nearest")
        p3 = self.lateral3(x3) + F.interpolate(p4, size=x3.shape[-2:], mode="nearest")
        feat = self.head(p3)
        return {
            "center": self.center(feat),
            "distances": self.distances(feat).clamp(max=MAX_LOG_DISTANCE),
            "classes": self.classes(feat),
            "sold": self.sold(feat),
        }

    def forward(
        self, images: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | dict[str, torch.Tensor]:
        """Detect and decode (eval mode), or return the raw maps (train mode, see ``raw``).

        Training goes through ``forward`` so that a DistributedDataParallel wrapper sees the call
        and synchronises gradients; export and inference run in eval mode.

        Args:
            images: (B, 3, H, W) float32, letterboxed and normalised as the spec says.

        Returns:
            In eval mode: ``boxes`` (B, K, 4) x1, y1, x2, y2 in input pixels; ``scores`` (B, K)
            objectness in [0, 1] (0 for slots that are not local peaks); ``class_probs`` (B, K, C)
            softmax; ``sold`` (B, K) sold-item probability. K = ``max_detections``, best first.
        """
        if self.training:
            return self.raw(images)
        if self.config.flip_test:
            maps = flip_averaged(self.raw(torch.cat([images, images.flip(-1)])))
        else:
            maps = self.raw(images)
        return decode(maps, self.config.stride, self.config.max_detections)


def flip_averaged(maps: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Flip test-time augmentation: the mean of the maps of B images and of their B mirrors.

    The mirror's maps are flipped back along the width, and its left and right distances swapped; the
    cells line up exactly, since the input width is a multiple of the stride. Logits and
    log-distances are averaged (a box's sides the geometric mean of the two views').

    Args:
        maps: ``GarmentDetector.raw`` of a (2B, 3, H, W) batch: the B images, then their mirrors.

    Returns:
        Maps of the B images, shaped as ``raw`` gives them: (B, ., h, w).
    """
    out = {}
    for name, both in maps.items():
        half = both.shape[0] // 2
        mirror = both[half:].flip(-1)
        if name == "distances":
            mirror = mirror[:, [2, 1, 0, 3]]  # left <-> right
        out[name] = (both[:half] + mirror) * 0.5
    return out


def cell_centers(height: int, width: int, stride: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(h*w,) x and y pixel coordinates of the output cell centers, row-major."""
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * stride
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return grid_x.reshape(-1), grid_y.reshape(-1)


def distances_to_boxes(distances: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor, stride: int) -> torch.Tensor:
    """Turn log-distances into boxes.

    Args:
        distances: (..., 4) log-distances (left, top, right, bottom) in units of ``stride``.
        cx: (...) cell-center x in pixels (broadcastable to ``distances[..., 0]``).
        cy: (...) cell-center y in pixels.
        stride: Pixels per cell.

    Returns:
        (..., 4) x1, y1, x2, y2 in pixels.
    """
    d = torch.exp(distances) * stride
    return torch.stack([cx - d[..., 0], cy - d[..., 1], cx + d[..., 2], cy + d[..., 3]], dim=-1)


def rank_levels(cells: int) -> int:
    """Rank steps per logit unit that keep ``rank * levels * cells + cell`` below 2^24 (float32-exact)."""
    return int((FLOAT32_EXACT // cells - 1) // int(RANK_RANGE))


def decode(
    maps: dict[str, torch.Tensor], stride: int, max_detections: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Peak-keep (3x3 max-pool) and top-K over the objectness map, then gather every head.

    Args:
        maps: Output of ``GarmentDetector.raw``.
        stride: Pixels per cell.
        max_detections: K.

    Returns:
        boxes (B, K, 4), scores (B, K), class_probs (B, K, C), sold (B, K).
    """
    center = maps["center"].float()  # peaks and ranks in float32 whatever the module's precision
    batch, _, height, width = center.shape
    heat = torch.sigmoid(center)
    peaks = (heat == F.max_pool2d(heat, 3, stride=1, padding=1)).to(heat.dtype)
    # Rank in logit space so every peak (+64) ranks above every non-peak. The rank is quantised to
    # 1/levels and made unique with the cell index (lower index first among equals) as one float32
    # integer below 2^24, so top-K selects the same cells in torch, ONNX Runtime and TensorRT even
    # where scores tie exactly. With 32x32 cells the quantum is ~0.008 logits. In FP16 the rank would
    # overflow (65504) and top-K would pick noise.
    cells = height * width
    levels = float(rank_levels(cells))
    rank = (center.clamp(-30.0, 30.0) + 30.0 + 64.0 * peaks).reshape(batch, -1)
    quantised = torch.round(rank * levels)
    order = torch.arange(cells - 1, -1, -1, device=center.device, dtype=torch.float32)
    k = min(max_detections, cells)
    _, index = torch.topk(quantised * cells + order, k, dim=1)
    scores = torch.gather((heat * peaks).reshape(batch, -1), 1, index)
    cx, cy = cell_centers(height, width, stride, center.device)
    px = cx[index]
    py = cy[index]
    dist = maps["distances"].reshape(batch, 4, -1)
    dist = torch.gather(dist, 2, index.unsqueeze(1).expand(batch, 4, k)).permute(0, 2, 1)
    boxes = distances_to_boxes(dist, px, py, stride)
    logits = maps["classes"].reshape(batch, maps["classes"].shape[1], -1)
    logits = torch.gather(logits, 2, index.unsqueeze(1).expand(batch, logits.shape[1], k)).permute(0, 2, 1)
    class_probs = torch.softmax(logits, dim=-1)
    sold = torch.sigmoid(torch.gather(maps["sold"].reshape(batch, -1), 1, index))
    return boxes, scores, class_probs, sold


def build_detector(**config: object) -> GarmentDetector:
    """Factory named in spec.json (``training.models.detector:build_detector``).

    Args:
        **config: Fields of ``DetectorConfig`` (lists are accepted for ``widths``).
    """
    values = dict(config)
    for key in ("widths", "blocks"):
        if key in values:
            values[key] = tuple(int(v) for v in values[key])  # type: ignore[attr-defined]
    return GarmentDetector(DetectorConfig(**values))  # type: ignore[arg-type]


def config_dict(config: DetectorConfig) -> dict[str, object]:
    """``DetectorConfig`` as JSON-friendly values."""
    out = asdict(config)
    out["widths"] = list(config.widths)
    out["blocks"] = list(config.blocks)
    return out
