"""``livetag train detector``: train the garment detector, evaluate it on held-out products, export it.

Recipe: annotated stream frames (every ``--frame-step``-th) and shop images of ``DATA/train``,
letterboxed once into a cache under ``DATA/cache/``; zoom/shift/flip/colour augmentation; AdamW with
linear warm-up and cosine decay per step; CenterNet-style losses (training/detection_losses.py).
After every ``--eval-every`` epochs and at the end, the stream frames of ``DATA/test`` (products never
seen in training) are scored: mAP@0.5 of all garments and of the sold item, sold-item
precision/recall. Runs in one process or under ``torchrun`` (DDP); AMP on CUDA. ``RUN_DIR`` receives
``last.pt`` (model, optimizer, scheduler, epoch, config, history), ``history.json``, ``metrics.json``
and ``curves.png``; ``--export DIR`` writes the model package.
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
class DetectorTrainSettings:
    """Validated settings of one training run; each field is also a command-line option."""

    data: Path = required("data set root (Tianchi layout)")
    out: Path = required("run folder: checkpoints, curves, metrics")
    epochs: int = option(10, "passes over the training frames")
    batch_size: int = option(32, "images per step, per process")
    lr: float = option(3e-3, "peak AdamW learning rate")
    weight_decay: float = option(1e-4, "AdamW weight decay")
    warmup_steps: int = option(100, "steps of linear learning-rate warm-up")
    input_size: int = option(256, "square letterbox input side")
    train_size: int = option(192, "side of the random training window cut from the zoomed letterbox canvas")
    workers: int = option(1, "data loader processes")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    resume: Path | None = option(None, "checkpoint to continue from (RUN_DIR/last.pt)")
    export: Path | None = option(None, "write the model package here (models/detector)")
    seed: int = option(0, "seed of every random source")
    frame_step: int = option(5, "use every N-th annotated frame")
    max_frames_per_video: int = option(0, "annotated frames used per video (0: no cap)")
    max_shop_images: int = option(2000, "shop images used (0: all)")
    eval_every: int = option(2, "epochs between evaluations")
    val_frames: int = option(300, "held-out frames scored between epochs (the final evaluation uses all)")
    threads: int = option(0, "torch CPU threads (0: torch's default)")
    width: float = option(1.0, "channel multiplier of the network")
    amp: bool = option(True, "mixed precision on CUDA")
    progress: bool = option(True, "progress bars")
    backbone: str = option("scratch", BACKBONE_HELP)
    trainable_blocks: int = option(0, TRAINABLE_BLOCKS_HELP + " (0: frozen, only FPN and heads learn)")
    backbone_lr_scale: float = option(0.1, BACKBONE_LR_SCALE_HELP)
    camera_effects: bool = option(True, "photographic degradations in training (shading, noise, blur, JPEG)")
    zoom_min: float = option(0.6, "smallest training zoom (below 1: the frame shrinks in the window, garments look "
                                  "farther away, as in a full-body shot; the largest is 1.3)")
    rand_conv: float = option(0.0, "probability of a random-convolution augmentation per sample (random colours and "
                                   "textures, same shapes: training/random_convolution.py); 0 off")

    def __post_init__(self) -> None:

        checks = [
            (self.epochs >= 1, "--epochs must be >= 1"),
            (self.batch_size >= 2, "--batch-size must be >= 2 (batch norm needs more than one sample)"),
            (self.lr > 0 and math.isfinite(self.lr), "--lr must be a positive number"),
            (self.input_size >= 64 and self.input_size % 32 == 0, "--input-size must be a multiple of 32, >= 64"),
            (self.train_size % 32 == 0 and 64 <= self.train_size <= self.input_size,
             "--train-size must be a multiple of 32 between 64 and --input-size"),
            (self.workers >= 0, "--workers must be >= 0"),
            (self.frame_step >= 1, "--frame-step must be >= 1"),
            (self.eval_every >= 1, "--eval-every must be >= 1"),
            (self.val_frames >= 0, "--val-frames must be >= 0 (0 = all)"),
            (self.threads >= 0, "--threads must be >= 0 (0 = torch default)"),
            (0.25 <= self.width <= 4.0, "--width must lie in [0.25, 4]"),
            (0.1 <= self.zoom_min <= 1.3, "--zoom-min must lie in [0.1, 1.3]"),
            (0.0 <= self.rand_conv <= 1.0, "--rand-conv must lie in [0, 1]"),
        ]
        checks += backbone_checks(self.backbone, self.trainable_blocks, self.backbone_lr_scale)
        for ok, message in checks:
            if not ok:
                raise LiveTagError(message)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (paths as strings), stored in checkpoints."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments (one per field of :class:`DetectorTrainSettings`)."""
    add_recipe_arguments(parser, DetectorTrainSettings)


def settings_from_args(args: argparse.Namespace) -> DetectorTrainSettings:
    """Validate the parsed arguments once."""
    return recipe_from_args(DetectorTrainSettings, args)


def run(args: argparse.Namespace, _serving: object = None) -> int:
    """Entry point of ``livetag train detector``."""
    settings = settings_from_args(args)
    metrics = train(settings)
    if metrics:  # only the main process of a distributed run reports
        print(json.dumps({k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in metrics.items()}))
    return 0


def scaled_config(width: float, backbone: str = "scratch", trainable_blocks: int = 0) -> Any:
    """``DetectorConfig`` with every channel count scaled by ``width`` (rounded to a multiple of 8)."""
    from training.models.detector import DetectorConfig

    base = DetectorConfig(backbone=backbone, trainable_blocks=trainable_blocks)
    if width == 1.0:
        return base

    def scale(c: int) -> int:
        return max(8, int(round(c * width / 8)) * 8)

    widths = tuple(scale(c) for c in base.widths)
    return DetectorConfig(widths=widths, blocks=base.blocks, neck_channels=scale(base.neck_channels),  # type: ignore[arg-type]
                          head_convs=base.head_convs, backbone=backbone, trainable_blocks=trainable_blocks)


def train(settings: DetectorTrainSettings) -> dict[str, Any]:
    """Train (or resume), evaluate and optionally export; returns the final metrics."""
    import numpy as np
    import torch
    import torch.distributed as dist
    from torch.utils.data import DataLoader

    from training.detection_data import CacheOptions, DetectionSamples, build_cache, load_cache
    from training.detection_losses import detector_loss_fn
    from training.detection_metrics import evaluate
    from training.engine import (
        cleanup_distributed,
        init_distributed,
        load_checkpoint,
        make_sampler,
        resolve_device,
        save_checkpoint,
        seed_everything,
        set_sampler_epoch,
        train_one_epoch,
        wrap_ddp,
    )
    from training.models.detector import GarmentDetector, config_dict
    from training.plots import plot_curves

    info = init_distributed()
    device = resolve_device(settings.device, info)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    seed_everything(settings.seed + info.rank)
    options = CacheOptions(settings.input_size, settings.frame_step, settings.max_frames_per_video,
                           settings.max_shop_images)
    show = settings.progress and info.is_main
    if info.is_main:
        train_path = build_cache(settings.data, "train", options, progress=show)
        test_path = build_cache(settings.data, "test", options, progress=show)
    if info.distributed:
        dist.barrier()
    if not info.is_main:
        train_path = build_cache(settings.data, "train", options, progress=False)
        test_path = build_cache(settings.data, "test", options, progress=False)
    train_cache, test_cache = load_cache(train_path), load_cache(test_path)
    test_frames = test_cache.subset(0)
    if test_frames.size == 0:
        raise LiveTagError(f"{settings.data}/test holds no annotated stream frames to evaluate on")
    rng = np.random.default_rng(settings.seed)
    val_idx = test_frames if not settings.val_frames or test_frames.size <= settings.val_frames else \
        np.sort(rng.choice(test_frames, settings.val_frames, replace=False))
    if info.is_main:
        log.info("train samples %d (cache %s), held-out frames %d", len(train_cache), train_path, test_frames.size)

    dataset = DetectionSamples(train_cache, augment_data=True, seed=settings.seed, train_size=settings.train_size,
                               camera=settings.camera_effects, zoom=(settings.zoom_min, 1.3),
                               rand_conv=settings.rand_conv)
    sampler = make_sampler(dataset, info, shuffle=True, seed=settings.seed)
    loader = DataLoader(dataset, batch_size=settings.batch_size, sampler=sampler, num_workers=settings.workers,
                        drop_last=True, persistent_workers=False, pin_memory=device.type == "cuda")
    if len(loader) == 0:
        raise LiveTagError(f"{len(dataset)} training samples is fewer than one batch of {settings.batch_size}")
    config = scaled_config(settings.width, settings.backbone, settings.trainable_blocks)
    net = GarmentDetector(config)
    net.load_pretrained()
    # channels-last convolutions run 2-3x faster on CPU (oneDNN) and suit CUDA tensor cores too.
    model = net.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    groups = parameter_groups(model, "trunk.", settings.lr, settings.backbone_lr_scale)
    optimizer = torch.optim.AdamW(groups, lr=settings.lr, weight_decay=settings.weight_decay)
    total_steps = settings.epochs * len(loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps, settings.warmup_steps, floor=0.05))
    scaler = torch.amp.GradScaler("cuda") if (settings.amp and device.type == "cuda") else None
    start_epoch, history = 0, []
    if settings.resume is not None:
        start_epoch, saved = load_checkpoint(settings.resume, model=model, optimizer=optimizer, scheduler=scheduler)
        history = list(saved.get("history", []))
        log.info("resumed from %s at epoch %d", settings.resume, start_epoch)
    ddp_model = wrap_ddp(model, info)
    settings.out.mkdir(parents=True, exist_ok=True)
    run_config = {**settings.to_dict(), "model": config_dict(config)}
    started = time.monotonic()
    for epoch in range(start_epoch, settings.epochs):
        set_sampler_epoch(sampler, epoch)
        dataset.set_epoch(epoch)
        parts = train_one_epoch(ddp_model, detector_loss_fn, optimizer, loader, device, epoch,
                                scaler=scaler, scheduler=scheduler, grad_clip=10.0, progress=show)
        row: dict[str, float] = {"epoch": float(epoch), **{f"train/{k}": v for k, v in parts.items()}}
        row["lr"] = optimizer.param_groups[0]["lr"]
        if info.is_main and ((epoch + 1) % settings.eval_every == 0 or epoch + 1 == settings.epochs):
            scores = evaluate(model, test_cache, device, indices=val_idx.tolist(), progress=show)
            row.update({f"val/{k}": v for k, v in scores.items() if k != "frames"})
        row["seconds"] = time.monotonic() - started
        history.append(row)
        if info.is_main:
            log.info("epoch %d: %s", epoch, ", ".join(f"{k}={v:.4f}" for k, v in row.items() if k != "epoch"))
            save_checkpoint(settings.out / "last.pt", model=model, optimizer=optimizer, scheduler=scheduler,
                            epoch=epoch, config={**run_config, "history": history}, metrics=row)
            plot_curves(history, settings.out / "curves.png", "LiveTag detector")
            (settings.out / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    final: dict[str, Any] = {}
    if info.is_main:
        final = _finish(settings, model, test_cache, test_frames, device, history, time.monotonic() - started)
    if info.distributed:
        dist.barrier()
    cleanup_distributed()
    return final


def _finish(settings: DetectorTrainSettings, model: Any, test_cache: Any, test_frames: Any, device: Any,
            history: list[dict[str, float]], seconds: float) -> dict[str, Any]:
    """Full held-out evaluation, metrics.json, and the export with its parity check."""
    from training.detection_metrics import evaluate

    scores = evaluate(model, test_cache, device, indices=test_frames.tolist(), progress=settings.progress)
    shop = test_cache.subset(1)
    if shop.size:
        shop_scores = evaluate(model, test_cache, device, indices=shop.tolist(), progress=settings.progress)
        scores.update({f"shop_{k}": v for k, v in shop_scores.items()})
    metrics: dict[str, Any] = {**scores, "train_seconds_this_run": round(seconds, 1), "epochs": len(history)}
    if settings.export is not None:
        metrics["parity_max_abs_diff"] = _export(settings, model, test_cache, test_frames, metrics)
    (settings.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def _export(settings: DetectorTrainSettings, model: Any, test_cache: Any, test_frames: Any,
            metrics: dict[str, Any]) -> float:
    import numpy as np
    import torch

    from stream.clock import SystemClock
    from training.categories import CATEGORIES
    from training.detection_data import (
        MEAN,
        PAD_VALUE,
        STD,
        data_fingerprint,
        generator_version,
        normalise_images,
    )
    from training.export import ExportError, check_parity, export_package, remove_package
    from training.models.detector import OUTPUT_NAMES, config_dict

    assert settings.export is not None
    module = model.to("cpu", memory_format=torch.contiguous_format).eval()
    config = module.config
    stamp = time.strftime("%Y.%m.%d", time.gmtime(SystemClock().now()))
    spec = {
        "name": "livetag-detector",
        "version": f"{stamp}-{{onnx_sha8}}",
        "architecture": ("centernet-style anchor-free detector, stride 8, FPN, in-graph 3x3 peak + top-K decode"
                         + ("" if config.backbone == "scratch" else f", ImageNet {config.backbone} backbone")),
        "input": {"resize": "letterbox", "pad_value": PAD_VALUE, "color": "RGB"},
        "normalization": {"scale": 1.0 / 255.0, "mean": list(MEAN), "std": list(STD)},
        "classes": list(CATEGORIES),
        "max_detections": min(config.max_detections, (settings.input_size // config.stride) ** 2),
        "training_data": {"fingerprint": data_fingerprint(settings.data), "generator": "livetag data synth",
                          "generator_version": generator_version(settings.data), "seed": settings.seed},
        "metrics": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()},
        "torch": {"factory": "training.models.detector:build_detector", "config": config_dict(config)},
    }
    if config.backbone != "scratch":
        from training.models.pretrained import provenance

        spec["initial_weights"] = provenance(config.backbone)
    size = settings.input_size
    export_package(module, settings.export, role="detector", example_input=torch.zeros(1, 3, size, size),
                   output_names=OUTPUT_NAMES, spec=spec)
    if (settings.out / "curves.png").is_file():
        shutil.copyfile(settings.out / "curves.png", settings.export / "curves.png")
    sample = np.asarray(test_cache.images[np.asarray(test_frames[:8])])
    try:
        diff = check_parity(module, settings.export, normalise_images(sample).numpy(), atol=1e-2)
    except ExportError:
        remove_package(settings.export)  # never leave an unfaithful package where a runtime would load it
        raise
    log.info("exported %s (ONNX vs torch max abs diff %.2e)", settings.export, diff)
    return diff
