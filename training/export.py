"""Export a trained module as a model package (``model.onnx`` + ``spec.json`` + ``weights.pt``).

The package layout is fixed in docs/design.md ("Model package"). ``export_package`` writes the
ONNX graph with a dynamic batch axis on the input ``images`` and on every output, the state dict
(for the torch backend, which rebuilds the module from ``spec["torch"]["factory"]``), and the spec
with the fields that only the export knows filled in: ``format_version``, ``role``, ``opset``,
``onnx_sha256``, ``weights_sha256`` and the input/output shapes with ``-1`` for the batch.
"""

from __future__ import annotations

import importlib
import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engines.package import parse_normalization, sha256_file
from engines.pixel_input import PixelInput
from stream.errors import LiveTagError
from training.engine import unwrap

FORMAT_VERSION = 1
INPUT_NAME = "images"


class ExportError(LiveTagError):
    """The module could not be exported, or the exported package is inconsistent."""


def _check_factory(spec: dict[str, Any]) -> None:
    torch_part = spec.get("torch")
    if not isinstance(torch_part, dict) or not isinstance(torch_part.get("factory"), str):
        raise ExportError('spec needs "torch": {"factory": "module:function", "config": {...}} to rebuild the module')
    if ":" not in torch_part["factory"]:
        raise ExportError(f"spec torch.factory {torch_part['factory']!r} must look like 'package.module:function'")
    if not isinstance(torch_part.get("config", {}), dict):
        raise ExportError("spec torch.config must be a JSON object")


def export_package(
    model: nn.Module,
    out_dir: str | Path,
    *,
    role: str,
    example_input: torch.Tensor,
    output_names: list[str],
    spec: dict[str, Any],
    opset: int = 17,
    half_storage: bool = False,
    pixel_input: bool = False,
) -> Path:
    """Write ``model.onnx``, ``weights.pt`` and ``spec.json`` into ``out_dir``.

    Args:
        model: The trained module (DDP wrappers are removed); exported in eval mode on CPU.
        out_dir: Package folder, created when missing; existing package files are replaced.
        role: ``"detector"`` or ``"embedder"``.
        example_input: (B, 3, H, W) float32 tensor fixing the spatial size; B is made dynamic.
        output_names: Names of the module's outputs, in the order ``forward`` returns them.
        spec: The rest of the spec (name, version, architecture, input resize/pad, normalization,
            classes or embedding_dim, metrics, training_data, and ``torch`` with ``factory`` and
            ``config``). It is copied, not modified. ``{onnx_sha8}`` in the version is replaced by
            the first 8 hex digits of the ONNX file's sha256, so two trainings on one day get two
            versions (match events name the models by ``name@version``).
        opset: ONNX opset.
        half_storage: Store the weights in float16 (half the package size): the module's float
            weights are rounded to float16 first (in place), ``weights.pt`` holds them as float16
            and the ONNX graph as float16 initializers cast back to float32, so torch and ONNX
            compute in float32 from the very same values.
        pixel_input: Make the graph take RGB uint8 pixels (B, H, W, 3) and normalise them itself
            with the spec's ``normalization`` (:class:`engines.pixel_input.PixelInput`), so the
            caller does no per-pixel arithmetic. ``weights.pt`` holds the network alone either way.

    Returns:
        The path of ``spec.json``.

    Raises:
        ExportError: The spec lacks the torch factory, or ONNX export failed.
    """
    if role not in ("detector", "embedder"):
        raise ExportError(f"role must be 'detector' or 'embedder', got {role!r}")
    if example_input.ndim != 4:
        raise ExportError(f"example_input must be (B, 3, H, W), got {tuple(example_input.shape)}")
    _check_factory(spec)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    module = unwrap(model).to("cpu").eval()
    if half_storage:
        round_to_half(module)
    example = example_input.detach().to("cpu", torch.float32)
    graph_module: nn.Module = module
    graph_example = example
    if pixel_input:
        graph_module = PixelInput(module, parse_normalization(spec, "spec")).eval()
        graph_example = torch.zeros((example.shape[0], example.shape[2], example.shape[3], example.shape[1]), dtype=torch.uint8)
    with torch.no_grad():
        produced = module(example)
    produced_list = list(produced) if isinstance(produced, tuple | list) else [produced]
    if len(produced_list) != len(output_names):
        raise ExportError(f"module returned {len(produced_list)} outputs but {len(output_names)} names were given")

    onnx_path = out / "model.onnx"
    try:
        # Folding would turn the float16-exact weights into float32 products that the float16
        # storage then rounds again; ONNX Runtime folds them at load time instead.
        _export_onnx(graph_module, graph_example, onnx_path, list(output_names), opset, fold=not half_storage)
    except Exception as exc:
        raise ExportError(f"ONNX export of the {role} failed: {type(exc).__name__}: {exc}") from exc
    state = module.state_dict()
    if half_storage:
        _store_initializers_as_half(onnx_path)
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    torch.save(state, out / "weights.pt")

    full = json.loads(json.dumps(spec))
    full["format_version"] = FORMAT_VERSION
    full["role"] = role
    input_part = dict(full.get("input") or {})
    input_part.update(
        {
            "name": INPUT_NAME,
            "shape": [-1, *[int(d) for d in graph_example.shape[1:]]],
            "layout": "NHWC" if pixel_input else "NCHW",
            "dtype": "uint8" if pixel_input else "float32",
        }
    )
    input_part.setdefault("color", "RGB")
    full["input"] = input_part
    full["outputs"] = [
        {"name": name, "shape": [-1, *[int(d) for d in tensor.shape[1:]]]}
        for name, tensor in zip(output_names, produced_list, strict=True)
    ]
    full["opset"] = opset
    full["onnx_sha256"] = sha256_file(onnx_path)
    full["version"] = str(full.get("version", "0")).replace("{onnx_sha8}", full["onnx_sha256"][:8])
    full["weights_sha256"] = sha256_file(out / "weights.pt")
    spec_path = out / "spec.json"
    spec_path.write_text(json.dumps(full, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return spec_path


def round_to_half(module: nn.Module) -> None:
    """Round every float parameter and buffer of ``module`` to float16 precision, in place (kept float32)."""
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())


def _store_initializers_as_half(onnx_path: Path, min_elements: int = 1024) -> None:
    """Rewrite large float32 initializers of an ONNX file as float16 with a Cast back to float32.

    ONNX Runtime folds the casts when it loads the graph, so inference runs in float32 as before.
    """
    import onnx
    from onnx import helper, numpy_helper

    graph_model = onnx.load(str(onnx_path))
    graph = graph_model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        values = numpy_helper.to_array(init)
        if values.size < min_elements:
            continue
        name = init.name
        half = numpy_helper.from_array(values.astype(np.float16), name=f"{name}__fp16")
        init.CopyFrom(half)
        casts.append(helper.make_node("Cast", [half.name], [name], to=onnx.TensorProto.FLOAT, name=f"{name}__cast"))
    for node in reversed(casts):
        graph.node.insert(0, node)
    onnx.save(graph_model, str(onnx_path))


def remove_package(package_dir: str | Path) -> None:
    """Delete the files :func:`export_package` writes (after a failed parity check)."""
    for name in ("model.onnx", "weights.pt", "spec.json"):
        (Path(package_dir) / name).unlink(missing_ok=True)


def build_torch_module(package_dir: str | Path) -> nn.Module:
    """Rebuild a package's module from ``spec["torch"]`` and load ``weights.pt`` (eval mode, CPU)."""
    package = Path(package_dir)
    spec = json.loads((package / "spec.json").read_text(encoding="utf-8"))
    _check_factory(spec)
    module_name, _, func_name = spec["torch"]["factory"].partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise ExportError(f"torch factory {spec['torch']['factory']!r} cannot be imported: {exc}") from exc
    module: nn.Module = factory(**spec["torch"].get("config", {}))
    state = torch.load(package / "weights.pt", map_location="cpu", weights_only=True)
    module.load_state_dict(state)
    return module.eval()


def check_parity(model: nn.Module, package_dir: str | Path, inputs: np.ndarray, atol: float) -> float:
    """Run ``inputs`` through the torch module and the package's ONNX graph and compare.

    Outputs are compared element by element, except a detector's decoded slots. Its decode keeps the
    cells that equal their 3x3 max-pool and ranks them with top-K: both are discrete choices, and where
    two neighbouring cells or two ranks differ by less than float rounding, torch and ONNX Runtime
    may choose differently (one runtime sees 21 peaks, the other 20; a different cell is a different
    box, so element by element the outputs then differ by pixels, as an untrained network shows on
    nearly every input). For a detector the check is therefore two-fold: the network's head maps
    before the decode (exported on their own for the check) must agree within ``atol``; and every
    decoded ONNX slot must have a torch slot of the same image with a score within ``atol`` and
    outputs within ``atol``, except at most ``MAX_UNSTABLE_SLOTS`` of the non-empty slots of an image.

    Args:
        model: The torch module that was exported (the network, without a pixel-input step).
        package_dir: The package folder holding ``model.onnx`` and ``spec.json``.
        inputs: The network input: (B, 3, H, W) float32, or (B, H, W, 3) uint8 pixels for a
            pixel-input package (the torch side then normalises them as the graph does).
        atol: Largest allowed absolute difference over all outputs.

    Returns:
        The maximum absolute difference found (finite).

    Raises:
        ExportError: The difference exceeds ``atol``, an output is not finite, or shapes differ.
    """
    package = Path(package_dir)
    spec = json.loads((package / "spec.json").read_text(encoding="utf-8"))
    names = [o["name"] for o in spec["outputs"]]
    pixels = spec["input"].get("dtype") == "uint8"
    if pixels != (inputs.dtype == np.uint8):
        raise ExportError(f"the package takes {spec['input'].get('dtype')} input; check_parity was given {inputs.dtype}")
    batch = np.ascontiguousarray(inputs, dtype=np.uint8 if pixels else np.float32)
    module = unwrap(model).to("cpu").eval()
    if pixels:
        module = PixelInput(module, parse_normalization(spec)).eval()
    torch_out, onnx_out = _run_both(module, package / "model.onnx", names, batch)
    if spec.get("role") == "detector" and hasattr(module, "raw"):
        with tempfile.TemporaryDirectory() as scratch:
            raw = _RawMaps(module).eval()
            raw_path = Path(scratch) / "raw.onnx"
            _export_onnx(raw, torch.from_numpy(batch[:1]), raw_path, list(_RawMaps.NAMES), opset=int(spec["opset"]))
            raw_torch, raw_onnx = _run_both(raw, raw_path, list(_RawMaps.NAMES), batch)
        worst = _elementwise(raw_torch, raw_onnx, list(_RawMaps.NAMES))
        worst = max(worst, detection_slot_difference(dict(zip(names, torch_out, strict=True)),
                                                      dict(zip(names, onnx_out, strict=True)), atol))
    else:
        worst = _elementwise(torch_out, onnx_out, names)
    if not worst <= atol:
        raise ExportError(f"ONNX and torch outputs differ by {worst:.3g} (> {atol:.3g}); the export is not faithful")
    return worst


#: Decoded detector slots of one image allowed to have no counterpart (peak or rank ties).
MAX_UNSTABLE_SLOTS = 0.1


class _RawMaps(nn.Module):
    """A detector's head maps before the in-graph decode, as a tuple (for the parity check)."""

    NAMES = ("center", "distances", "classes", "sold")

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        maps = self.detector.raw(images)  # type: ignore[operator]
        return tuple(maps[name] for name in self.NAMES)


def _export_onnx(module: nn.Module, example: torch.Tensor, path: Path, output_names: list[str], opset: int,
                 fold: bool = True) -> None:
    """TorchScript-based ONNX export with the input ``images`` and a dynamic batch axis everywhere."""
    dynamic_axes = {INPUT_NAME: {0: "batch"}, **{name: {0: "batch"} for name in output_names}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(path), input_names=[INPUT_NAME], output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=opset, do_constant_folding=fold, dynamo=False)


def _run_both(module: nn.Module, onnx_path: Path, names: list[str], batch: np.ndarray
              ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The outputs of the torch module and of the ONNX graph on ``batch``; non-finite values are an error."""
    import onnxruntime as ort

    with torch.no_grad():
        produced = module(torch.from_numpy(batch))
    torch_out = [t.numpy() for t in (produced if isinstance(produced, tuple | list) else [produced])]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_out = session.run(names, {INPUT_NAME: batch})
    for name, a, b in zip(names, torch_out, onnx_out, strict=True):
        if a.shape != b.shape:
            raise ExportError(f"output {name!r}: torch shape {a.shape} != onnx shape {b.shape}")
        for runtime, values in (("torch", a), ("onnx", b)):
            if not np.isfinite(values).all():
                raise ExportError(f"output {name!r} of {runtime} holds non-finite values; the model is not usable")
    return torch_out, onnx_out


def _elementwise(torch_out: list[np.ndarray], onnx_out: list[np.ndarray], names: list[str]) -> float:
    return max((float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0
                for a, b in zip(torch_out, onnx_out, strict=True)), default=0.0)


def detection_slot_difference(torch_out: dict[str, np.ndarray], onnx_out: dict[str, np.ndarray],
                               atol: float) -> float:
    """Largest difference between the decoded ONNX slots and their closest equal-score torch slots.

    Args:
        torch_out: output name -> [B, K, ...] arrays of the torch module.
        onnx_out: the same of ONNX Runtime.
        atol: scores closer than this count as ties that the two runtimes may order differently.

    Returns:
        The largest difference over the matched slots; when more than ``MAX_UNSTABLE_SLOTS`` of an
        image's non-empty slots have no torch slot within ``atol`` in every output, the largest
        difference among those.
    """
    def flat(out: dict[str, np.ndarray], image: int) -> np.ndarray:
        parts = [out[name][image].reshape(out[name].shape[1], -1) for name in out]
        return np.concatenate(parts, axis=1).astype(np.float64)  # [K, F]

    worst = 0.0
    for image in range(torch_out["scores"].shape[0]):
        t_rows, o_rows = flat(torch_out, image), flat(onnx_out, image)
        t_scores = torch_out["scores"][image].astype(np.float64)
        o_scores = onnx_out["scores"][image].astype(np.float64)
        filled = np.flatnonzero(o_scores > atol)  # empty slots (non-peaks, score 0) carry no detection
        unmatched: list[float] = []
        for slot in filled:
            gaps = np.abs(t_scores - o_scores[slot])
            candidates = np.flatnonzero(gaps <= atol)
            if candidates.size == 0:
                unmatched.append(float(gaps.min()))
                continue
            closest = float(np.min(np.max(np.abs(t_rows[candidates] - o_rows[slot]), axis=1)))
            if closest > atol:  # only other cells share the score: this cell is a peak in ONNX alone
                unmatched.append(closest)
            else:
                worst = max(worst, closest)
        if len(unmatched) > MAX_UNSTABLE_SLOTS * max(1, filled.size):
            worst = max(worst, max(unmatched))
    return worst
