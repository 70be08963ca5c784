"""``livetag train embedder``: train the product embedder, evaluate retrieval, export the package.

Recipe: crops of shop images and sold-item video boxes from ``DATA/train`` (cached once under
``DATA/cache/``), P x K batches, ArcFace with the margin raised in stages, batch-hard triplet added
once the classifier has converged, AdamW with warm-up and cosine decay. Every ``--eval-every`` epochs
(and at the end) frame crops of the held-out products in ``DATA/test`` are matched against all test
shop images (Recall@1/5/10, mAP). Runs on one process or under ``torchrun`` (DDP); AMP on CUDA.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from stream.errors import LiveTagError
from training.commands.backbone_options import (
    BACKBONE_HELP,
    BACKBONE_LR_SCALE_HELP,
    TRAINABLE_BLOCKS_HELP,
    backbone_checks,
    parameter_groups,
)
from training.commands.recipe import add_recipe_arguments, option, recipe_from_args, required, warmup_cosine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbedderTrainSettings:
    """Validated settings of one training run; each field is also a command-line option."""

    data: Path = required("data set root (Tianchi layout)")
    out: Path = required("run folder: checkpoints, curves, metrics")
    epochs: int = option(16, "passes over the training crops (0 with --no-projection: export the backbone)")
    batch_p: int = option(16, "products per batch")
    batch_k: int = option(4, "crops per product in a batch")
    lr: float = option(2e-3, "peak AdamW learning rate")
    weight_decay: float = option(5e-4, "AdamW weight decay")
    warmup_epochs: float = option(1.0, "epochs of linear learning-rate warm-up")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    resume: Path | None = option(None, "checkpoint to continue from")
    export: Path | None = option(None, "write the model package here at the end")
    seed: int = option(0, "seed of every random source")
    frames_per_instance: int = option(16, "training frame crops per (video, sold item)")
    eval_frames_per_instance: int = option(8, "query frame crops per (test video, sold item)")
    margins: tuple[float, ...] = option((0.1, 0.3, 0.5, 0.7), "ArcFace margins of the stages")
    arcface_scale: float = option(30.0, "ArcFace logit scale")
    triplet_weight: float = option(1.0, "weight of the batch-hard triplet loss once it joins (0: never)")
    eval_every: int = option(4, "evaluate retrieval every N epochs")
    stop_after: int | None = option(None, "stop after this many epochs of this invocation (continue with --resume)")
    amp: bool = option(True, "mixed precision on CUDA")
    progress: bool = option(True, "progress bars")
    backbone: str = option("scratch", BACKBONE_HELP)
    input_size: int = option(128, "side of the square crop input")
    pool: str = option("gem", "global pooling: gem, avg or center (Gaussian-weighted toward the crop's middle)")
    trainable_blocks: int = option(0, TRAINABLE_BLOCKS_HELP + " (0: frozen, only the head learns)")
    backbone_lr_scale: float = option(0.1, BACKBONE_LR_SCALE_HELP)
    distill_weight: float = option(0.0, "weight of the relational distillation toward the frozen ImageNet features")
    arcface_weight: float = option(1.0, "weight of the ArcFace term (the triplet joins on its own schedule)")
    projection: bool = option(True, "a trained head (without: the pooled ImageNet feature is the embedding; "
                                    "needs --epochs 0)")

    def __post_init__(self) -> None:
        from training.models.embedder import POOLS

        checks = [
            (self.input_size >= 64 and self.input_size % 32 == 0, "--input-size must be a multiple of 32, >= 64"),
            (self.pool in POOLS, f"--pool must be one of {', '.join(POOLS)}"),
            (self.distill_weight >= 0.0 and math.isfinite(self.distill_weight), "--distill-weight must be >= 0"),
            (self.distill_weight == 0.0 or self.backbone != "scratch",
             "--distill-weight needs a pretrained --backbone (it distils its ImageNet features)"),
            (self.arcface_weight >= 0.0, "--arcface-weight must be >= 0"),
            (self.epochs >= 1 or not self.projection, "--epochs must be >= 1"),
            (self.projection or (self.epochs == 0 and self.backbone != "scratch"),
             "--no-projection exports the pretrained backbone as it is: it needs --epochs 0 and a --backbone"),
            (self.batch_p >= 2, "--batch-p must be >= 2 (the triplet loss needs negatives)"),
            (self.batch_k >= 2, "--batch-k must be >= 2 (the triplet loss needs positives)"),
            (self.lr > 0 and math.isfinite(self.lr), "--lr must be a positive number"),
            (self.frames_per_instance >= 1, "--frames-per-instance must be >= 1"),
            (self.eval_every >= 1, "--eval-every must be >= 1"),
            (self.stop_after is None or self.stop_after >= 1, "--stop-after must be >= 1"),
            (all(0.0 <= m < math.pi / 2 for m in self.margins), "--margins must lie in [0, 1.57)"),
        ]
        checks += backbone_checks(self.backbone, self.trainable_blocks, self.backbone_lr_scale)
        for ok, message in checks:
            if not ok:
                raise LiveTagError(message)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (paths as strings), stored in checkpoints."""
        return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
                for k, v in asdict(self).items()}


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments (one per field of :class:`EmbedderTrainSettings`)."""
    add_recipe_arguments(parser, EmbedderTrainSettings)


def settings_from_args(args: argparse.Namespace) -> EmbedderTrainSettings:
    """Validate the parsed arguments once."""
    if not Path(args.data).is_dir():
        raise LiveTagError(f"--data {args.data} is not a folder; generate one with 'livetag data synth'")
    return recipe_from_args(EmbedderTrainSettings, args)


def run(args: argparse.Namespace, _serving: object = None) -> int:
    """Entry point: train (and export when ``--export`` is given); returns the exit code."""
    from training.engine import cleanup_distributed, init_distributed

    settings = settings_from_args(args)
    info = init_distributed()
    try:
        started = time.monotonic()
        summary = train_embedder(settings, info)
        if info.is_main:
            print(json.dumps({"seconds": round(time.monotonic() - started, 1), **summary}, indent=2))
    finally:
        cleanup_distributed()
    return 0


def evaluate(net: Any, test: Any, device: Any) -> Any:
    """Frame crops (queries) against shop crops (gallery) of the test split, matched by product.

    Args:
        net: the :class:`~training.models.embedder.EmbedderNet`.
        test: the test :class:`~training.embedding_data.CropSet` cut as the runtime cuts them.
        device: where ``net`` lives.

    Returns:
        The :class:`~training.retrieval_metrics.RetrievalResult`.
    """
    from training.embedding_data import SOURCE_FRAME, SOURCE_SHOP
    from training.models.embedder import embed_crops
    from training.retrieval_metrics import evaluate_retrieval

    queries = test.subset(test.sources == SOURCE_FRAME)
    gallery = test.subset(test.sources == SOURCE_SHOP)
    q = embed_crops(net, queries.images, device)
    g = embed_crops(net, gallery.images, device)
    return evaluate_retrieval(q @ g.T, test.item_ids[queries.labels], test.item_ids[gallery.labels])


def _saved_history(path: Path) -> list[dict[str, float]]:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    return list((state.get("metrics") or {}).get("history") or [])


def embedder_config(settings: EmbedderTrainSettings) -> Any:
    """The network shape the settings ask for."""
    from training.models.embedder import EmbedderConfig

    return EmbedderConfig(backbone=settings.backbone, input_size=settings.input_size, pool=settings.pool,
                          trainable_blocks=settings.trainable_blocks, projection=settings.projection)


def train_embedder(settings: EmbedderTrainSettings, info: Any) -> dict[str, Any]:
    """Train, evaluate and (on rank 0, with ``settings.export``) export; returns the final metrics."""
    import numpy as np
    import torch

    from training import engine
    from training.embedding_batches import AugmentedBatches, CropAugmenter, PKBatchSampler
    from training.embedding_data import load_or_build_crops
    from training.metric_losses import DistilledEmbedderWithHead, EmbedderLoss, LossSchedule
    from training.models.embedder import EmbedderNet
    from training.plots import plot_curves
    from training.retrieval_metrics import plot_cmc

    engine.seed_everything(settings.seed)
    device = engine.resolve_device(settings.device, info)
    settings.out.mkdir(parents=True, exist_ok=True)
    fpi = settings.frames_per_instance
    if info.is_main:  # rank 0 decodes and caches; the others read the cache after the barrier
        train = load_or_build_crops(settings.data, "train", train=True, frames_per_instance=fpi,
                                    progress=settings.progress, input_size=settings.input_size)
        test = load_or_build_crops(settings.data, "test", train=False, input_size=settings.input_size,
                                   frames_per_instance=settings.eval_frames_per_instance, progress=settings.progress)
    if info.distributed:
        torch.distributed.barrier()
    if not info.is_main:
        train = load_or_build_crops(settings.data, "train", train=True, frames_per_instance=fpi, progress=False,
                                    input_size=settings.input_size)
        test = load_or_build_crops(settings.data, "test", train=False, input_size=settings.input_size,
                                   frames_per_instance=settings.eval_frames_per_instance, progress=False)
    log.info("train crops %d (%d products), test crops %d (%d products)", len(train), len(train.item_ids),
             len(test), len(test.item_ids))

    net = EmbedderNet(embedder_config(settings))
    net.load_pretrained()
    teacher = None
    if settings.distill_weight > 0 and settings.backbone != "scratch" and settings.trainable_blocks > 0:
        teacher = EmbedderNet(net.config)
        teacher.load_pretrained()
    model = DistilledEmbedderWithHead(net, num_classes=len(train.item_ids), scale=settings.arcface_scale,
                                      teacher=teacher).to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    schedule = LossSchedule.staged(max(1, settings.epochs), settings.margins, triplet_weight=settings.triplet_weight)
    sampler = PKBatchSampler(train.labels, settings.batch_p, settings.batch_k, seed=settings.seed,
                             rank=info.rank, world_size=info.world_size)
    augmenter = CropAugmenter(seed=settings.seed, out_size=settings.input_size)
    batches = AugmentedBatches(train.images, train.inner_boxes, train.labels, sampler, augmenter)
    backbone_prefix = None if settings.backbone == "scratch" else "net.backbone."
    optimizer = torch.optim.AdamW(parameter_groups(model, backbone_prefix, settings.lr, settings.backbone_lr_scale),
                                  lr=settings.lr,
                                  weight_decay=settings.weight_decay)
    steps = len(sampler) * settings.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(steps, max(1, round(settings.warmup_epochs * len(sampler))), floor=0.02))
    config = {"settings": settings.to_dict(), "model": net.config.to_dict(), "num_classes": len(train.item_ids),
              "schedule": schedule.to_dict()}
    start_epoch, history = 0, []
    if settings.resume is not None:
        start_epoch, _ = engine.load_checkpoint(settings.resume, model=model, optimizer=optimizer,
                                                scheduler=scheduler)
        history = [row for row in _saved_history(settings.resume) if row.get("epoch", 0) < start_epoch]
        log.info("resumed from %s at epoch %d", settings.resume, start_epoch)
    ddp_model = engine.wrap_ddp(model, info)
    loss_fn = EmbedderLoss(distill_weight=settings.distill_weight, arcface_weight=settings.arcface_weight)
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" and settings.amp else None
    result = None
    end_epoch = settings.epochs if settings.stop_after is None else min(settings.epochs,
                                                                        start_epoch + settings.stop_after)
    for epoch in range(start_epoch, end_epoch):
        model.head.set_margin(schedule.margin_at(epoch))
        loss_fn.triplet_weight = schedule.triplet_weight_at(epoch)
        sampler.set_epoch(epoch)
        augmenter.generator.manual_seed(settings.seed * 1_000_003 + epoch * 7919 + info.rank)
        started = time.monotonic()
        parts = engine.train_one_epoch(ddp_model, loss_fn, optimizer, batches, device, epoch, scaler=scaler,
                                       scheduler=scheduler, grad_clip=5.0, progress=settings.progress)
        row: dict[str, float] = {"epoch": float(epoch), **{f"train/{k}": v for k, v in parts.items()},
                                 "margin": model.head.margin, "seconds": round(time.monotonic() - started, 2)}
        last = epoch == settings.epochs - 1
        if info.is_main and (last or (epoch + 1) % settings.eval_every == 0):
            result = evaluate(net, test, device)
            row.update({f"test/{k}": float(v) for k, v in result.to_dict().items() if k.startswith(("recall", "mAP"))})
        history.append(row)
        if info.is_main:
            log.info("epoch %d: %s", epoch, ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"))
            engine.save_checkpoint(settings.out / "last.pt", model=model, optimizer=optimizer, scheduler=scheduler,
                                   epoch=epoch, config=config, metrics={"history": history})
            plot_curves(history, settings.out / "curves.png", "embedder training")
    if not info.is_main:
        return {}
    if end_epoch < settings.epochs:
        log.info("stopped after epoch %d of %d; continue with --resume %s", end_epoch - 1, settings.epochs,
                 settings.out / "last.pt")
        return {"stopped_after_epoch": end_epoch - 1}
    if result is None:  # resumed after the last epoch: evaluate what was loaded
        result = evaluate(net, test, device)
    metrics = {**result.to_dict(), "query": "test-split frame crops of the sold item (instance_id > 0)",
               "gallery": "all test-split shop images (products unseen in training)",
               "train_crops": len(train), "train_products": len(train.item_ids),
               "epochs": settings.epochs, "train_seconds": round(sum(r.get("seconds", 0.0) for r in history), 1)}
    plot_cmc(result, settings.out / "cmc.png", "frame crop -> shop image, held-out products")
    (settings.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    if settings.export is not None:
        sample = np.ascontiguousarray(test.images[:8])
        export_embedder(net, settings.export, metrics, settings, sample)
        copy_figures(settings.out, settings.export)
    return metrics


def export_embedder(net: Any, package_dir: Path, metrics: dict[str, Any], settings: EmbedderTrainSettings,
                    sample_crops: Any) -> None:
    """Write the package (model.onnx, weights.pt, spec.json) and check ONNX-vs-torch parity on real crops."""
    import datetime

    import torch

    from training.embedding_data import data_fingerprint
    from training.export import ExportError, check_parity, export_package, remove_package
    from training.models.embedder import NORM_MEAN, NORM_STD, to_network_input
    from training.models.pretrained import provenance

    net = net.to("cpu").to(memory_format=torch.contiguous_format).eval()
    spec = {
        "name": "livetag-embedder",
        "version": datetime.date.today().strftime("%Y.%m.%d") + "-{onnx_sha8}",
        "architecture": architecture_text(net.config),
        "input": {"resize": "stretch", "box_expand": 0.1, "color": "RGB"},
        "normalization": {"scale": 1.0 / 255.0, "mean": list(NORM_MEAN), "std": list(NORM_STD)},
        "embedding_dim": net.embedding_dim,
        "training_data": {"fingerprint": data_fingerprint(settings.data), "generator": "livetag data synth",
                          "seed": settings.seed},
        "metrics": metrics,
        "torch": {"factory": "training.models.embedder:build_embedder", "config": net.config.to_dict()},
    }
    if net.config.backbone != "scratch":
        spec["initial_weights"] = provenance(net.config.backbone)
    export_package(net, package_dir, role="embedder", example_input=torch.zeros(2, 3, settings.input_size, settings.input_size),
                   output_names=["embeddings"], spec=spec)
    try:
        worst = check_parity(net, package_dir, to_network_input(sample_crops).numpy(), atol=1e-4)
    except ExportError:
        remove_package(package_dir)  # never leave an unfaithful package where a runtime would load it
        raise
    log.info("exported %s (ONNX vs torch max |diff| %.2e)", package_dir, worst)


def architecture_text(config: Any) -> str:
    """One line for spec.json: backbone, pooling, head."""
    if config.backbone == "scratch":
        body = "ResNet-style CNN from scratch"
    else:
        body = f"ImageNet {config.backbone} (last {config.trainable_blocks} blocks fine-tuned, rest frozen)" \
            if config.trainable_blocks else f"ImageNet {config.backbone} (frozen)"
    if not config.projection:
        return f"{body}, {config.pool} pooling, the pooled feature L2-normalised (no trained head)"
    return f"{body}, {config.pool} pooling, BNNeck, {config.embedding_dim}-d L2-normalised output"


def copy_figures(run_dir: Path, package_dir: Path) -> None:
    """Copy the curves and CMC PNGs of a run next to the exported package."""
    for name in ("curves.png", "cmc.png"):
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, package_dir / name)
