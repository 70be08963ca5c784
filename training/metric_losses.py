"""Metric-learning losses for the embedder: ArcFace with a staged margin, plus batch-hard triplet.

ArcFace converges badly when it starts at its full angular margin, so the margin is raised in stages
(by default 0.1 -> 0.3 -> 0.5 -> 0.7); once the classifier has converged, a batch-hard triplet loss on
the pre-BNNeck feature is added, which works on the P x K batches directly (hardest positive and
hardest negative of each anchor) and tightens the neighbourhoods that retrieval depends on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_MARGINS = (0.1, 0.3, 0.5, 0.7)


@dataclass(frozen=True)
class LossSchedule:
    """Which margin and which losses are active in each epoch.

    Attributes:
        margin_starts: ``(first_epoch, margin)`` pairs sorted by epoch; the first starts at epoch 0.
        triplet_from: first epoch with the triplet loss added (``None``: never).
        triplet_weight: weight of the triplet term once active.
    """

    margin_starts: tuple[tuple[int, float], ...]
    triplet_from: int | None
    triplet_weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.margin_starts or self.margin_starts[0][0] != 0:
            raise ValueError("margin_starts must begin with a stage at epoch 0")
        epochs = [e for e, _ in self.margin_starts]
        if epochs != sorted(epochs) or len(set(epochs)) != len(epochs):
            raise ValueError(f"margin stage epochs must be strictly increasing, got {epochs}")
        if any(not 0.0 <= m < math.pi / 2 for _, m in self.margin_starts):
            raise ValueError("ArcFace margins must lie in [0, pi/2)")

    @classmethod
    def staged(
        cls,
        epochs: int,
        margins: Sequence[float] = DEFAULT_MARGINS,
        ramp_fraction: float = 0.5,
        triplet_fraction: float = 0.6,
        triplet_weight: float = 1.0,
    ) -> LossSchedule:
        """Spread ``margins`` evenly over the first ``ramp_fraction`` of ``epochs``.

        The triplet loss joins at ``triplet_fraction`` of the run (after the last margin stage has
        had time to converge). Stages that would collide in a short run are merged (the later wins).

        Args:
            epochs: total epochs of the run (>= 1).
            margins: margins in the order they are used.
            ramp_fraction: fraction of the run over which the margin stages start.
            triplet_fraction: fraction of the run after which the triplet term is added.
            triplet_weight: weight of the triplet term.
        """
        if epochs < 1:
            raise ValueError("epochs must be >= 1")
        if not margins:
            raise ValueError("at least one margin is needed")
        n = len(margins)
        starts: dict[int, float] = {}
        for i, margin in enumerate(margins):
            start = 0 if i == 0 else max(1, round(i * ramp_fraction * epochs / n))
            starts[min(start, epochs - 1)] = float(margin)
        pairs = tuple(sorted(starts.items()))
        triplet_from = min(epochs - 1, max(pairs[-1][0], round(triplet_fraction * epochs)))
        return cls(margin_starts=pairs, triplet_from=triplet_from, triplet_weight=triplet_weight)

    def margin_at(self, epoch: int) -> float:
        """ArcFace margin of ``epoch`` (0-based)."""
        margin = self.margin_starts[0][1]
        for start, value in self.margin_starts:
            if epoch >= start:
                margin = value
        return margin

    def triplet_weight_at(self, epoch: int) -> float:
        """Weight of the triplet term in ``epoch`` (0 before it joins)."""
        if self.triplet_from is None or epoch < self.triplet_from:
            return 0.0
        return self.triplet_weight

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (for checkpoints and spec.json)."""
        return {
            "margin_starts": [[e, m] for e, m in self.margin_starts],
            "triplet_from": self.triplet_from,
            "triplet_weight": self.triplet_weight,
        }


class ArcFaceHead(nn.Module):
    """Additive angular margin classifier over unit-norm features and unit-norm class centres.

    ``logits = s * cos(theta_j)`` for the other classes and ``s * cos(theta_y + m)`` for the true
    class. Past ``theta + m > pi`` the function is no longer monotonic, so there it falls back to
    ``cos(theta) - m * sin(m)`` (the usual linear extension).
    """

    def __init__(self, in_dim: int, num_classes: int, scale: float = 30.0, margin: float = 0.1) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError("ArcFace needs at least 2 classes")
        self.weight = nn.Parameter(torch.empty(num_classes, in_dim))
        nn.init.xavier_uniform_(self.weight)
        self.scale = float(scale)
        self.margin = float(margin)

    def set_margin(self, margin: float) -> None:
        """Change the angular margin (radians); used between schedule stages."""
        if not 0.0 <= margin < math.pi / 2:
            raise ValueError(f"margin must lie in [0, pi/2), got {margin}")
        self.margin = float(margin)

    def cosine(self, features: torch.Tensor) -> torch.Tensor:
        """Cosine similarity to every class centre: [B, D] -> [B, C]."""
        return F.linear(F.normalize(features, dim=1), F.normalize(self.weight, dim=1))

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Margin-adjusted, scaled logits.

        Args:
            features: [B, D] float (any norm).
            labels: [B] int64 class indices.

        Returns:
            [B, C] logits for ``F.cross_entropy``.
        """
        return self.logits_and_cosine(features, labels)[0]

    def logits_and_cosine(self, features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits [B, C], cosine [B, C])``: the margin logits and the plain cosines (for accuracy).

        Computed in float32 even under autocast (fp16 would round ``1 - 1e-7`` to 1 and the square
        root's gradient would become infinite).
        """
        with torch.autocast(device_type=features.device.type, enabled=False):
            return self._logits(features.float(), labels)

    def _logits(self, features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cos = self.cosine(features).clamp(-1.0 + 1e-7, 1.0 - 1e-7)
        m = self.margin
        sin = torch.sqrt(1.0 - cos * cos)
        with_margin = cos * math.cos(m) - sin * math.sin(m)
        fallback = cos - math.sin(math.pi - m) * m
        with_margin = torch.where(cos > math.cos(math.pi - m), with_margin, fallback)
        one_hot = F.one_hot(labels, num_classes=cos.shape[1]).to(cos.dtype)
        return self.scale * (one_hot * with_margin + (1.0 - one_hot) * cos), cos.detach()


def batch_hard_triplet_loss(
    features: torch.Tensor, labels: torch.Tensor, margin: float = 0.3
) -> tuple[torch.Tensor, float]:
    """Batch-hard triplet loss on L2-normalised features.

    For each anchor, the farthest same-label sample and the nearest other-label sample in the batch
    give ``max(0, d(a, p) - d(a, n) + margin)`` with Euclidean distance between unit vectors.
    Anchors without a positive or without a negative in the batch are left out.

    Args:
        features: [B, D] float.
        labels: [B] int64.
        margin: triplet margin (distances lie in [0, 2]).

    Returns:
        ``(loss, active)``: the mean loss (scalar tensor) and the fraction of anchors with loss > 0.
    """
    emb = F.normalize(features.float(), dim=1)
    dist = torch.cdist(emb, emb).clamp(min=0.0)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos_mask = same & ~eye
    neg_mask = ~same
    valid = pos_mask.any(dim=1) & neg_mask.any(dim=1)
    if not bool(valid.any()):
        return features.sum() * 0.0, 0.0
    hardest_pos = torch.where(pos_mask, dist, torch.zeros_like(dist)).amax(dim=1)
    hardest_neg = torch.where(neg_mask, dist, torch.full_like(dist, 4.0)).amin(dim=1)
    per_anchor = F.relu(hardest_pos - hardest_neg + margin)[valid]
    return per_anchor.mean(), float((per_anchor > 0).float().mean())


class EmbedderWithHead(nn.Module):
    """The embedder and its ArcFace head as one module, so DDP synchronises both.

    ``forward(images, labels)`` returns ``(feat, neck, logits, cosine)``: the pre-BNNeck feature
    [B, D], the post-BNNeck feature [B, D], the ArcFace margin logits [B, C] and the plain cosine to
    each class centre [B, C] (detached). Export ``self.net``, not this.
    """

    def __init__(self, net: nn.Module, num_classes: int, scale: float = 30.0, margin: float = 0.1) -> None:
        super().__init__()
        self.net = net
        dim = int(getattr(net, "embedding_dim"))  # noqa: B009 - any module exposing embedding_dim
        self.head = ArcFaceHead(dim, num_classes, scale=scale, margin=margin)

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        feat, neck = self.net.forward_features(images)  # type: ignore[operator]
        logits, cosine = self.head.logits_and_cosine(neck, labels)
        return feat, neck, logits, cosine


class DistilledEmbedderWithHead(EmbedderWithHead):
    """:class:`EmbedderWithHead` that also returns the frozen ImageNet feature of each crop.

    ``forward(images, labels)`` returns ``(feat, neck, logits, cosine, teacher)`` where ``teacher``
    [B, C] is the pooled feature of the frozen pretrained backbone: the student's own pooled feature
    when the whole backbone is frozen, else that of ``teacher`` (a frozen copy of the initial network).
    """

    def __init__(self, net: nn.Module, num_classes: int, scale: float = 30.0, margin: float = 0.1,
                 teacher: nn.Module | None = None) -> None:
        super().__init__(net, num_classes, scale=scale, margin=margin)
        self.teacher = teacher
        if teacher is not None:
            teacher.requires_grad_(False)

    def train(self, mode: bool = True) -> DistilledEmbedderWithHead:
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def forward(  # type: ignore[override]
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        pooled, feat, neck = self.net.forward_all(images)  # type: ignore[operator]
        if self.teacher is None:
            teacher = pooled.detach()
        else:
            with torch.no_grad():
                teacher = self.teacher.forward_all(images)[0]  # type: ignore[operator]
        logits, cosine = self.head.logits_and_cosine(neck, labels)
        return feat, neck, logits, cosine, teacher


def relational_distillation_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the in-batch cosine-similarity matrices.

    Keeps the student's neighbourhoods those of the frozen ImageNet features (relational knowledge
    distillation), whatever the student's dimension: [B, D] and [B, C] -> scalar.
    """
    s = F.normalize(student.float(), dim=1)
    t = F.normalize(teacher.float(), dim=1)
    return ((s @ s.T - t @ t.T) ** 2).mean()


class EmbedderLoss:
    """``loss_fn(model, batch, device) -> (loss, parts)`` for ``training.engine.train_one_epoch``.

    ``batch`` is ``(images [B, 3, H, W] float32, labels [B] int64)``; ``model`` is an
    :class:`EmbedderWithHead` (possibly DDP-wrapped). ``triplet_weight`` is changed between epochs
    by the schedule.
    """

    def __init__(self, triplet_margin: float = 0.3, triplet_weight: float = 0.0, distill_weight: float = 0.0,
                 arcface_weight: float = 1.0) -> None:
        self.triplet_margin = triplet_margin
        self.triplet_weight = triplet_weight
        self.distill_weight = distill_weight
        self.arcface_weight = arcface_weight

    def __call__(
        self, model: nn.Module, batch: Any, device: torch.device
    ) -> tuple[torch.Tensor, Mapping[str, float]]:
        images, labels = batch
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        feat, neck, logits, cosine, *rest = model(images, labels)
        arcface = F.cross_entropy(logits.float(), labels)
        parts: dict[str, float] = {
            "arcface": float(arcface.detach()),
            "acc": float((cosine.argmax(dim=1) == labels).float().mean()),  # nearest class centre
        }
        loss = self.arcface_weight * arcface
        if self.distill_weight > 0.0:
            if not rest:
                raise ValueError("distillation needs a DistilledEmbedderWithHead (it returns the teacher feature)")
            distill = relational_distillation_loss(neck, rest[0])
            loss = loss + self.distill_weight * distill
            parts["distill"] = float(distill.detach())
        if self.triplet_weight > 0.0:
            triplet, active = batch_hard_triplet_loss(feat, labels, self.triplet_margin)
            loss = loss + self.triplet_weight * triplet
            parts["triplet"] = float(triplet.detach())
            parts["triplet_active"] = active
        return loss, parts
