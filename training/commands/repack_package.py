"""``livetag model repack``: the same network re-exported with another input format.

A package exported with float32 NCHW input (the caller normalises) becomes one whose graph takes the
RGB uint8 pixels (B, H, W, 3) and normalises them itself (``--pixel-input``, the default), or back.
Nothing is trained: the network is rebuilt from ``weights.pt`` (``spec["torch"]``), exported again,
its ONNX graph checked against the torch module (``training.export.check_parity``) and against the
source package's ONNX graph on the same pixels. The spec keeps its fields (metrics, provenance); the
version keeps its date and takes the new graph's digest, and ``repacked_from`` names the source.

``--flip-test`` (detectors) exports the same weights with flip test-time augmentation in the graph
(``training.models.detector.flip_averaged``): the outputs differ from the source's by design, so
the check against the source graph is reported, not enforced; the torch-vs-ONNX check still holds.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from stream.errors import LiveTagError

log = logging.getLogger(__name__)

#: Spec fields that the export writes itself.
_EXPORT_FIELDS = ("format_version", "role", "outputs", "opset", "onnx_sha256", "weights_sha256")
#: Pixels checked against the source package: seeded smooth random images (noise has no peaks to decode).
PARITY_IMAGES = 6


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments."""
    parser.add_argument("source", type=Path, help="the package folder to re-export")
    parser.add_argument("out", type=Path, help="write the re-exported package here (a new folder)")
    parser.add_argument("--float-input", action="store_true",
                        help="export with float32 NCHW input normalised by the caller (default: uint8 pixels)")
    parser.add_argument("--flip-test", choices=("on", "off"), default=None,
                        help="detectors: decode the mean of the image's and its mirror's maps (twice the cost); "
                             "default: as the source")


def run(args: argparse.Namespace, _serving: object = None) -> int:
    """Entry point; returns the exit code."""
    flip = None if args.flip_test is None else args.flip_test == "on"
    report = repack(args.source, args.out, pixel_input=not args.float_input, flip_test=flip)
    print(json.dumps(report, indent=2))
    return 0


def parity_pixels(height: int, width: int, count: int = PARITY_IMAGES, seed: int = 0) -> np.ndarray:
    """(count, height, width, 3) uint8 images of smooth seeded colour fields (blurred noise)."""
    import cv2

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(count, max(2, height // 16), max(2, width // 16), 3), dtype=np.uint8)
    return np.stack([cv2.resize(c, (width, height), interpolation=cv2.INTER_CUBIC) for c in coarse])


def repack(source: Path, out: Path, pixel_input: bool = True, flip_test: bool | None = None) -> dict[str, Any]:
    """Re-export ``source`` into ``out`` with the chosen input format; returns what was checked.

    Args:
        source: A model package folder.
        out: A new folder for the re-exported package.
        pixel_input: Graph input RGB uint8 (B, H, W, 3) rather than normalised float32 (B, 3, H, W).
        flip_test: Detectors: set (True) or clear (False) the flip test-time augmentation of
            ``DetectorConfig.flip_test``; None keeps the source's.

    Raises:
        LiveTagError: ``source`` is not a package, ``out`` is ``source``, ``flip_test`` is given for
            a package that is not a detector, or a parity check fails.
    """
    import torch

    from training.export import ExportError, build_torch_module, check_parity, export_package, remove_package

    if not (source / "spec.json").is_file():
        raise LiveTagError(f"{source} holds no spec.json; pass a model package folder")
    if out.resolve() == source.resolve():
        raise LiveTagError("write the re-exported package to a new folder, not over its source")
    spec = json.loads((source / "spec.json").read_text(encoding="utf-8"))
    if flip_test is not None and spec.get("role") != "detector":
        raise LiveTagError(f"--flip-test applies to detector packages; {source} is a {spec.get('role')!r} package")
    module = build_torch_module(source)
    flip_changed = flip_test is not None and _set_flip_test(module, spec, flip_test)
    state = torch.load(source / "weights.pt", map_location="cpu", weights_only=True)
    half = any(v.dtype == torch.float16 for v in state.values())
    inp = spec["input"]
    height, width = (inp["shape"][1], inp["shape"][2]) if inp.get("layout") == "NHWC" else (inp["shape"][2], inp["shape"][3])
    new_spec = {k: v for k, v in spec.items() if k not in _EXPORT_FIELDS}
    new_spec["input"] = {k: v for k, v in inp.items() if k not in ("shape", "layout", "dtype")}
    date = re.match(r"\d{4}\.\d{2}\.\d{2}", str(spec.get("version", "")))
    new_spec["version"] = (date.group(0) if date else "0") + "-{onnx_sha8}"
    new_spec["repacked_from"] = {"version": spec.get("version"), "onnx_sha256": spec.get("onnx_sha256"),
                                 "input": f"{inp.get('layout', 'NCHW')} {inp.get('dtype', 'float32')}"}
    if flip_changed:
        new_spec["repacked_from"]["flip_test"] = not flip_test
    names = [o["name"] for o in spec["outputs"]]
    export_package(module, out, role=spec["role"], example_input=torch.zeros(1, 3, height, width),
                   output_names=names, spec=new_spec, opset=int(spec.get("opset", 17)), half_storage=half,
                   pixel_input=pixel_input)
    pixels = parity_pixels(height, width)
    try:
        atol = 1e-2 if spec["role"] == "detector" else 1e-4
        inputs = pixels if pixel_input else _normalised(pixels, spec)
        torch_vs_onnx = check_parity(module, out, inputs, atol=atol)
        onnx_vs_source = graph_difference(source, out, pixels, atol)
    except ExportError:
        remove_package(out)
        raise
    if onnx_vs_source > atol and not flip_changed:
        remove_package(out)
        raise LiveTagError(f"the re-exported graph differs from its source by {onnx_vs_source:.3g} (> {atol:g})")
    written = json.loads((out / "spec.json").read_text(encoding="utf-8"))
    return {"source": spec.get("version"), "version": written["version"], "input": written["input"],
            "onnx_vs_torch": torch_vs_onnx, "onnx_vs_source": onnx_vs_source}


def _set_flip_test(module: Any, spec: dict[str, Any], flip_test: bool) -> bool:
    """Give a detector module (and the spec that rebuilds it) ``flip_test``; whether that changed it."""
    from training.models.detector import DetectorConfig, config_dict

    config = module.config
    if not isinstance(config, DetectorConfig):
        raise LiveTagError("a detector package whose module has no DetectorConfig cannot take --flip-test")
    if config.flip_test == flip_test:
        return False
    module.config = replace(config, flip_test=flip_test)
    spec["torch"] = {**spec["torch"], "config": config_dict(module.config)}
    return True


def graph_difference(first: Path, second: Path, pixels: np.ndarray, atol: float) -> float:
    """Largest output difference between two packages' ONNX graphs fed the same pixels, each in its
    own input format (a detector's decoded slots matched as ``training.export.check_parity`` does).

    Args:
        first: A package folder.
        second: Another package folder of the same role and outputs.
        pixels: (N, H, W, 3) uint8 images of the packages' input size.
        atol: Scores closer than this count as ties the two graphs may order differently.
    """
    from engines.onnxruntime_backend import OnnxRuntimeBackend
    from engines.package import ModelPackage
    from engines.preprocess import network_batch
    from training.export import detection_slot_difference

    outputs = []
    for folder in (first, second):
        package = ModelPackage.load(folder)
        backend = OnnxRuntimeBackend(package, device="cpu", max_batch=len(pixels))
        outputs.append(backend.forward(network_batch(list(pixels), package.spec.input, package.spec.normalization)))
    a, b = outputs
    if "scores" in a:
        return detection_slot_difference(a, b, atol)
    return max(float(np.max(np.abs(a[name].astype(np.float64) - b[name]))) for name in a)


def _normalised(pixels: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    from engines.package import parse_normalization
    from engines.preprocess import normalise

    return normalise(list(pixels), parse_normalization(spec))
