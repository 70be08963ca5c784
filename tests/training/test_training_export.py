"""Model package export: ONNX vs torch parity, dynamic batch, spec fields, torch rebuild."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from training.export import ExportError, build_torch_module, check_parity, export_package, sha256_file
from training.models.detector import OUTPUT_NAMES, DetectorConfig, GarmentDetector, config_dict, rank_levels

# Boxes are in input pixels (0..256); float32 convolutions in two runtimes agree to ~1e-4 px.
PARITY_ATOL = 1e-3
SMALL = DetectorConfig(widths=(8, 8, 16, 16, 24), neck_channels=16)


def _random_detector() -> GarmentDetector:
    torch.manual_seed(3)
    model = GarmentDetector(SMALL)
    with torch.no_grad():  # spread the objectness so peaks differ clearly, as in a trained model
        model.center.weight.normal_(0.0, 1.0)
    return model.eval()


def _export(model: GarmentDetector, out: Path) -> Path:
    return export_package(
        model,
        out,
        role="detector",
        example_input=torch.randn(1, 3, 256, 256),
        output_names=OUTPUT_NAMES,
        spec={
            "name": "livetag-detector",
            "version": "2026.01.02-{onnx_sha8}",
            "input": {"resize": "letterbox", "pad_value": 114},
            "torch": {"factory": "training.models.detector:build_detector", "config": config_dict(SMALL)},
        },
    )


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> tuple[GarmentDetector, Path]:
    model = _random_detector()
    out = tmp_path_factory.mktemp("pkg") / "detector"
    _export(model, out)
    return model, out


def test_spec_is_filled_in(package: tuple[GarmentDetector, Path]) -> None:
    _, out = package
    spec = json.loads((out / "spec.json").read_text())
    assert spec["format_version"] == 1 and spec["role"] == "detector" and spec["opset"] == 17
    assert spec["onnx_sha256"] == sha256_file(out / "model.onnx")
    assert spec["weights_sha256"] == sha256_file(out / "weights.pt")
    assert spec["version"] == "2026.01.02-" + spec["onnx_sha256"][:8]  # the placeholder is filled in
    assert spec["input"] == {"resize": "letterbox", "pad_value": 114, "name": "images",
                             "shape": [-1, 3, 256, 256], "layout": "NCHW", "dtype": "float32", "color": "RGB"}
    assert spec["outputs"] == [
        {"name": "boxes", "shape": [-1, 100, 4]},
        {"name": "scores", "shape": [-1, 100]},
        {"name": "class_probs", "shape": [-1, 100, 23]},
        {"name": "sold", "shape": [-1, 100]},
    ]
    assert (out / "weights.pt").is_file()


def test_onnx_matches_torch_within_tolerance(package: tuple[GarmentDetector, Path]) -> None:
    model, out = package
    inputs = np.random.default_rng(0).normal(size=(3, 3, 256, 256)).astype(np.float32)
    diff = check_parity(model, out, inputs, atol=PARITY_ATOL)
    assert 0.0 <= diff <= PARITY_ATOL


@pytest.mark.parametrize("batch", [1, 4])
def test_onnx_outputs_have_contract_shapes_for_any_batch(package: tuple[GarmentDetector, Path], batch: int) -> None:
    _, out = package
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    images = np.random.default_rng(batch).normal(size=(batch, 3, 256, 256)).astype(np.float32)
    boxes, scores, class_probs, sold = session.run(OUTPUT_NAMES, {"images": images})
    assert boxes.shape == (batch, 100, 4) and scores.shape == (batch, 100)
    assert class_probs.shape == (batch, 100, 23) and sold.shape == (batch, 100)
    assert np.all((scores >= 0) & (scores <= 1)) and np.all((sold >= 0) & (sold <= 1))
    np.testing.assert_allclose(class_probs.sum(-1), 1.0, atol=1e-5)
    # Ranks are quantised to 1/rank_levels logits; sigmoid's slope is at most 1/4.
    tolerance = 0.25 / rank_levels((256 // 8) ** 2) + 1e-6
    assert np.all(np.diff(scores, axis=1) <= tolerance), "scores come best first (up to the rank quantum)"
    assert np.all(boxes[..., 2] >= boxes[..., 0]) and np.all(boxes[..., 3] >= boxes[..., 1])


def test_torch_module_rebuilds_from_package(package: tuple[GarmentDetector, Path]) -> None:
    model, out = package
    rebuilt = build_torch_module(out)
    x = torch.randn(2, 3, 256, 256)
    with torch.no_grad():
        for a, b in zip(model(x), rebuilt(x), strict=True):
            assert torch.equal(a, b)


def test_parity_failure_is_reported(package: tuple[GarmentDetector, Path]) -> None:
    model, out = package
    other = _random_detector()
    with torch.no_grad():
        other.sold.bias.add_(3.0)  # type: ignore[union-attr]
    inputs = np.random.default_rng(1).normal(size=(1, 3, 256, 256)).astype(np.float32)
    with pytest.raises(ExportError, match="differ by"):
        check_parity(other, out, inputs, atol=PARITY_ATOL)
    assert check_parity(model, out, inputs, atol=PARITY_ATOL) <= PARITY_ATOL


def test_spec_without_torch_factory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="factory"):
        export_package(GarmentDetector(SMALL), tmp_path, role="detector", example_input=torch.randn(1, 3, 64, 64),
                       output_names=OUTPUT_NAMES, spec={"name": "x"})
    assert not (tmp_path / "model.onnx").exists()


def test_untrained_detectors_with_tied_peaks_pass_the_parity_check(tmp_path: Path) -> None:
    """An untrained detector (objectness prior 0.01 everywhere) has neighbouring cells whose heat ties to
    float rounding: torch and ONNX Runtime then keep different peaks, and slot by slot the outputs differ
    by pixels (17 of 40 seeds did when measured). The exports are faithful: the head maps agree, and
    so do the slots up to those ties."""
    import onnxruntime as ort

    slot_by_slot_failures = 0
    for seed in range(16):
        torch.manual_seed(seed)
        model = GarmentDetector(DetectorConfig()).eval()
        out = tmp_path / f"detector-{seed}"
        spec = {"name": "d", "version": "1", "input": {"resize": "letterbox", "pad_value": 114},
                "torch": {"factory": "training.models.detector:build_detector", "config": config_dict(model.config)}}
        export_package(model, out, role="detector", example_input=torch.zeros(1, 3, 96, 96),
                       output_names=OUTPUT_NAMES, spec=spec)
        inputs = np.random.default_rng(seed).normal(size=(8, 3, 96, 96)).astype(np.float32)
        with torch.no_grad():
            torch_boxes = model(torch.from_numpy(inputs))[0].numpy()
        onnx_boxes = ort.InferenceSession(str(out / "model.onnx")).run(["boxes"], {"images": inputs})[0]
        slot_by_slot_failures += int(np.abs(torch_boxes - onnx_boxes).max() > 1.0)
        assert check_parity(model, out, inputs, atol=1e-2) <= 1e-2, f"seed {seed}"
    assert slot_by_slot_failures >= 1  # the case the check must tolerate did occur


def test_non_finite_outputs_fail_the_parity_check(package: tuple[GarmentDetector, Path]) -> None:
    model, out = package
    inputs = np.full((1, 3, 256, 256), np.nan, np.float32)
    with pytest.raises(ExportError, match="non-finite"):
        check_parity(model, out, inputs, atol=PARITY_ATOL)
