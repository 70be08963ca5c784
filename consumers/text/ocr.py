"""On-screen text read by OCR on a slow cadence, off the models' hot path.

``rapidocr`` (Apache-2.0; its PP-OCR detection and recognition ONNX models ship inside the wheel
and run on ONNX Runtime) reads about one 720p frame per 0.6 s on one CPU core, so a stream is
read at most every ``text.ocr_interval_s`` stream seconds. ``ocr_mode``:

* ``background``: a worker thread at the lowest CPU priority (nice 19, one ONNX Runtime thread)
  behind a bounded queue of ``ocr_queue`` frames; a full queue drops its oldest frame (policy
  ``drop_oldest``, counted in ``stats["dropped"]``), so OCR is the first thing shed under load;
* ``inline``: read on the calling thread (deterministic: replay and evaluation);
* ``off``: nothing is read.

What is read goes to :meth:`TextPriors.add` as source ``ocr`` at the frame's pts.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from consumers.settings.text import TextSettings
from consumers.text.text_prior import TextPriors
from engines.picture import Picture, as_picture
from stream.errors import LiveTagError

log = logging.getLogger(__name__)

#: Reads the text lines of one RGB frame (H, W, 3) uint8.
TextReader = Callable[[np.ndarray], Sequence[str]]
#: Recognised lines below this confidence are ignored.
MIN_LINE_SCORE = 0.5
#: Frames are scaled down to this long side before OCR: banners and captions stay legible, and a
#: 1080p frame costs what a 720p one does.
MAX_SIDE = 1280


class OcrUnavailableError(LiveTagError):
    """OCR was asked for but rapidocr is not installed."""


class RapidOcrReader:
    """rapidocr's PP-OCR pipeline (text detection, angle classification, recognition) on ONNX Runtime,
    on the calling thread alone (one ONNX Runtime thread), so a background worker's low priority holds
    for all of its work."""

    def __init__(self) -> None:
        try:
            from rapidocr import RapidOCR
        except ImportError as exc:
            raise OcrUnavailableError(
                "text.ocr_mode needs the rapidocr package: pip install 'livetag[ocr]', or set LIVETAG_TEXT_OCR_MODE=off"
            ) from exc
        self._engine = RapidOCR(params={
            "EngineConfig.onnxruntime.intra_op_num_threads": 1,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        })
        # its start-up chatter and a warning for every frame without text (set up by RapidOCR())
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)

    def __call__(self, image: np.ndarray) -> list[str]:
        """Text lines of an RGB frame (H, W, 3) uint8, confident ones only, in reading order."""
        scale = MAX_SIDE / max(image.shape[:2])
        if scale < 1.0:
            import cv2

            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        result: Any = self._engine(np.ascontiguousarray(image[:, :, ::-1]))  # rapidocr reads BGR
        texts = getattr(result, "txts", None) or ()
        scores = getattr(result, "scores", None) or [1.0] * len(texts)
        return [t for t, s in zip(texts, scores, strict=False) if s >= MIN_LINE_SCORE and t.strip()]


class OcrScheduler:
    """Chooses which frames OCR reads (cadence per stream) and reads them (inline or on a worker).

    Args:
        settings: Text settings (``ocr_mode``, ``ocr_interval_s``, ``ocr_queue``, ``max_streams``).
        reader: The OCR (a :class:`RapidOcrReader` in production).
        priors: Where the read text goes.
    """

    def __init__(self, settings: TextSettings, reader: TextReader, priors: TextPriors) -> None:
        self.settings = settings
        self._reader = reader
        self._priors = priors
        self._last: OrderedDict[str, float] = OrderedDict()  # stream -> pts of its last frame sent
        self._queue: deque[tuple[str, float, np.ndarray | Picture]] = deque()
        self._ready = threading.Condition()
        self._closed = False
        self._busy = False
        self.stats: Counter[str] = Counter()
        self._worker: threading.Thread | None = None
        if settings.ocr_mode == "background":
            self._worker = threading.Thread(target=self._run, name="livetag-ocr", daemon=True)
            self._worker.start()
            # A worker killed inside ONNX Runtime at interpreter exit aborts the process: stop it first.
            atexit.register(self.close)

    def offer(self, stream_id: str, pts: float, image: np.ndarray | Picture) -> bool:
        """A decoded frame, (H, W, 3) RGB or its picture (converted to RGB where it is read, so a frame
        not taken costs nothing); returns True when it was taken for OCR (its turn came)."""
        if self.settings.ocr_mode == "off":
            return False
        last = self._last.get(stream_id)
        if last is not None and last <= pts < last + self.settings.ocr_interval_s:
            return False
        self._last[stream_id] = pts
        self._last.move_to_end(stream_id)
        while len(self._last) > self.settings.max_streams:
            self._last.popitem(last=False)
        if self._worker is None:
            self._read(stream_id, pts, image)
            return True
        with self._ready:
            if len(self._queue) >= self.settings.ocr_queue:
                self._queue.popleft()
                self.stats["dropped"] += 1
            self._queue.append((stream_id, pts, image))
            self._ready.notify()
        return True

    def forget(self, stream_id: str) -> None:
        """Forget a stream's cadence (it ended)."""
        self._last.pop(stream_id, None)

    def drain(self, timeout_s: float = 30.0) -> bool:
        """Wait until the worker has read every queued frame; True when it did within ``timeout_s``."""
        with self._ready:
            return self._ready.wait_for(lambda: not self._queue and not self._busy, timeout_s)

    def close(self) -> None:
        """Stop the worker (queued frames are dropped)."""
        with self._ready:
            self._closed = True
            self._queue.clear()
            self._ready.notify_all()
        if self._worker is not None:
            atexit.unregister(self.close)
            self._worker.join(timeout=10.0)

    def _read(self, stream_id: str, pts: float, image: np.ndarray | Picture) -> None:
        try:
            lines = self._reader(as_picture(image).rgb())
        except Exception as exc:  # noqa: BLE001 - one unreadable frame must not stop OCR
            self.stats["failed"] += 1
            log.warning("OCR failed on %s@%.3f: %s", stream_id, pts, exc)
            return
        self.stats["read"] += 1
        if lines:
            self._priors.add(stream_id, " ".join(lines), "ocr", pts)

    def _run(self) -> None:
        _lower_priority()
        while True:
            with self._ready:
                self._ready.wait_for(lambda: self._queue or self._closed)
                if self._closed:
                    return
                stream_id, pts, image = self._queue.popleft()
                self._busy = True
            self._read(stream_id, pts, image)
            with self._ready:
                self._busy = False
                self._ready.notify_all()


def _lower_priority() -> None:
    """Give the calling thread the lowest CPU priority (Linux: a thread has its own nice value), so
    OCR takes only the CPU the models leave: under load it falls behind and its queue drops frames."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError) as exc:  # not Linux, or not permitted
        log.info("OCR worker keeps its priority: %s", exc)
