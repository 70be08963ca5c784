"""Engine factory: ``load_detector`` / ``load_embedder`` from a package folder on a chosen backend."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from engines.base import BackendError, DetectorEngine, EmbedderEngine, InferenceBackend
from engines.package import ModelPackage

BACKENDS = ("onnxruntime", "torch", "tensorrt")


def backends_available() -> list[str]:
    """Backends whose runtime is installed here, ``onnxruntime`` first.

    ``torch`` needs the torch package; ``tensorrt`` needs both tensorrt and torch (CUDA buffers).
    Modules are looked up, not imported, so this is cheap.
    """
    found = ["onnxruntime"]
    has_torch = importlib.util.find_spec("torch") is not None
    if has_torch:
        found.append("torch")
    if has_torch and importlib.util.find_spec("tensorrt") is not None:
        found.append("tensorrt")
    return found


def make_backend(package: ModelPackage, backend: str, **opts: Any) -> InferenceBackend:
    """Create the named backend for ``package``; ``opts`` go to its constructor.

    Raises:
        BackendError: Unknown or uninstalled backend, or options it does not take.
    """
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
    if backend not in backends_available():
        raise BackendError(f"backend {backend!r} is not installed here (available: {backends_available()})")
    try:
        if backend == "onnxruntime":
            from engines.onnxruntime_backend import OnnxRuntimeBackend

            return OnnxRuntimeBackend(package, **opts)
        if backend == "torch":
            from engines.torch_backend import TorchBackend

            return TorchBackend(package, **opts)
        from engines.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(package, **opts)
    except TypeError as exc:
        raise BackendError(f"backend {backend!r} does not take these options: {exc}") from exc


def load_detector(
    package_dir: str | Path,
    backend: str = "onnxruntime",
    score_threshold: float = 0.3,
    iou_threshold: float = 0.6,
    **opts: Any,
) -> DetectorEngine:
    """Load and check a detector package and wrap it for ``backend``.

    Args:
        package_dir: Folder with ``model.onnx`` and ``spec.json`` (role ``detector``).
        backend: ``onnxruntime``, ``torch`` or ``tensorrt``.
        score_threshold: Objectness below this is dropped.
        iou_threshold: Class-agnostic NMS threshold.
        **opts: Backend options (e.g. ``device``, ``intra_op_threads``, ``fp16``, ``max_batch``).

    Raises:
        ModelPackageError: The package fails its checks.
        BackendError: The backend is unknown, missing or rejects the options.
    """
    package = ModelPackage.load(package_dir, role="detector")
    return DetectorEngine(package.spec, make_backend(package, backend, **opts), score_threshold, iou_threshold)


def load_embedder(package_dir: str | Path, backend: str = "onnxruntime", **opts: Any) -> EmbedderEngine:
    """Load and check an embedder package and wrap it for ``backend`` (options as :func:`load_detector`)."""
    package = ModelPackage.load(package_dir, role="embedder")
    return EmbedderEngine(package.spec, make_backend(package, backend, **opts))
