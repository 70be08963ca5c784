"""TensorRT backend (TensorRT 10 API): engine build from ONNX, FP16/INT8, batch profile, disk cache.

Build: ``trt.Builder`` -> network from ``trt.OnnxParser`` (TensorRT 10 networks are explicit-batch)
-> builder config (workspace pool, FP16 flag, INT8 flag with an ``IInt8EntropyCalibrator2`` fed by
calibration batches) with one optimisation profile over the dynamic batch (min/opt/max) ->
``build_serialized_network``. The plan is cached on disk under a key of GPU name + compute capability,
TensorRT version, model sha256 and build settings (see engines.tensorrt_config).

Run: ``set_input_shape`` / ``set_tensor_address`` / ``execute_async_v3`` with torch CUDA tensors as the
device buffers, on a torch CUDA stream. tensorrt and torch are imported in the constructor only.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import BackendError
from engines.package import ModelPackage
from engines.tensorrt_config import (
    PRECISIONS,
    BatchProfile,
    EngineCacheKey,
    array_digest,
    batch_profile,
    calibration_batches,
    engine_cache_path,
)

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``~/.cache/livetag/tensorrt`` (resolved when called, never at import)."""
    return Path.home() / ".cache" / "livetag" / "tensorrt"


def make_entropy_calibrator(trt: Any, torch: Any, batches: list[np.ndarray], cache_file: Path, device: Any) -> Any:
    """An ``IInt8EntropyCalibrator2`` that feeds ``batches`` through one CUDA buffer.

    Args:
        trt: The imported tensorrt module.
        torch: The imported torch module.
        batches: Equal-size pre-processed inputs: (B, 3, H, W) float32 or (B, H, W, 3) uint8.
        cache_file: Calibration table, read when present and written after calibration.
        device: torch CUDA device.
    """

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._batches = batches
            self._next = 0
            self._buffer = torch.from_numpy(batches[0]).to(device).zero_()  # the inputs' shape and dtype

        def get_batch_size(self) -> int:
            return int(self._batches[0].shape[0])

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self._next >= len(self._batches):
                return None
            self._buffer.copy_(torch.from_numpy(self._batches[self._next]))
            torch.cuda.synchronize(device)
            self._next += 1
            return [int(self._buffer.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache: Any) -> None:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            cache_file.write_bytes(bytes(cache))

    return EntropyCalibrator()


def build_serialized_engine(
    trt: Any,
    package: ModelPackage,
    profile: BatchProfile,
    precision: str,
    workspace_bytes: int,
    calibrator: Any = None,
) -> bytes:
    """Build a TensorRT plan from the package's ONNX graph.

    Raises:
        BackendError: The ONNX parser or the builder failed.
    """
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(package.onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"{package.onnx_path}: TensorRT cannot parse the ONNX graph ({errors})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    inp = package.spec.input
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(inp.name, *profile.shapes(inp.shape[1:]))
    config.add_optimization_profile(opt_profile)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        if calibrator is None:
            raise BackendError("INT8 needs calibration data: pass calibration_data=(N, 3, H, W) pre-processed inputs")
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator
        config.set_calibration_profile(opt_profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BackendError(f"{package.onnx_path}: TensorRT failed to build a {precision} engine (see the TensorRT log above)")
    return bytes(plan)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class TensorRTBackend:
    """Runs a TensorRT engine built (or loaded from the cache) for this GPU.

    Args:
        package: The checked model package.
        precision: ``fp32``, ``fp16`` (default) or ``int8``.
        max_batch: Largest batch (profile max).
        opt_batch: Batch the kernels are tuned for (default: half of ``max_batch``).
        device: CUDA device index.
        cache_dir: Engine cache folder (default ``~/.cache/livetag/tensorrt``).
        workspace_gb: Builder workspace limit.
        calibration_data: Pre-processed inputs for INT8 calibration, as ``forward`` takes them.
        calibration_batch: Calibration batch size (default: the profile's opt).
    """

    name = "tensorrt"

    def __init__(
        self,
        package: ModelPackage,
        precision: str = "fp16",
        max_batch: int = 32,
        opt_batch: int | None = None,
        device: int = 0,
        cache_dir: str | Path | None = None,
        workspace_gb: float = 2.0,
        calibration_data: np.ndarray | None = None,
        calibration_batch: int | None = None,
    ) -> None:
        import tensorrt as trt
        import torch

        if precision not in PRECISIONS:
            raise BackendError(f"tensorrt precision must be one of {PRECISIONS}, got {precision!r}")
        if not torch.cuda.is_available():
            raise BackendError("the tensorrt backend needs a CUDA GPU visible to torch; use onnxruntime on CPU")
        self.spec = package.spec
        self.device = torch.device("cuda", device)
        self._torch = torch
        self._trt = trt
        self.profile = batch_profile(package.spec, max_batch, opt_batch)
        self.max_batch = self.profile.max
        capability = torch.cuda.get_device_capability(self.device)
        self.cache_key = EngineCacheKey(
            gpu_name=torch.cuda.get_device_name(self.device),
            compute_capability=(int(capability[0]), int(capability[1])),
            tensorrt_version=str(trt.__version__),
            model_sha256=package.spec.onnx_sha256,
            precision=precision,
            profile=self.profile,
            input_hw=(package.spec.input.height, package.spec.input.width),
            calibration_sha256=array_digest(calibration_data) if precision == "int8" else "",
        )
        self.cache_path = engine_cache_path(Path(cache_dir) if cache_dir is not None else default_cache_dir(), self.cache_key)
        self.built = False
        logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(logger)
        with torch.cuda.device(self.device):
            engine = self._load_cached()
            if engine is None:
                calibrator = None
                if precision == "int8" and calibration_data is not None:
                    batches = calibration_batches(calibration_data, calibration_batch or self.profile.opt)
                    table = self.cache_path.with_suffix(".calib")
                    calibrator = make_entropy_calibrator(trt, torch, batches, table, self.device)
                plan = build_serialized_engine(trt, package, self.profile, precision, int(workspace_gb * (1 << 30)), calibrator)
                _write_atomic(self.cache_path, plan)
                self.built = True
                engine = self._runtime.deserialize_cuda_engine(plan)
            self._engine = engine
            self._context = engine.create_execution_context()
            self._stream = torch.cuda.Stream(self.device)
        self._input = package.spec.input.name
        self._outputs = package.spec.output_names
        self._lock = threading.Lock()  # one execution context: one call at a time
        self._dtypes = {name: self._torch_dtype(engine.get_tensor_dtype(name)) for name in self._outputs}

    def _load_cached(self) -> Any:
        if not self.cache_path.is_file():
            return None
        engine = self._runtime.deserialize_cuda_engine(self.cache_path.read_bytes())
        if engine is None:
            log.warning("cached TensorRT engine %s does not deserialize; rebuilding", self.cache_path)
        return engine

    def _torch_dtype(self, trt_dtype: Any) -> Any:
        trt, torch = self._trt, self._torch
        table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32, trt.int64: torch.int64, trt.bool: torch.bool}
        if trt_dtype not in table:
            raise BackendError(f"TensorRT output dtype {trt_dtype} is not supported by this runner")
        return table[trt_dtype]

    def forward(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run (B, 3, H, W) float32, or (B, H, W, 3) uint8 for a pixel-input package, with
        ``min <= B <= max``; returns output name -> (B, ...) float32."""
        torch = self._torch
        n = batch.shape[0]
        if not self.profile.min <= n <= self.profile.max:
            raise BackendError(f"batch {n} is outside the engine's profile [{self.profile.min}, {self.profile.max}]")
        host_dtype = np.uint8 if self.spec.input.takes_pixels else np.float32
        host = torch.from_numpy(np.ascontiguousarray(batch, dtype=host_dtype)).pin_memory()
        with self._lock, torch.cuda.device(self.device), torch.cuda.stream(self._stream):
            x = host.to(self.device, non_blocking=True)
            ctx = self._context
            ctx.set_input_shape(self._input, tuple(x.shape))
            ctx.set_tensor_address(self._input, x.data_ptr())
            outputs = {}
            for name in self._outputs:
                shape = tuple(ctx.get_tensor_shape(name))
                out = torch.empty(shape, dtype=self._dtypes[name], device=self.device)
                ctx.set_tensor_address(name, out.data_ptr())
                outputs[name] = out
            if not ctx.execute_async_v3(self._stream.cuda_stream):
                raise BackendError("TensorRT execute_async_v3 failed (see the TensorRT log)")
            result = {name: t.float().cpu() for name, t in outputs.items()}
            self._stream.synchronize()
        return {name: t.numpy() for name, t in result.items()}
