"""ONNX Runtime backend: the CPU default, and the CUDA execution provider where it is present."""

from __future__ import annotations

import numpy as np

from engines.base import BackendError
from engines.package import ModelPackage

DEVICES = ("auto", "cpu", "cuda")


class OnnxRuntimeBackend:
    """Runs ``model.onnx`` with ONNX Runtime.

    Args:
        package: The checked model package.
        device: ``cpu``; ``cuda`` (the CUDA provider must be available); or ``auto`` (CUDA when
            ONNX Runtime offers it, else CPU).
        intra_op_threads: Threads inside one operator; None lets ONNX Runtime choose.
        max_batch: Largest batch per call (a fixed batch in the spec wins).
        spin: Let idle intra-op threads busy-wait for the next operator (ONNX Runtime's default).
            Off here: in the pipeline a decode thread shares the cores, and spinning workers take
            its CPU time (benchmarks/pipeline_vs_engine.py).
    """

    name = "onnxruntime"

    def __init__(self, package: ModelPackage, device: str = "auto", intra_op_threads: int | None = None, max_batch: int = 32,
                 spin: bool = False) -> None:
        import onnxruntime as ort

        if device not in DEVICES:
            raise BackendError(f"onnxruntime device must be one of {DEVICES}, got {device!r}")
        if intra_op_threads is not None and intra_op_threads < 1:
            raise BackendError(f"intra_op_threads must be >= 1, got {intra_op_threads}")
        available = ort.get_available_providers()
        if device == "cuda" and "CUDAExecutionProvider" not in available:
            raise BackendError(f"onnxruntime has no CUDA provider here (available: {available}); install onnxruntime-gpu or use device='cpu'")
        use_cuda = device == "cuda" or (device == "auto" and "CUDAExecutionProvider" in available)
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if use_cuda else ["CPUExecutionProvider"]
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        if intra_op_threads is not None:
            options.intra_op_num_threads = intra_op_threads
            options.inter_op_num_threads = 1
        self.spec = package.spec
        self.session = ort.InferenceSession(str(package.onnx_path), options, providers=providers)
        self.providers = self.session.get_providers()
        self.device = "cuda" if "CUDAExecutionProvider" in self.providers else "cpu"
        fixed = package.spec.input.batch
        self.max_batch = fixed if fixed > 0 else int(max_batch)
        if self.max_batch < 1:
            raise BackendError(f"max_batch must be >= 1, got {max_batch}")
        self._fixed_batch = fixed if fixed > 0 else None
        self._input = package.spec.input.name
        self._input_dtype = np.uint8 if package.spec.input.takes_pixels else np.float32
        self._outputs = package.spec.output_names

    def forward(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run (B, 3, H, W) float32 or, for a pixel-input package, (B, H, W, 3) uint8; returns
        output name -> (B, ...) float32."""
        n = batch.shape[0]
        if self._input_dtype is np.uint8 and batch.dtype != np.uint8:
            raise BackendError(f"this package takes uint8 pixels (B, H, W, 3), got {batch.dtype} {batch.shape}")
        feed = np.ascontiguousarray(batch, dtype=self._input_dtype)
        if self._fixed_batch is not None and n < self._fixed_batch:
            pad = np.zeros((self._fixed_batch - n, *feed.shape[1:]), feed.dtype)
            feed = np.concatenate([feed, pad])
        values = self.session.run(self._outputs, {self._input: feed})
        return {name: np.asarray(v, dtype=np.float32)[:n] for name, v in zip(self._outputs, values, strict=True)}
