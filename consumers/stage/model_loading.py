"""Loading the model packages named by the ``models`` settings, with one-line errors."""

from __future__ import annotations

from pathlib import Path

from consumers.settings import ModelSettings, PipelineSettings
from consumers.settings.sections import SHIPPED_MODELS
from engines.base import Detector, Embedder

#: The shipped model packages.
DEFAULT_MODELS_DIR = SHIPPED_MODELS


def load_models(models: ModelSettings, score_threshold: float = PipelineSettings.detection_threshold,
                nms_iou: float = PipelineSettings.nms_iou) -> tuple[Detector, Embedder]:
    """Load ``(detector, embedder)``; a bad package raises ``ModelPackageError`` (one line).

    Args:
        models: Package folders, pinned digests, backend, ONNX Runtime threads and flip averaging;
            ``opencv_threads`` > 0 also sets OpenCV's thread count for the whole process.
        score_threshold: Detector objectness threshold (default: ``pipeline.detection_threshold``'s).
        nms_iou: Detector NMS IoU threshold (default: ``pipeline.nms_iou``'s).

    Returns:
        Objects following the ``engines`` Detector and Embedder protocols.
    """
    from engines import load_detector, load_embedder
    from engines.package import check_digest

    detector_dir, embedder_dir = Path(models.detector_dir), Path(models.embedder_dir)
    for folder, pinned in ((detector_dir, models.detector_digest), (embedder_dir, models.embedder_digest)):
        if pinned:
            check_digest(folder, pinned)
    if models.opencv_threads:
        import cv2

        cv2.setNumThreads(models.opencv_threads)
    opts = {"intra_op_threads": models.intra_op_threads} if models.backend == "onnxruntime" and models.intra_op_threads else {}
    detector = load_detector(detector_dir, backend=models.backend, score_threshold=score_threshold, iou_threshold=nms_iou,
                             **opts)
    embedder: Embedder = load_embedder(embedder_dir, backend=models.backend, **opts)
    if models.flip_tta:
        from engines.flip_average import FlipAveragedEmbedder

        embedder = FlipAveragedEmbedder(embedder)
    return detector, embedder
