"""``livetag model repack``: a package re-exported to take uint8 pixels gives what its float twin gives,
through ONNX Runtime and the torch backend, and the packages say which input they take."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import onnx
import pytest
import torch

from engines.base import BackendError, DetectorEngine, EmbedderEngine
from engines.onnxruntime_backend import OnnxRuntimeBackend
from engines.package import ModelPackage
from engines.torch_backend import TorchBackend
from stream.errors import LiveTagError
from training.categories import CATEGORIES
from training.commands.repack_package import repack
from training.export import ExportError, check_parity, export_package
from training.models.detector import OUTPUT_NAMES, DetectorConfig, GarmentDetector, config_dict
from training.models.embedder import NORM_MEAN, NORM_STD, EmbedderConfig, build_embedder

CLIP = Path(__file__).resolve().parents[1] / "data" / "car-detection-14s.mp4"
SMALL = DetectorConfig(widths=(8, 8, 16, 16, 24), neck_channels=16)
TINY = EmbedderConfig(widths=(8, 16, 32), blocks=(0, 1), head_channels=32, embedding_dim=16)
NORM = {"scale": 1.0 / 255.0, "mean": list(NORM_MEAN), "std": list(NORM_STD)}


def _frames(count: int = 3) -> list[np.ndarray]:
    """The first ``count`` frames of the real test clip, RGB (432, 768, 3)."""
    frames = []
    with av.open(str(CLIP)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return frames


def _engine(folder: Path, backend: str = "onnxruntime") -> DetectorEngine | EmbedderEngine:
    package = ModelPackage.load(folder)
    runner = OnnxRuntimeBackend(package, device="cpu") if backend == "onnxruntime" else TorchBackend(package, device="cpu")
    if package.spec.role == "detector":  # an untrained detector's peaks are weak: keep them all
        return DetectorEngine(package.spec, runner, score_threshold=0.01)
    return EmbedderEngine(package.spec, runner)


@pytest.fixture(scope="module")
def detectors(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(float package, its uint8-pixel repack) of a small random detector with spread objectness."""
    torch.manual_seed(3)
    model = GarmentDetector(SMALL)
    with torch.no_grad():
        model.center.weight.normal_(0.0, 1.0)
    root = tmp_path_factory.mktemp("repack")
    export_package(model.eval(), root / "float", role="detector", example_input=torch.zeros(1, 3, 256, 256),
                   output_names=OUTPUT_NAMES,
                   spec={"name": "livetag-detector", "version": "2026.01.02-{onnx_sha8}", "normalization": NORM,
                         "input": {"resize": "letterbox", "pad_value": 114}, "classes": list(CATEGORIES),
                         "max_detections": SMALL.max_detections,
                         "torch": {"factory": "training.models.detector:build_detector", "config": config_dict(SMALL)}})
    repack(root / "float", root / "pixels")
    return root / "float", root / "pixels"


@pytest.fixture(scope="module")
def embedders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(float package, its uint8-pixel repack) of a tiny random embedder stored as float16."""
    torch.manual_seed(5)
    net = build_embedder(**TINY.to_dict()).eval()
    root = tmp_path_factory.mktemp("repack_embedder")
    export_package(net, root / "float", role="embedder", example_input=torch.zeros(1, 3, TINY.input_size, TINY.input_size),
                   output_names=["embeddings"], half_storage=True,
                   spec={"name": "livetag-embedder", "version": "2026.01.03-{onnx_sha8}", "normalization": NORM,
                         "input": {"resize": "stretch"}, "embedding_dim": TINY.embedding_dim,
                         "torch": {"factory": "training.models.embedder:build_embedder", "config": TINY.to_dict()}})
    repack(root / "float", root / "pixels")
    return root / "float", root / "pixels"


def test_the_repacked_spec_says_it_takes_pixels_and_names_its_source(detectors: tuple[Path, Path]) -> None:
    source, repacked = (json.loads((folder / "spec.json").read_text()) for folder in detectors)
    assert repacked["input"]["shape"] == [-1, 256, 256, 3]
    assert (repacked["input"]["layout"], repacked["input"]["dtype"]) == ("NHWC", "uint8")
    assert repacked["repacked_from"] == {"version": source["version"], "onnx_sha256": source["onnx_sha256"], "input": "NCHW float32"}
    assert repacked["version"] == "2026.01.02-" + repacked["onnx_sha256"][:8] != source["version"]
    assert repacked["weights_sha256"] == source["weights_sha256"]  # the same network, only the graph's input differs
    assert repacked["normalization"] == source["normalization"] and repacked["torch"] == source["torch"]
    assert ModelPackage.load(detectors[1]).spec.input.takes_pixels
    graph = onnx.load(str(detectors[1] / "model.onnx")).graph
    first = [node.op_type for node in graph.node if graph.input[0].name in node.input]
    assert first == ["Cast"]  # TensorRT takes a uint8 input only straight into a cast to float


def test_the_pixel_package_finds_the_boxes_of_its_float_twin_on_real_frames(detectors: tuple[Path, Path]) -> None:
    frames = _frames()
    float_engine, pixel_engine = (_engine(folder) for folder in detectors)
    assert isinstance(float_engine, DetectorEngine) and isinstance(pixel_engine, DetectorEngine)
    batch, _ = pixel_engine.pre_process(frames)
    assert batch.dtype == np.uint8 and batch.shape == (3, 256, 256, 3)  # no per-pixel arithmetic left on the caller
    expected, got = float_engine.detect(frames), pixel_engine.detect(frames)
    assert sum(len(d.boxes) for d in expected) > 0
    for a, b in zip(expected, got, strict=True):
        assert len(a.boxes) == len(b.boxes)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-2)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)
        np.testing.assert_allclose(a.sold, b.sold, atol=1e-4)


def test_the_torch_backend_normalises_pixels_as_the_graph_does(detectors: tuple[Path, Path]) -> None:
    frames = _frames(2)
    by_onnx, by_torch = _engine(detectors[1]), _engine(detectors[1], backend="torch")
    assert isinstance(by_onnx, DetectorEngine) and isinstance(by_torch, DetectorEngine)
    for a, b in zip(by_onnx.detect(frames), by_torch.detect(frames), strict=True):
        assert len(a.boxes) == len(b.boxes) > 0
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-2)


def test_the_pixel_embedder_gives_the_vectors_of_its_float_twin(embedders: tuple[Path, Path]) -> None:
    rng = np.random.default_rng(7)
    frame = _frames(1)[0]
    crops = [frame[y : y + h, x : x + w] for x, y, w, h in ((10, 20, 200, 300), (400, 50, 150, 120), (0, 0, 768, 432))]
    crops.append(rng.integers(0, 256, size=(50, 40, 3), dtype=np.uint8))
    float_engine, pixel_engine, torch_engine = _engine(embedders[0]), _engine(embedders[1]), _engine(embedders[1], "torch")
    assert isinstance(float_engine, EmbedderEngine) and isinstance(pixel_engine, EmbedderEngine)
    assert isinstance(torch_engine, EmbedderEngine)
    expected = float_engine.embed(crops)
    np.testing.assert_allclose(pixel_engine.embed(crops), expected, atol=1e-5)
    np.testing.assert_allclose(torch_engine.embed(crops), expected, atol=1e-4)


def test_a_pixel_package_repacks_back_to_float_input(embedders: tuple[Path, Path], tmp_path: Path) -> None:
    report = repack(embedders[1], tmp_path / "again", pixel_input=False)
    assert (report["input"]["layout"], report["input"]["dtype"]) == ("NCHW", "float32")
    assert report["onnx_vs_source"] <= 1e-4
    assert json.loads((tmp_path / "again" / "spec.json").read_text())["repacked_from"]["input"] == "NHWC uint8"


def test_wrong_inputs_are_refused(detectors: tuple[Path, Path], tmp_path: Path) -> None:
    pixel_backend = OnnxRuntimeBackend(ModelPackage.load(detectors[1]), device="cpu")
    with pytest.raises(BackendError, match="takes uint8 pixels"):
        pixel_backend.forward(np.zeros((1, 256, 256, 3), np.float32))
    torch_backend = TorchBackend(ModelPackage.load(detectors[1]), device="cpu")
    with pytest.raises(BackendError, match="takes uint8 pixels"):
        torch_backend.forward(np.zeros((1, 3, 256, 256), np.float32))
    model = GarmentDetector(SMALL).eval()
    with pytest.raises(ExportError, match="takes uint8 input"):
        check_parity(model, detectors[1], np.zeros((1, 3, 256, 256), np.float32), atol=1e-2)
    with pytest.raises(LiveTagError, match="not over its source"):
        repack(detectors[0], detectors[0])
    with pytest.raises(LiveTagError, match="holds no spec.json"):
        repack(tmp_path, tmp_path / "out")


def test_flip_test_repack_sets_the_option_and_clears_back_to_the_source(detectors: tuple[Path, Path], tmp_path: Path) -> None:
    _, pixels = detectors
    report = repack(pixels, tmp_path / "flip", flip_test=True)
    spec = json.loads((tmp_path / "flip" / "spec.json").read_text())
    assert spec["torch"]["config"]["flip_test"] is True and spec["repacked_from"]["flip_test"] is False
    assert report["onnx_vs_torch"] < 1e-2 and report["onnx_vs_source"] > 1e-2  # a different graph, by design
    frames = _frames(2)
    flipped = _engine(tmp_path / "flip").detect(frames)  # type: ignore[union-attr]
    mirrored = _engine(tmp_path / "flip").detect([np.ascontiguousarray(f[:, ::-1]) for f in frames])  # type: ignore[union-attr]
    for one, other in zip(flipped, mirrored, strict=True):  # mirror-symmetric on real frames
        assert sorted(np.round(one.scores, 4)) == sorted(np.round(other.scores, 4))
    back = repack(tmp_path / "flip", tmp_path / "back", flip_test=False)
    assert back["onnx_vs_source"] > 1e-2  # against the flip graph it came from
    plain = _engine(pixels).detect(frames)  # type: ignore[union-attr]
    again = _engine(tmp_path / "back").detect(frames)  # type: ignore[union-attr]
    for one, other in zip(plain, again, strict=True):
        assert np.allclose(one.boxes, other.boxes, atol=1e-3) and np.allclose(one.scores, other.scores, atol=1e-5)


def test_flip_test_is_refused_for_an_embedder(embedders: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(LiveTagError, match="detector packages"):
        repack(embedders[1], tmp_path / "flip", flip_test=True)
    assert not (tmp_path / "flip").exists()
