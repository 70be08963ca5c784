"""Tiny random-init modules that follow the detector / embedder I/O contract, and their export.

Test packages are built from these: ``export_tiny_package`` writes ``model.onnx``, ``weights.pt`` and a
``spec.json`` whose ``torch.factory`` points back at ``build_tiny_detector`` / ``build_tiny_embedder``
in this module (importable because pytest puts ``tests/engines`` on ``sys.path``).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engines.torch_backend import allow_factory

TINY_CLASSES = ["top", "dress", "skirt", "coat", "trousers"]
REPO = Path(__file__).resolve().parents[2]
SHIPPED = {"detector": REPO / "models" / "detector", "embedder": REPO / "models" / "embedder"}


def shipped_present(role: str) -> bool:
    """True when the trained package for ``role`` has been exported into models/."""
    folder = SHIPPED[role]
    return (folder / "spec.json").is_file() and (folder / "model.onnx").is_file()


class TinyDetector(nn.Module):
    """(B, 3, S, S) -> boxes (B, K, 4), scores (B, K), class_probs (B, K, C), sold (B, K), decoded in-graph."""

    cx: torch.Tensor
    cy: torch.Tensor

    def __init__(self, input_size: int = 64, num_classes: int = 5, top_k: int = 32, width: int = 8, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.num_classes = num_classes
        self.top_k = top_k
        self.stride = 4
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Conv2d(width, 6 + num_classes, 1)
        nn.init.normal_(self.head.weight, std=1.0)
        cells = input_size // self.stride
        ys, xs = torch.meshgrid(torch.arange(cells), torch.arange(cells), indexing="ij")
        self.register_buffer("cx", ((xs.flatten().float() + 0.5) * self.stride), persistent=False)
        self.register_buffer("cy", ((ys.flatten().float() + 0.5) * self.stride), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        f = self.head(self.body(x))
        obj = torch.sigmoid(f[:, 0:1])
        peaks = obj * (F.max_pool2d(obj, 3, 1, 1) == obj).float()
        scores, idx = peaks.flatten(1).topk(self.top_k, dim=1)
        reg = f[:, 1:5].flatten(2).gather(2, idx[:, None, :].expand(-1, 4, -1))
        cx = self.cx[idx] + torch.tanh(reg[:, 0]) * self.stride
        cy = self.cy[idx] + torch.tanh(reg[:, 1]) * self.stride
        half_w = torch.exp(reg[:, 2].clamp(-2, 2)) * self.stride * 2
        half_h = torch.exp(reg[:, 3].clamp(-2, 2)) * self.stride * 2
        boxes = torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=-1)
        c = self.num_classes
        probs = F.softmax(f[:, 5 : 5 + c].flatten(2), dim=1)
        class_probs = probs.gather(2, idx[:, None, :].expand(-1, c, -1)).transpose(1, 2)
        sold = torch.sigmoid(f[:, 5 + c].flatten(1)).gather(1, idx)
        return boxes, scores, class_probs, sold


class TinyEmbedder(nn.Module):
    """(B, 3, S, S) -> embeddings (B, D) with unit L2 norm."""

    def __init__(self, embedding_dim: int = 16, width: int = 8, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.proj = nn.Linear(2 * width, embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.body(x).mean(dim=(2, 3))
        return F.normalize(self.proj(pooled), dim=1)


def build_tiny_detector(**config: Any) -> TinyDetector:
    """Factory named in the tiny detector's spec.json (``torch.factory``)."""
    return TinyDetector(**config)


def build_tiny_embedder(**config: Any) -> TinyEmbedder:
    """Factory named in the tiny embedder's spec.json (``torch.factory``)."""
    return TinyEmbedder(**config)


# Test code, not a package, adds its own architectures to the torch backend's allow-list.
for _factory in ("engines_tiny_models:build_tiny_detector", "engines_tiny_models:build_tiny_embedder"):
    allow_factory(_factory)


def export_tiny_package(out: Path, role: str, seed: int = 0) -> Path:
    """Export a tiny detector (64x64 letterbox, K=32, 5 classes) or embedder (32x32 stretch, D=16)."""
    out.mkdir(parents=True, exist_ok=True)
    if role == "detector":
        config: dict[str, Any] = {"input_size": 64, "num_classes": len(TINY_CLASSES), "top_k": 32, "seed": seed}
        module: nn.Module = build_tiny_detector(**config)
        size, names, resize = 64, ["boxes", "scores", "class_probs", "sold"], "letterbox"
        factory = "engines_tiny_models:build_tiny_detector"
    else:
        config = {"embedding_dim": 16, "seed": seed}
        module = build_tiny_embedder(**config)
        size, names, resize = 32, ["embeddings"], "stretch"
        factory = "engines_tiny_models:build_tiny_embedder"
    module.eval()
    example = torch.rand(2, 3, size, size)
    with torch.no_grad():
        produced = module(example)
    produced = produced if isinstance(produced, tuple) else (produced,)
    onnx_path = out / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(onnx_path),
            input_names=["images"],
            output_names=names,
            dynamic_axes={n: {0: "batch"} for n in ["images", *names]},
            opset_version=17,
            dynamo=False,
        )
    torch.save(module.state_dict(), out / "weights.pt")
    spec: dict[str, Any] = {
        "format_version": 1,
        "role": role,
        "name": f"tiny-{role}",
        "version": "2026.01.01-0",
        "architecture": type(module).__name__,
        "input": {"name": "images", "shape": [-1, 3, size, size], "layout": "NCHW", "color": "RGB",
                  "dtype": "float32", "resize": resize, "pad_value": 114},
        "normalization": {"scale": 1 / 255, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        "outputs": [{"name": n, "shape": [-1, *t.shape[1:]]} for n, t in zip(names, produced, strict=True)],
        "onnx_sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        "weights_sha256": hashlib.sha256((out / "weights.pt").read_bytes()).hexdigest(),
        "opset": 17,
        "torch": {"factory": factory, "config": config},
    }
    if role == "detector":
        spec["classes"] = list(TINY_CLASSES)
        spec["max_detections"] = config["top_k"]
    else:
        spec["embedding_dim"] = config["embedding_dim"]
    (out / "spec.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")
    return out
