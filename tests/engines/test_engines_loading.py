"""Engine loading: the inference path runs without torch; backend options are checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engines import BackendError, backends_available, load_detector, load_embedder
from engines.base import DetectorEngine, EmbedderEngine

REPO = Path(__file__).resolve().parents[2]

NO_TORCH_SCRIPT = """
import json, sys
sys.modules["torch"] = None  # any 'import torch' now fails
sys.modules["tensorrt"] = None
import numpy as np
import engines
from engines.gallery import GalleryIndex
det = engines.load_detector(sys.argv[1], score_threshold=0.0, device="cpu", intra_op_threads=1)
emb = engines.load_embedder(sys.argv[2], device="cpu", intra_op_threads=1)
frame = np.random.default_rng(0).integers(0, 256, (120, 200, 3), dtype=np.uint8)
found = det.detect([frame])[0]
vectors = emb.embed([frame[:50, :60], frame])
gallery = GalleryIndex(emb.dim)
gallery.add(["a", "b"], ["x", "y"], vectors)
hit = gallery.search(vectors[:1], k=1, catalog={"x"})[0][0]
print(json.dumps({"backends": engines.backends_available(), "boxes": len(found), "dim": emb.dim, "hit": hit.image_id}))
"""


def test_inference_path_runs_without_torch(tiny_packages: dict[str, Path]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", NO_TORCH_SCRIPT, str(tiny_packages["detector"]), str(tiny_packages["embedder"])],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backends"] == ["onnxruntime"]
    assert result["boxes"] > 0 and result["dim"] == 16 and result["hit"] == "a"


def test_available_backends_and_engine_types(tiny_packages: dict[str, Path]) -> None:
    available = backends_available()
    assert available[0] == "onnxruntime" and "torch" in available  # torch is installed with the dev extra
    assert isinstance(load_detector(tiny_packages["detector"], backend="torch", device="cpu"), DetectorEngine)
    assert isinstance(load_embedder(tiny_packages["embedder"], device="cpu"), EmbedderEngine)


@pytest.mark.parametrize(
    ("backend", "opts", "message"),
    [
        ("onnxruntime", {"device": "tpu"}, "device must be one of"),
        ("onnxruntime", {"intra_op_threads": 0}, "intra_op_threads must be >= 1"),
        ("onnxruntime", {"max_batch": 0}, "max_batch must be >= 1"),
        ("torch", {"device": "cpu", "fp16": True}, "fp16 and cuda_graphs need device='cuda'"),
        ("torch", {"device": "cpu", "cuda_graphs": True}, "fp16 and cuda_graphs need device='cuda'"),
        ("torch", {"device": "cpu", "max_batch": 0}, "max_batch must be >= 1"),
    ],
)
def test_bad_backend_options_are_one_line_errors(tiny_packages: dict[str, Path], backend: str, opts: dict[str, object], message: str) -> None:
    with pytest.raises(BackendError, match=message) as info:
        load_embedder(tiny_packages["embedder"], backend=backend, **opts)
    assert "\n" not in str(info.value)


def test_detector_thresholds_are_validated_and_applied(tiny_packages: dict[str, Path], rng: np.random.Generator) -> None:
    with pytest.raises(BackendError, match="score_threshold must be in"):
        load_detector(tiny_packages["detector"], score_threshold=1.5)
    frame = rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)
    loose = load_detector(tiny_packages["detector"], score_threshold=0.0, iou_threshold=1.0, device="cpu").detect([frame])[0]
    strict = load_detector(tiny_packages["detector"], score_threshold=0.5, iou_threshold=0.3, device="cpu").detect([frame])[0]
    assert len(loose) > len(strict)
    assert np.all(strict.scores >= 0.5)
