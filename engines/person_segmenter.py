"""Person masks: where the presenter is in a frame, and how much of each detection lies on a person.

The shipped package (``models/person``) is MediaPipe's selfie segmentation network, taken unchanged
from the ``mediapipe`` 0.10.14 wheel on PyPI (Apache-2.0; ``spec.json`` records the package, the
file's path in the wheel, its SHA-256 and the wheel's; the wheel's licence is beside it). It takes a
256 x 256 RGB image in [0, 1] and gives a (256, 256) person probability. It runs on the CPU with the
LiteRT interpreter (``ai-edge-litert``, Apache-2.0): 3-6 ms per frame on one core whatever the
frame's size, since the frame is first resized to 256 x 256 (the aspect is not kept; the network
still finds full-body presenters in 9:16 frames).

The network was made for video-call selfies: it marks the foreground subject. On live-shopping
frames that is the presenter from head to feet, with the garment worn or held in front of the body,
while racks and on-screen panels stay out (checked by eye on real livestream frames; the tests check
bundled photos). It is not a person classifier: a close-up animal is foreground to it too, and on
synthetic renders it often misses the drawn presenter or takes a bystander or a panel instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engines.package import ModelPackageError

ROLE = "person_segmenter"
#: What the LiteRT runtime prints to the process's stderr when it loads its CPU delegate.
DELEGATE_BANNER = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


@contextlib.contextmanager
def _banner_filtered() -> Iterator[None]:
    """Keep the runtime's start-up banner off stderr (commands print one-line errors there).

    The runtime writes from C++ to file descriptor 2, so the descriptor is pointed at a temporary
    file for the block; afterwards everything else written meanwhile (by any thread) is written
    back to stderr, only the banner is left out.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            rest = b"".join(line for line in caught.read().splitlines(keepends=True)
                            if line.rstrip(b"\r\n") != DELEGATE_BANNER)
            if rest:
                os.write(2, rest)


class PersonSegmenter:
    """A loaded person-segmentation package.

    Args:
        package_dir: Folder with ``spec.json`` and the TFLite file it names.
        threads: Interpreter threads (1: it runs beside the detector and embedder).

    Raises:
        ModelPackageError: The folder, its spec or the file's digest is wrong, or the runtime is
            not installed.
    """

    def __init__(self, package_dir: str | Path, threads: int = 1) -> None:
        folder = Path(package_dir)
        spec_path = folder / "spec.json"
        try:
            spec = json.loads(spec_path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelPackageError(f"{spec_path}: cannot read the person-segmenter spec ({exc})") from exc
        if spec.get("role") != ROLE:
            raise ModelPackageError(f"{spec_path}: role is {spec.get('role')!r}, expected {ROLE!r}")
        model = folder / str(spec.get("file", ""))
        try:
            data = model.read_bytes()
        except OSError as exc:
            raise ModelPackageError(f"{model}: cannot read the person-segmenter model ({exc})") from exc
        if hashlib.sha256(data).hexdigest() != spec.get("sha256"):
            raise ModelPackageError(f"{model}: SHA-256 differs from spec.json's")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise ModelPackageError("the person cue needs ai-edge-litert (pip install ai-edge-litert), "
                                    "or leave pipeline.person_cue off") from exc
        self.spec: dict[str, Any] = spec
        self.height, self.width = int(spec["input"]["height"]), int(spec["input"]["width"])
        self.threshold = float(spec.get("threshold", 0.5))
        with _banner_filtered():  # XNNPACK (which also runs the network's transposed convolutions) says hello
            self._interpreter = Interpreter(model_content=data, num_threads=threads)
            self._interpreter.allocate_tensors()
        self._lock = threading.Lock()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]

    @property
    def label(self) -> str:
        """``name@version`` of the package."""
        return f"{self.spec.get('name', 'person')}@{self.spec.get('version', '')}"

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """Person probability of one frame.

        Args:
            image: (H, W, 3) uint8 RGB frame.

        Returns:
            (height, width) float32 in [0, 1] at the network's resolution (256 x 256).
        """
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) RGB frame, got shape {image.shape}")
        small = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_AREA)
        with self._lock:  # one interpreter: model workers take turns (batch.model_workers)
            self._interpreter.set_tensor(self._input, (small.astype(np.float32) / 255.0)[None])
            self._interpreter.invoke()
            out = np.array(self._interpreter.get_tensor(self._output), np.float32)
        return out.reshape(self.height, self.width)

    def coverage(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Share of each box that lies on a person.

        Args:
            image: (H, W, 3) uint8 RGB frame.
            boxes: (N, 4) ``x1, y1, x2, y2`` in frame pixels.

        Returns:
            (N,) float32 in [0, 1]: the fraction of the box's mask cells whose person probability is
            at least the spec's threshold (0 for a box outside the frame or without area).
        """
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        if len(boxes) == 0:
            return np.zeros(0, np.float32)
        mask = self.probabilities(image) >= self.threshold
        sx, sy = self.width / image.shape[1], self.height / image.shape[0]
        out = np.zeros(len(boxes), np.float32)
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            c1, r1 = max(0, int(x1 * sx)), max(0, int(y1 * sy))
            c2, r2 = min(self.width, int(np.ceil(x2 * sx))), min(self.height, int(np.ceil(y2 * sy)))
            if c2 > c1 and r2 > r1:
                out[i] = float(mask[r1:r2, c1:c2].mean())
        return out
