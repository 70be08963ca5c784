"""Command-line options for the model packages, and loading them with one-line errors."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engines.loading import BACKENDS

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODELS_DIR = REPO_ROOT / "models"


@dataclass(frozen=True)
class ModelChoice:
    """Which model packages to load and with which backend."""

    detector_dir: Path
    embedder_dir: Path
    backend: str = "onnxruntime"
    flip_average: bool = False
    detector_digest: str | None = None
    embedder_digest: str | None = None


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``--detector``, ``--embedder`` and ``--backend`` (defaults: the shipped packages, CPU)."""
    group = parser.add_argument_group("models")
    group.add_argument("--detector", type=Path, default=DEFAULT_MODELS_DIR / "detector",
                       help="detector package folder (model.onnx + spec.json); default: the shipped one")
    group.add_argument("--embedder", type=Path, default=DEFAULT_MODELS_DIR / "embedder",
                       help="embedder package folder (model.onnx + spec.json); default: the shipped one")
    group.add_argument("--backend", choices=BACKENDS, default="onnxruntime",
                       help="inference runtime (default: onnxruntime on CPU)")
    group.add_argument("--detector-digest", default=None, metavar="SHA256",
                       help="refuse the detector package unless its digest (spec, ONNX, weights) is this one")
    group.add_argument("--embedder-digest", default=None, metavar="SHA256",
                       help="refuse the embedder package unless its digest (spec, ONNX, weights) is this one")
    group.add_argument("--flip-tta", action="store_true",
                       help="embed every crop and its mirror image and average them (2x embedder cost)")


def model_choice(args: argparse.Namespace) -> ModelChoice:
    """The validated model choice of parsed arguments."""
    return ModelChoice(Path(args.detector), Path(args.embedder), str(args.backend), bool(args.flip_tta),
                       getattr(args, "detector_digest", None), getattr(args, "embedder_digest", None))


def load_models(choice: ModelChoice, score_threshold: float = 0.3, nms_iou: float = 0.6) -> tuple[Any, Any]:
    """Load ``(detector, embedder)``; a bad package raises ``ModelPackageError`` (one line).

    Args:
        choice: Package folders and backend.
        score_threshold: Detector objectness threshold.
        nms_iou: Detector NMS IoU threshold.

    Returns:
        Objects following the ``engines`` Detector and Embedder protocols.
    """
    from engines import load_detector, load_embedder
    from engines.package import check_digest

    for folder, pinned in ((choice.detector_dir, choice.detector_digest), (choice.embedder_dir, choice.embedder_digest)):
        if pinned:
            check_digest(folder, pinned)
    detector = load_detector(
        choice.detector_dir, backend=choice.backend, score_threshold=score_threshold, iou_threshold=nms_iou
    )
    embedder: Any = load_embedder(choice.embedder_dir, backend=choice.backend)
    if choice.flip_average:
        from engines.flip_average import FlipAveragedEmbedder

        embedder = FlipAveragedEmbedder(embedder)
    return detector, embedder
