"""Model package checks: a broken package fails on load with a one-line ModelPackageError."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engines import ModelPackage, ModelPackageError, load_detector, load_embedder
from engines.base import BackendError
from engines.package import sha256_file
from stream.errors import LiveTagError


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_spec(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    spec_path = folder / "spec.json"
    spec = json.loads(spec_path.read_text())
    change(spec)
    spec_path.write_text(json.dumps(spec))


def test_valid_packages_load(tiny_packages: dict[str, Path]) -> None:
    det = ModelPackage.load(tiny_packages["detector"], role="detector")
    assert det.spec.role == "detector" and det.spec.max_detections == 32 and len(det.spec.classes) == 5
    assert (det.spec.input.height, det.spec.input.width, det.spec.input.resize) == (64, 64, "letterbox")
    assert det.spec.output_names == ["boxes", "scores", "class_probs", "sold"]
    emb = ModelPackage.load(tiny_packages["embedder"])
    assert emb.spec.embedding_dim == 16 and emb.spec.input.resize == "stretch"
    assert emb.spec.label == "tiny-embedder@2026.01.01-0"


def test_wrong_sha256_is_rejected(tiny_packages: dict[str, Path], tmp_path: Path) -> None:
    folder = _copy(tiny_packages["detector"], tmp_path / "det")
    _edit_spec(folder, lambda s: s.update(onnx_sha256="0" * 64))
    with pytest.raises(ModelPackageError, match="onnx_sha256 does not match model.onnx") as info:
        ModelPackage.load(folder)
    assert "\n" not in str(info.value) and "re-export" in str(info.value)


def test_modified_onnx_is_rejected(tiny_packages: dict[str, Path], tmp_path: Path) -> None:
    folder = _copy(tiny_packages["embedder"], tmp_path / "emb")
    with open(folder / "model.onnx", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelPackageError, match="onnx_sha256"):
        load_embedder(folder)


CASES: list[tuple[str, str, Callable[[dict[str, Any]], None], str]] = [
    ("detector", "missing role", lambda s: s.pop("role"), "'role' is missing"),
    ("detector", "missing classes", lambda s: s.pop("classes"), "'classes' is missing"),
    ("embedder", "missing embedding_dim", lambda s: s.pop("embedding_dim"), "'embedding_dim' is missing"),
    ("embedder", "missing normalization", lambda s: s.pop("normalization"), "'normalization' is missing"),
    ("detector", "future format", lambda s: s.update(format_version=2), "format_version 2"),
    ("detector", "bad role", lambda s: s.update(role="classifier"), "role must be"),
    ("detector", "input not 4-d", lambda s: s["input"].update(shape=[-1, 3, 64]), "shape must be 4 integers"),
    ("detector", "grey input", lambda s: s["input"].update(shape=[-1, 1, 64, 64]), "shape must be"),
    ("detector", "wrong input size", lambda s: s["input"].update(shape=[-1, 3, 128, 128]), "does not match model.onnx"),
    ("detector", "NHWC float32", lambda s: s["input"].update(layout="NHWC"), "layout and dtype must be NCHW float32 or NHWC uint8"),
    ("detector", "float16 dtype", lambda s: s["input"].update(dtype="float16"), "got 'NCHW' 'float16'"),
    ("detector", "uint8 pixels, NCHW shape", lambda s: s["input"].update(layout="NHWC", dtype="uint8"), "shape must be [B, H, W, 3]"),
    ("detector", "uint8 spec, float graph", lambda s: s["input"].update(layout="NHWC", dtype="uint8", shape=[-1, 64, 64, 3]),
     "input dtype uint8 does not match model.onnx tensor(float)"),
    ("detector", "unknown resize", lambda s: s["input"].update(resize="crop"), "resize must be one of"),
    ("detector", "zero std", lambda s: s["normalization"].update(std=[0.2, 0.0, 0.2]), "std"),
    ("detector", "classes vs output", lambda s: s.update(classes=["a", "b"]), "disagrees with K=32 boxes and 2 classes"),
    ("detector", "missing output", lambda s: s.update(outputs=s["outputs"][:3]), "missing ['sold']"),
    ("embedder", "dim vs output", lambda s: s.update(embedding_dim=8), "does not match embedding_dim 8"),
    ("embedder", "renamed output", lambda s: s["outputs"][0].update(name="features"), "missing ['embeddings']"),
]


@pytest.mark.parametrize(("role", "label", "change", "message"), CASES, ids=[c[1] for c in CASES])
def test_broken_spec_is_rejected(
    tiny_packages: dict[str, Path], tmp_path: Path, role: str, label: str, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    folder = _copy(tiny_packages[role], tmp_path / role)
    _edit_spec(folder, change)
    with pytest.raises(ModelPackageError) as info:
        ModelPackage.load(folder)
    text = str(info.value)
    assert message in text and "\n" not in text and str(folder / "spec.json") in text
    assert isinstance(info.value, LiveTagError)


def test_missing_files_and_folders(tiny_packages: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ModelPackageError, match="folder not found"):
        ModelPackage.load(tmp_path / "nowhere")
    folder = _copy(tiny_packages["detector"], tmp_path / "det")
    (folder / "model.onnx").unlink()
    with pytest.raises(ModelPackageError, match="model.onnx: file missing"):
        ModelPackage.load(folder)
    (folder / "model.onnx").write_bytes(b"not onnx")
    _edit_spec(folder, lambda s: s.update(onnx_sha256=sha256_file(folder / "model.onnx")))
    with pytest.raises(ModelPackageError, match="ONNX Runtime cannot read the graph"):
        ModelPackage.load(folder)
    (folder / "spec.json").write_text("{not json")
    with pytest.raises(ModelPackageError, match="not valid JSON"):
        ModelPackage.load(folder)


def test_role_mismatch_and_unknown_backend(tiny_packages: dict[str, Path]) -> None:
    with pytest.raises(ModelPackageError, match="role is 'embedder' but a detector is needed"):
        load_detector(tiny_packages["embedder"])
    with pytest.raises(BackendError, match="unknown backend 'openvino'"):
        load_embedder(tiny_packages["embedder"], backend="openvino")
    with pytest.raises(BackendError, match="does not take these options"):
        load_embedder(tiny_packages["embedder"], warp_speed=True)


def test_torch_backend_needs_weights(tiny_packages: dict[str, Path], tmp_path: Path) -> None:
    folder = _copy(tiny_packages["embedder"], tmp_path / "emb")
    (folder / "weights.pt").unlink()
    with pytest.raises(ModelPackageError, match="weights.pt: missing"):
        load_embedder(folder, backend="torch", device="cpu")
    folder2 = _copy(tiny_packages["embedder"], tmp_path / "emb2")
    _edit_spec(folder2, lambda s: s["torch"].update(factory="no_such_module_here:build"))
    with pytest.raises(ModelPackageError, match="not one of the project's architectures"):
        load_embedder(folder2, backend="torch", device="cpu")


def test_a_package_cannot_name_code_to_run_and_a_pinned_digest_refuses_changes(
    tiny_packages: dict[str, Path], tmp_path: Path
) -> None:
    from consumers.settings import ModelSettings
    from consumers.stage.model_loading import load_models
    from engines.package import package_digest

    marker = tmp_path / "pwned"
    folder = _copy(tiny_packages["embedder"], tmp_path / "evil")
    _edit_spec(folder, lambda s: s["torch"].update(factory="os:system", config={"command": f"touch {marker}"}))
    with pytest.raises(ModelPackageError, match="cannot name code to run"):
        load_embedder(folder, backend="torch", device="cpu")
    assert not marker.exists(), "the spec's command never ran"
    unsigned = _copy(tiny_packages["embedder"], tmp_path / "unsigned")
    _edit_spec(unsigned, lambda s: s.pop("weights_sha256", None))
    with pytest.raises(ModelPackageError, match="no weights_sha256"):
        load_embedder(unsigned, backend="torch", device="cpu")
    pinned = package_digest(tiny_packages["detector"]), package_digest(tiny_packages["embedder"])
    choice = ModelSettings(str(tiny_packages["detector"]), str(tiny_packages["embedder"]), detector_digest=pinned[0], embedder_digest=pinned[1])
    assert load_models(choice)[1].spec.role == "embedder"
    tampered = _copy(tiny_packages["embedder"], tmp_path / "tampered")
    _edit_spec(tampered, lambda s: s.update(name="renamed"))  # spec changed, ONNX hash still right
    with pytest.raises(ModelPackageError, match="is not the pinned"):
        load_models(ModelSettings(str(tiny_packages["detector"]), str(tampered), embedder_digest=pinned[1]))


@pytest.mark.parametrize("threads", [0, 1])
def test_the_intra_op_thread_setting_reaches_both_onnx_runtime_sessions(tiny_packages: dict[str, Path],
                                                                        threads: int) -> None:
    from consumers.settings import ModelSettings
    from consumers.stage.model_loading import load_models

    choice = ModelSettings(str(tiny_packages["detector"]), str(tiny_packages["embedder"]), intra_op_threads=threads)
    for engine in load_models(choice):
        options = engine.backend.session.get_session_options()  # type: ignore[attr-defined]
        assert options.intra_op_num_threads == threads  # 0: ONNX Runtime sizes its own pool


def test_the_opencv_thread_setting_is_applied_when_the_models_load(tiny_packages: dict[str, Path]) -> None:
    import cv2

    from consumers.settings import ModelSettings
    from consumers.stage.model_loading import load_models

    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(2)
        load_models(ModelSettings(str(tiny_packages["detector"]), str(tiny_packages["embedder"]), opencv_threads=0))
        assert cv2.getNumThreads() == 2  # 0: OpenCV's own choice is left alone
        load_models(ModelSettings(str(tiny_packages["detector"]), str(tiny_packages["embedder"])))
        assert cv2.getNumThreads() == 1  # the default
    finally:
        cv2.setNumThreads(before)
