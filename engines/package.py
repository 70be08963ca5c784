"""The model package: ``model.onnx`` + ``spec.json`` (+ ``weights.pt`` for the torch backend), checked on load.

The format is fixed in docs/design.md ("Model package"). :meth:`ModelPackage.load` reads the spec,
validates every field the runtimes rely on, checks ``sha256(model.onnx) == spec["onnx_sha256"]`` and
that the ONNX graph's input and outputs agree with the spec. Every failure is a
:class:`ModelPackageError` whose one-line message names the file, what is wrong and what to do.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream.errors import LiveTagError

FORMAT_VERSION = 1
ROLES = ("detector", "embedder")
RESIZE_MODES = ("letterbox", "stretch")
#: Input (layout, dtype) pairs: normalised float32 planes, or RGB uint8 pixels normalised in the graph.
INPUT_FORMATS = (("NCHW", "float32"), ("NHWC", "uint8"))
DETECTOR_OUTPUTS = ("boxes", "scores", "class_probs", "sold")
EMBEDDER_OUTPUTS = ("embeddings",)


class ModelPackageError(LiveTagError):
    """A model package is missing, malformed or inconsistent with its ONNX graph."""


@dataclass(frozen=True)
class InputSpec:
    """The network input.

    Attributes:
        name: ONNX input name (``images``).
        batch: Fixed batch size, or -1 when the batch axis is dynamic.
        height: Input height H in pixels.
        width: Input width W in pixels.
        resize: ``letterbox`` (top-left, padded) or ``stretch``.
        pad_value: Letterbox fill value, 0..255.
        layout: ``NCHW`` (float32 input, normalised by the caller) or ``NHWC`` (uint8 pixels; the
            graph casts, reorders and normalises them itself).
        dtype: ``float32`` or ``uint8``, paired with the layout as in :data:`INPUT_FORMATS`.
    """

    name: str
    batch: int
    height: int
    width: int
    resize: str
    pad_value: int
    layout: str = "NCHW"
    dtype: str = "float32"

    @property
    def takes_pixels(self) -> bool:
        """Whether the graph takes RGB uint8 pixels (B, H, W, 3) and normalises them in-graph."""
        return self.dtype == "uint8"

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """The declared input shape, ``(B, 3, H, W)`` or ``(B, H, W, 3)``; B is -1 when dynamic."""
        if self.takes_pixels:
            return (self.batch, self.height, self.width, 3)
        return (self.batch, 3, self.height, self.width)


@dataclass(frozen=True)
class Normalization:
    """Pixel ``x`` (uint8) becomes ``(x * scale - mean) / std`` per RGB channel."""

    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclass(frozen=True)
class OutputSpec:
    """One ONNX output; ``shape[0]`` is -1 for a dynamic batch."""

    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelSpec:
    """The validated content of ``spec.json``.

    Attributes:
        role: ``detector`` or ``embedder``.
        name: Model name.
        version: Model version string.
        input: Input tensor description.
        normalization: Pixel normalisation.
        outputs: Output tensors, in graph order.
        classes: Category names (detector; empty for an embedder).
        embedding_dim: Vector size D (embedder; 0 for a detector).
        max_detections: K, boxes per image before thresholding (detector; 0 for an embedder).
        onnx_sha256: Hex digest of ``model.onnx``.
        torch: ``{"factory": "module:function", "config": {...}}`` or None.
        raw: The whole spec as read.
    """

    role: str
    name: str
    version: str
    input: InputSpec
    normalization: Normalization
    outputs: tuple[OutputSpec, ...]
    classes: tuple[str, ...]
    embedding_dim: int
    max_detections: int
    onnx_sha256: str
    torch: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def output_names(self) -> list[str]:
        """Output names in graph order."""
        return [o.name for o in self.outputs]

    @property
    def label(self) -> str:
        """``name@version``, as written into match events."""
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class ModelPackage:
    """A package folder whose spec and ONNX file were checked.

    Attributes:
        path: The package folder.
        spec: The validated spec.
    """

    path: Path
    spec: ModelSpec

    @property
    def onnx_path(self) -> Path:
        """``model.onnx`` inside the package."""
        return self.path / "model.onnx"

    @property
    def weights_path(self) -> Path:
        """``weights.pt`` inside the package (used by the torch backend only)."""
        return self.path / "weights.pt"

    @classmethod
    def load(cls, package_dir: str | Path, role: str | None = None, check_graph: bool = True) -> ModelPackage:
        """Read and validate a package folder.

        Args:
            package_dir: Folder holding ``model.onnx`` and ``spec.json``.
            role: When given, the spec's role must equal it.
            check_graph: Also compare the ONNX graph's input/output names and shapes with the spec.

        Returns:
            The checked package.

        Raises:
            ModelPackageError: Anything is missing or inconsistent.
        """
        path = Path(package_dir)
        spec_path = path / "spec.json"
        onnx_path = path / "model.onnx"
        if not path.is_dir():
            raise ModelPackageError(f"{path}: model package folder not found (train and export the model first)")
        for needed in (spec_path, onnx_path):
            if not needed.is_file():
                raise ModelPackageError(f"{needed}: file missing from the model package (re-export the package)")
        try:
            raw = json.loads(spec_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelPackageError(f"{spec_path}: not valid JSON ({exc}); re-export the package") from exc
        spec = parse_spec(raw, where=str(spec_path))
        if role is not None and spec.role != role:
            raise ModelPackageError(f"{spec_path}: role is {spec.role!r} but a {role} is needed (pass the {role} package)")
        digest = sha256_file(onnx_path)
        if digest != spec.onnx_sha256:
            raise ModelPackageError(f"{spec_path}: onnx_sha256 does not match model.onnx (re-export the package)")
        if check_graph:
            _check_graph(onnx_path, spec, str(spec_path))
        return cls(path=path, spec=spec)


def package_digest(package_dir: str | Path) -> str:
    """One sha256 over a package's ``spec.json``, ``model.onnx`` and ``weights.pt`` (when present),
    each with its name and size: pin it (``--detector-digest``) and a changed file is refused."""
    digest = hashlib.sha256()
    for name in ("spec.json", "model.onnx", "weights.pt"):
        path = Path(package_dir) / name
        if not path.is_file():
            continue
        digest.update(f"{name}:{path.stat().st_size}:".encode())
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def check_digest(package_dir: str | Path, pinned: str) -> None:
    """Raise ModelPackageError unless the package's :func:`package_digest` is ``pinned``."""
    found = package_digest(package_dir)
    if found != pinned.strip().lower():
        raise ModelPackageError(f"{package_dir}: package digest {found[:12]}... is not the pinned {pinned[:12]}...; "
                                "the folder was changed or is another package")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _need(raw: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in raw:
        raise ModelPackageError(f"{where}: field {key!r} is missing (re-export the package)")
    value = raw[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ModelPackageError(f"{where}: field {key!r} has the wrong type {type(value).__name__} (re-export the package)")
    return value


def _parse_input(raw: dict[str, Any], where: str) -> InputSpec:
    inp = _need(raw, "input", dict, where)
    sub = f"{where} input"
    layout, dtype = inp.get("layout", "NCHW"), inp.get("dtype", "float32")
    if (layout, dtype) not in INPUT_FORMATS:
        formats = " or ".join(f"{lay} {dt}" for lay, dt in INPUT_FORMATS)
        raise ModelPackageError(f"{sub}: layout and dtype must be {formats}, got {layout!r} {dtype!r} (re-export the package)")
    if inp.get("color", "RGB") != "RGB":
        raise ModelPackageError(f"{sub}: color must be 'RGB', got {inp.get('color')!r} (re-export the package)")
    shape = _need(inp, "shape", list, sub)
    template = "[B, H, W, 3]" if layout == "NHWC" else "[B, 3, H, W]"
    if len(shape) != 4 or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise ModelPackageError(f"{sub}: shape must be 4 integers {template}, got {shape} (re-export the package)")
    batch, height, width, channels = shape if layout == "NHWC" else (shape[0], shape[2], shape[3], shape[1])
    if channels != 3 or height <= 0 or width <= 0 or (batch <= 0 and batch != -1):
        raise ModelPackageError(f"{sub}: shape must be {template} with B -1 or > 0 and H, W > 0, got {shape} (re-export the package)")
    resize = _need(inp, "resize", str, sub)
    if resize not in RESIZE_MODES:
        raise ModelPackageError(f"{sub}: resize must be one of {RESIZE_MODES}, got {resize!r} (re-export the package)")
    pad = inp.get("pad_value", 114)
    if not isinstance(pad, int | float) or not 0 <= pad <= 255:
        raise ModelPackageError(f"{sub}: pad_value must be a number in 0..255, got {pad!r} (re-export the package)")
    return InputSpec(_need(inp, "name", str, sub), batch, height, width, resize, int(pad), layout, dtype)


def parse_normalization(raw: dict[str, Any], where: str = "spec.json") -> Normalization:
    """The validated ``normalization`` of a spec dictionary (``raw["normalization"]``).

    Raises:
        ModelPackageError: It is missing or has impossible values.
    """
    norm = _need(raw, "normalization", dict, where)
    sub = f"{where} normalization"
    scale = _need(norm, "scale", (int, float), sub)
    mean = _need(norm, "mean", list, sub)
    std = _need(norm, "std", list, sub)
    ok = len(mean) == 3 and len(std) == 3 and all(isinstance(v, int | float) for v in mean + std)
    if not ok or scale <= 0 or min(std) <= 0:
        raise ModelPackageError(f"{sub}: need scale > 0 and 3 means and 3 stds > 0 (re-export the package)")
    return Normalization(float(scale), (float(mean[0]), float(mean[1]), float(mean[2])), (float(std[0]), float(std[1]), float(std[2])))


def _parse_outputs(raw: dict[str, Any], where: str) -> tuple[OutputSpec, ...]:
    outputs = []
    for i, item in enumerate(_need(raw, "outputs", list, where)):
        sub = f"{where} outputs[{i}]"
        if not isinstance(item, dict):
            raise ModelPackageError(f"{sub}: must be an object with name and shape (re-export the package)")
        shape = _need(item, "shape", list, sub)
        if not shape or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise ModelPackageError(f"{sub}: shape must be a list of integers, got {shape} (re-export the package)")
        outputs.append(OutputSpec(_need(item, "name", str, sub), tuple(shape)))
    return tuple(outputs)


def _check_role_outputs(role: str, outputs: dict[str, OutputSpec], raw: dict[str, Any], where: str) -> tuple[tuple[str, ...], int, int]:
    needed = DETECTOR_OUTPUTS if role == "detector" else EMBEDDER_OUTPUTS
    missing = [n for n in needed if n not in outputs]
    if missing:
        raise ModelPackageError(f"{where}: a {role} needs outputs {list(needed)}, missing {missing} (re-export the package)")
    if role == "embedder":
        dim = _need(raw, "embedding_dim", int, where)
        if dim <= 0 or outputs["embeddings"].shape[1:] != (dim,):
            raise ModelPackageError(
                f"{where}: embeddings output shape {list(outputs['embeddings'].shape)} does not match embedding_dim {dim} (re-export the package)"
            )
        return (), dim, 0
    classes = _need(raw, "classes", list, where)
    if not classes or not all(isinstance(c, str) for c in classes):
        raise ModelPackageError(f"{where}: classes must be a non-empty list of names (re-export the package)")
    k = outputs["boxes"].shape[1] if len(outputs["boxes"].shape) == 3 else -1
    max_det = int(raw.get("max_detections", k))
    expected = {
        "boxes": (k, 4),
        "scores": (k,),
        "class_probs": (k, len(classes)),
        "sold": (k,),
    }
    for name, tail in expected.items():
        if k <= 0 or outputs[name].shape[1:] != tail or max_det != k:
            raise ModelPackageError(
                f"{where}: output {name} shape {list(outputs[name].shape)} disagrees with K={max_det} boxes and "
                f"{len(classes)} classes (re-export the package)"
            )
    return tuple(classes), 0, k


def parse_spec(raw: Any, where: str = "spec.json") -> ModelSpec:
    """Validate a parsed ``spec.json`` and return it as a :class:`ModelSpec`.

    Raises:
        ModelPackageError: A field is missing, has the wrong type or an impossible value.
    """
    if not isinstance(raw, dict):
        raise ModelPackageError(f"{where}: must hold a JSON object (re-export the package)")
    version = _need(raw, "format_version", int, where)
    if version != FORMAT_VERSION:
        raise ModelPackageError(f"{where}: format_version {version} is not supported (this runtime reads {FORMAT_VERSION}; re-export)")
    role = _need(raw, "role", str, where)
    if role not in ROLES:
        raise ModelPackageError(f"{where}: role must be one of {ROLES}, got {role!r} (re-export the package)")
    outputs = _parse_outputs(raw, where)
    by_name = {o.name: o for o in outputs}
    classes, dim, k = _check_role_outputs(role, by_name, raw, where)
    digest = _need(raw, "onnx_sha256", str, where)
    torch_part = raw.get("torch")
    if torch_part is not None and not (isinstance(torch_part, dict) and isinstance(torch_part.get("factory"), str)):
        raise ModelPackageError(f'{where}: torch must be {{"factory": "module:function", "config": {{...}}}} (re-export the package)')
    return ModelSpec(
        role=role,
        name=str(raw.get("name", f"livetag-{role}")),
        version=str(raw.get("version", "0")),
        input=_parse_input(raw, where),
        normalization=parse_normalization(raw, where),
        outputs=outputs,
        classes=classes,
        embedding_dim=dim,
        max_detections=k,
        onnx_sha256=digest.lower(),
        torch=torch_part,
        raw=raw,
    )


def _graph_signature(onnx_path: Path) -> tuple[dict[str, tuple[list[int | str], str]], dict[str, list[int | str]]]:
    """Input shapes and element types (``tensor(float)``, ``tensor(uint8)``) and output shapes of the
    graph (symbolic dims as strings), read with ONNX Runtime."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several unrelated types for a bad file
        raise ModelPackageError(f"{onnx_path}: ONNX Runtime cannot read the graph ({type(exc).__name__}); re-export the package") from exc
    inputs = {i.name: (list(i.shape), str(i.type)) for i in session.get_inputs()}
    outputs = {o.name: list(o.shape) for o in session.get_outputs()}
    return inputs, outputs


def _dims_agree(graph: list[int | str], declared: tuple[int, ...]) -> bool:
    if len(graph) != len(declared):
        return False
    return all(not isinstance(g, int) or d == -1 or g == d for g, d in zip(graph, declared, strict=True))


def _check_graph(onnx_path: Path, spec: ModelSpec, where: str) -> None:
    inputs, outputs = _graph_signature(onnx_path)
    declared_input = spec.input.shape
    if spec.input.name not in inputs:
        raise ModelPackageError(f"{where}: model.onnx has no input {spec.input.name!r} (it has {sorted(inputs)}; re-export)")
    graph_shape, graph_type = inputs[spec.input.name]
    expected_type = f"tensor({'uint8' if spec.input.takes_pixels else 'float'})"
    if graph_type != expected_type:
        raise ModelPackageError(f"{where}: input dtype {spec.input.dtype} does not match model.onnx {graph_type} (re-export the package)")
    if not _dims_agree(graph_shape, declared_input):
        raise ModelPackageError(
            f"{where}: input shape {list(declared_input)} does not match model.onnx {graph_shape} (re-export the package)"
        )
    for out in spec.outputs:
        if out.name not in outputs:
            raise ModelPackageError(f"{where}: model.onnx has no output {out.name!r} (re-export the package)")
        if not _dims_agree(outputs[out.name], out.shape):
            raise ModelPackageError(
                f"{where}: output {out.name} shape {list(out.shape)} does not match model.onnx {outputs[out.name]} (re-export)"
            )
