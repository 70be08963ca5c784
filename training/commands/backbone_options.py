"""The pretrained-backbone options that ``livetag train detector`` and ``train embedder`` share."""

from __future__ import annotations

from typing import Any

BACKBONE_HELP = "scratch, or an ImageNet backbone shipped in a wheel (efficientnet_lite0, efficientnet_lite2)"
TRAINABLE_BLOCKS_HELP = "pretrained backbone: blocks trained at its end"
BACKBONE_LR_SCALE_HELP = "learning rate of the trainable backbone blocks relative to --lr"


def backbone_checks(backbone: str, trainable_blocks: int, backbone_lr_scale: float) -> list[tuple[bool, str]]:
    """``(ok, message)`` pairs for the settings' validation."""
    from training.models.pretrained import BACKBONES

    return [
        (backbone == "scratch" or backbone in BACKBONES,
         f"--backbone must be scratch or one of {', '.join(sorted(BACKBONES))}"),
        (trainable_blocks >= 0, "--trainable-blocks must be >= 0"),
        (0.0 <= backbone_lr_scale <= 1.0, "--backbone-lr-scale must lie in [0, 1]"),
    ]


def parameter_groups(model: Any, backbone_prefix: str | None, lr: float,
                     backbone_lr_scale: float) -> list[dict[str, Any]]:
    """The optimizer's groups: trainable pretrained-backbone parameters (names starting with
    ``backbone_prefix``) at ``lr * backbone_lr_scale``, the rest at ``lr``; one group when there is
    no pretrained backbone (``None``) or it has nothing to train."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    backbone = [p for n, p in named if backbone_prefix is not None and n.startswith(backbone_prefix)]
    rest = [p for n, p in named if backbone_prefix is None or not n.startswith(backbone_prefix)]
    if not backbone:
        return [{"params": rest}]
    return [{"params": rest}, {"params": backbone, "lr": lr * backbone_lr_scale}]
