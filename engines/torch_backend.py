"""torch backend: for GPUs without TensorRT (and a CPU reference).

The module is rebuilt from ``spec["torch"] = {"factory": "module:function", "config": {...}}`` and
``weights.pt`` is loaded with ``torch.load(weights_only=True)``. A model package is data, never code:
the factory must be one of the project's own architectures (:data:`ALLOWED_FACTORIES`; code may add
its own with :func:`allow_factory`), so a ``spec.json`` naming ``os:system`` is refused before any
import, and ``weights.pt`` must match the spec's ``weights_sha256``. On CUDA it can run in FP16 and replay
CUDA graphs captured once per static batch bucket (a batch is padded up to the next bucket). torch is
imported inside the constructor, so the inference path installs and runs without it.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from engines.base import BackendError
from engines.package import ModelPackage, ModelPackageError, sha256_file

DEFAULT_BUCKETS = (1, 2, 4, 8, 16, 32)
#: The architectures a package's ``torch.factory`` may name.
ALLOWED_FACTORIES: set[str] = {
    "training.models.detector:build_detector",
    "training.models.embedder:build_embedder",
    "training.models.fused_embedder:build_fused_embedder",
}


def allow_factory(factory: str) -> None:
    """Let packages name ``factory`` (``module:function``) too: for architectures defined in code
    that is not the project's (tests, extensions). Code calls this, a package never can."""
    ALLOWED_FACTORIES.add(factory)


def build_module(package: ModelPackage) -> Any:
    """Rebuild the package's ``torch.nn.Module`` on CPU in eval mode with its weights loaded; for a
    pixel-input package, wrapped in :class:`engines.pixel_input.PixelInput` (uint8 (B, H, W, 3) in).

    Raises:
        ModelPackageError: No ``torch`` factory in the spec, the factory cannot be imported, or
            ``weights.pt`` is missing or does not fit the module.
    """
    import torch

    where = package.path / "spec.json"
    part = package.spec.torch
    if part is None or ":" not in part.get("factory", ""):
        raise ModelPackageError(f'{where}: no "torch": {{"factory": "module:function"}} entry, so the torch backend cannot rebuild the model (use onnxruntime)')
    if not package.weights_path.is_file():
        raise ModelPackageError(f"{package.weights_path}: missing; the torch backend needs the exported weights (re-export the package)")
    if part["factory"] not in ALLOWED_FACTORIES:
        raise ModelPackageError(f"{where}: torch factory {part['factory'][:80]!r} is not one of the project's architectures "
                                f"({', '.join(sorted(ALLOWED_FACTORIES))}); a package cannot name code to run")
    expected = package.spec.raw.get("weights_sha256")
    if not isinstance(expected, str):
        raise ModelPackageError(f"{where}: no weights_sha256, so weights.pt cannot be verified (re-export the package)")
    if sha256_file(package.weights_path) != expected.lower():
        raise ModelPackageError(f"{where}: weights_sha256 does not match weights.pt (re-export the package)")
    module_name, _, func_name = part["factory"].partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise ModelPackageError(f"{where}: torch factory {part['factory']!r} cannot be imported ({exc}); install the train extra") from exc
    config = part.get("config") or {}
    module = factory(**config)
    state = torch.load(package.weights_path, map_location="cpu", weights_only=True)
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ModelPackageError(f"{package.weights_path}: weights do not fit the module built by {part['factory']} ({first})") from exc
    if package.spec.input.takes_pixels:  # the ONNX graph normalises its uint8 input: so does the module
        from engines.pixel_input import PixelInput

        module = PixelInput(module, package.spec.normalization)
    return module.eval()


class TorchBackend:
    """Runs the rebuilt module with torch.

    Args:
        package: The checked model package (with ``weights.pt`` and ``spec["torch"]``).
        device: ``cpu``, ``cuda`` or ``cuda:N``; ``auto`` picks CUDA when available.
        fp16: Half-precision weights and inputs (CUDA only); outputs come back as float32.
        cuda_graphs: Capture one CUDA graph per batch bucket at start and replay them (CUDA only).
        max_batch: Largest batch per call; with CUDA graphs it is the largest bucket.
        buckets: Static batch sizes captured as CUDA graphs; larger ones are dropped beyond ``max_batch``.
    """

    name = "torch"

    def __init__(
        self,
        package: ModelPackage,
        device: str = "auto",
        fp16: bool = False,
        cuda_graphs: bool = False,
        max_batch: int = 32,
        buckets: Sequence[int] = DEFAULT_BUCKETS,
    ) -> None:
        import torch

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        on_gpu = self.device.type == "cuda"
        if on_gpu and not torch.cuda.is_available():
            raise BackendError("torch backend: CUDA was requested but torch sees no GPU; use device='cpu'")
        if (fp16 or cuda_graphs) and not on_gpu:
            raise BackendError("torch backend: fp16 and cuda_graphs need device='cuda'")
        if max_batch < 1:
            raise BackendError(f"max_batch must be >= 1, got {max_batch}")
        self._torch = torch
        self.spec = package.spec
        self.dtype = torch.float16 if fp16 else torch.float32
        self.module = build_module(package).to(self.device, self.dtype)
        self._pixels = package.spec.input.takes_pixels
        # What goes to the device: uint8 pixels as they are (normalised there), or the float planes.
        self._input_dtype = torch.uint8 if self._pixels else self.dtype
        self._outputs = package.spec.output_names
        self.max_batch = int(max_batch)
        self.buckets: tuple[int, ...] = ()
        self._graphs: dict[int, tuple[Any, Any, list[Any]]] = {}
        self._lock = threading.Lock()  # captured graphs share static buffers: one replay at a time
        if cuda_graphs:
            chosen = sorted({b for b in buckets if 1 <= b <= max_batch} | {self.max_batch})
            self.buckets = tuple(chosen)
            for size in self.buckets:
                self._graphs[size] = self._capture(size)

    def _as_list(self, produced: Any) -> list[Any]:
        if isinstance(produced, dict):
            return [produced[name] for name in self._outputs]
        values = list(produced) if isinstance(produced, tuple | list) else [produced]
        if len(values) != len(self._outputs):
            raise BackendError(f"torch module returned {len(values)} outputs, the spec names {len(self._outputs)}")
        return values

    def _capture(self, size: int) -> tuple[Any, Any, list[Any]]:
        """Capture one CUDA graph for batch ``size``: (graph, static input, static outputs)."""
        torch = self._torch
        inp = self.spec.input
        static_in = torch.zeros((size, *inp.shape[1:]), device=self.device, dtype=self._input_dtype)
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.inference_mode(), torch.cuda.stream(side):
            for _ in range(3):  # warm-up outside capture (cuDNN autotuning, lazy allocations)
                self.module(static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph):
            static_out = self._as_list(self.module(static_in))
        return graph, static_in, static_out

    def forward(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run (B, 3, H, W) float32 or, for a pixel-input package, (B, H, W, 3) uint8; returns
        output name -> (B, ...) float32."""
        torch = self._torch
        n = batch.shape[0]
        if self._pixels and batch.dtype != np.uint8:
            raise BackendError(f"this package takes uint8 pixels (B, H, W, 3), got {batch.dtype} {batch.shape}")
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.uint8 if self._pixels else np.float32))
        with self._lock, torch.inference_mode():
            if self._graphs:
                size = next(b for b in self.buckets if b >= n)
                graph, static_in, static_out = self._graphs[size]
                static_in.zero_()
                static_in[:n].copy_(x.to(self.device, self._input_dtype, non_blocking=False))
                graph.replay()
                values = [t[:n] for t in static_out]
            else:
                values = self._as_list(self.module(x.to(self.device, self._input_dtype)))
            return {name: v.float().cpu().numpy() for name, v in zip(self._outputs, values, strict=True)}
